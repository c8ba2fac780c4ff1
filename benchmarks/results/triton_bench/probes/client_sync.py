import subprocess, sys, time
import numpy as np
sys.path.insert(0, "/work/main")
import tritonclient.grpc as g
MODEL = "runtime/assets/demo/demo_model.onnx"
srv = subprocess.Popen([".venv-pytriton/bin/python", "-m", "fakewatch.runtime.triton_serve", MODEL, "--name", "bench",
                        "--grpc-port", "8101", "--http-port", "8100", "--metrics-port", "8102"], stdout=subprocess.DEVNULL, stderr=open("/tmp/srv.log", "w"))
try:
    c = g.InferenceServerClient("127.0.0.1:8101")
    for _ in range(200):
        try:
            if c.is_model_ready("bench"): break
        except Exception: pass
        time.sleep(0.3)
    x = np.random.default_rng(0).standard_normal((8, 3, 112, 112)).astype(np.float32)
    import threading
    def req():
        i = g.InferInput("input", list(x.shape), "FP32"); i.set_data_from_numpy(x)
        return i, [g.InferRequestedOutput("logit")]
    def sync():
        i, o = req(); return c.infer("bench", [i], outputs=o, client_timeout=5).as_numpy("logit")
    def asyn():
        i, o = req(); ev = threading.Event(); box = []
        c.async_infer("bench", [i], lambda r, e: (box.append(r), ev.set()), outputs=o); ev.wait()
        return box[0].as_numpy("logit")
    for name, f in (("sync", sync), ("async", asyn), ("sync", sync), ("async", asyn)):
        for _ in range(20): f()
        t0 = time.process_time(); w0 = time.perf_counter()
        for _ in range(300): f()
        print(name, flush=True); print(name, "client cpu ms/req", round((time.process_time() - t0) / 300 * 1e3, 3), "wall", round((time.perf_counter() - w0) / 300 * 1e3, 3))
finally:
    srv.terminate(); srv.wait(30)
