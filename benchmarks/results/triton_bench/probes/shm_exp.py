import subprocess, sys, time, os
import numpy as np
sys.path.insert(0, "/work/main")
import tritonclient.grpc as g
import tritonclient.utils.shared_memory as shm
srv = subprocess.Popen([".venv-pytriton/bin/python", "-m", "fakewatch.runtime.triton_serve", "runtime/assets/demo/demo_model.onnx", "--name", "bench",
                        "--grpc-port", "8101", "--http-port", "8100", "--metrics-port", "8102"], stdout=subprocess.DEVNULL, stderr=open("/tmp/srv.log", "w"))
try:
    c = g.InferenceServerClient("127.0.0.1:8101")
    for _ in range(200):
        try:
            if c.is_model_ready("bench"): break
        except Exception: pass
        time.sleep(0.3)
    x = np.random.default_rng(0).standard_normal((8, 3, 112, 112)).astype(np.float32)
    h = shm.create_shared_memory_region("fwin", "/fw_exp_in", x.nbytes)
    c.register_system_shared_memory("fwin", "/fw_exp_in", x.nbytes)
    def plain():
        i = g.InferInput("input", list(x.shape), "FP32"); i.set_data_from_numpy(x)
        return c.infer("bench", [i], outputs=[g.InferRequestedOutput("logit")]).as_numpy("logit")
    def viashm():
        shm.set_shared_memory_region(h, [x])
        i = g.InferInput("input", list(x.shape), "FP32"); i.set_shared_memory("fwin", x.nbytes)
        return c.infer("bench", [i], outputs=[g.InferRequestedOutput("logit")]).as_numpy("logit")
    print("same", np.array_equal(plain(), viashm()))
    res = {"plain": [], "shm": []}
    for r in range(8):
        for name, f in (("plain", plain), ("shm", viashm)):
            t = []; end = time.perf_counter() + 1.5
            while time.perf_counter() < end:
                t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)
            res[name].append(np.median(t) * 1e3)
    for k, v in res.items(): print(k, np.round(v, 2), "median", np.median(v))
    c.unregister_system_shared_memory("fwin"); shm.destroy_shared_memory_region(h)
finally:
    srv.terminate(); srv.wait(30)
