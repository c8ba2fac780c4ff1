import subprocess, sys, time, cProfile, pstats
import numpy as np
sys.path.insert(0, "/work/main")
from fakewatch.runtime.backends.triton_runner import TritonRunner
MODEL = "runtime/assets/demo/demo_model.onnx"
srv = subprocess.Popen([".venv-pytriton/bin/python", "-m", "fakewatch.runtime.triton_serve", MODEL, "--name", "bench",
                        "--grpc-port", "8101", "--http-port", "8100", "--metrics-port", "8102"], stdout=subprocess.DEVNULL, stderr=open("/tmp/srv.log", "w"))
try:
    r = TritonRunner.connect("grpc://127.0.0.1:8101", "bench", connect_timeout_s=90).activate()
    x = np.random.default_rng(0).standard_normal((8, 3, 112, 112)).astype(np.float32)
    for _ in range(30): r.infer(x)
    t0 = time.process_time(); w0 = time.perf_counter()
    for _ in range(300): r.infer(x)
    print("client cpu ms/req", (time.process_time() - t0) / 300 * 1e3, "wall", (time.perf_counter() - w0) / 300 * 1e3)
    pr = cProfile.Profile(); pr.enable()
    for _ in range(300): r.infer(x)
    pr.disable()
    st = pstats.Stats(pr); st.sort_stats("tottime").print_stats(14)
finally:
    srv.terminate(); srv.wait(30)
