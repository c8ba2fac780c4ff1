import subprocess, sys, time, os, json
import numpy as np
sys.path.insert(0, "/work/main")
MODEL = sys.argv[1] if len(sys.argv) > 1 else "runtime/assets/demo/demo_model.onnx"
SERVE = sys.argv[2] if len(sys.argv) > 2 else "fakewatch.runtime.triton_serve"
from fakewatch.runtime.backends import load_runner
from fakewatch.runtime.backends.triton_runner import TritonRunner
srv = subprocess.Popen([".venv-pytriton/bin/python", "-m", SERVE, MODEL, "--name", "bench",
                        "--grpc-port", "8101", "--http-port", "8100", "--metrics-port", "8102"] + sys.argv[3:],
                       stdout=subprocess.DEVNULL, stderr=open("/tmp/srv.log", "w"))
try:
    time.sleep(15)
    remote = TritonRunner.connect("grpc://127.0.0.1:8101", "bench", connect_timeout_s=90).activate()
    local = load_runner(MODEL, "onnxruntime").activate()
    remote_off = TritonRunner.connect("grpc://127.0.0.1:8101", "bench", shm="off").activate()
    print("shm:", remote.shm_note)
    x = np.random.default_rng(0).standard_normal((8, 3, *local.spec.input_size)).astype(np.float32)
    for f in (local.infer, remote.infer, remote_off.infer):
        for _ in range(20): f(x)
    def bench(f, sec=4):
        t = []; end = time.perf_counter() + sec
        while time.perf_counter() < end:
            t0 = time.perf_counter(); f(x); t.append(time.perf_counter() - t0)
        return np.median(t) * 1e3, len(t)
    for r in range(3):
        s0 = remote.fetch_server_timing()
        print("local", bench(local.infer)); print("remote", bench(remote.infer)); print("remote_noshm", bench(remote_off.infer))
        s1 = remote.fetch_server_timing(); print(s1)
    import tritonclient.grpc as g
    t0 = time.perf_counter()
    for _ in range(200):
        inp = g.InferInput("input", list(x.shape), "FP32"); inp.set_data_from_numpy(x)
    print("set_data ms", (time.perf_counter() - t0) / 200 * 1e3)
    print("max diff", float(np.abs(local.infer(x) - remote.infer(x)).max()))
finally:
    srv.terminate(); srv.wait(20)
