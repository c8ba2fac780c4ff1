cd /work/main
echo "=== start"; uptime
for py in .venv/bin/python .venv-pytriton/bin/python; do $py /work/scratch/ortcmp.py; done
echo "=== shm exp"; .venv/bin/python /work/scratch/shm_exp.py 2>&1 | grep -v Warn | tail -3
for extra in "" "--no-spin" "--server pytriton"; do
  echo "== prof $extra"; uptime
  .venv/bin/python /work/scratch/prof_triton.py runtime/assets/demo/demo_model.onnx fakewatch.runtime.triton_serve $extra 2>&1 | grep -v Warn | tail -12
done
echo "=== end"; uptime
