import time, numpy as np, sys
sys.path.insert(0, "/work/main")
from fakewatch.runtime.backends import load_runner
r = load_runner("runtime/assets/demo/demo_model.onnx", "onnxruntime").activate()
x = np.random.default_rng(0).standard_normal((8, 3, 112, 112)).astype(np.float32)
for _ in range(30): r.infer(x)
t = []
for _ in range(300):
    t0 = time.perf_counter(); r.infer(x); t.append(time.perf_counter() - t0)
import onnxruntime; print(sys.executable, onnxruntime.__version__, np.__version__, "median ms", np.median(t) * 1e3)
