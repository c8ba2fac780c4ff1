"""The model Triton's *python backend* runs for ``fakewatch serve``: one fakewatch runner per model instance, fed the
batch Triton's dynamic batcher formed.

Triton starts one stub process (``triton_python_backend_stub``) per instance, imports the repository's
``<name>/1/model.py`` (two lines that re-export :class:`TritonPythonModel` from here) and calls ``initialize`` once,
``execute`` per batch of requests, ``finalize`` at unload. The runner lives in the stub itself, so a batch makes one
shared-memory hop (server <-> stub). PyTriton's proxy model (``--server pytriton``) forwards every batch on to the
user's process and back, which measured ~5 ms per batch of 8 on this CPU (benchmarks/results/triton_bench/).

What to run comes from ``serve.json`` next to ``model.py`` (written by :mod:`fakewatch.runtime.triton_python_serve`):
the artifact path, the runner backend and its options — data only, never code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

SERVE_FILE = "serve.json"


class TritonPythonModel:
    """Triton python-backend model interface (``initialize`` / ``execute`` / ``finalize``)."""

    def initialize(self, args: dict[str, str]) -> None:
        import triton_python_backend_utils as pb_utils   # provided by the stub; exists only inside Triton

        from fakewatch.runtime.backends import load_runner

        self._pb = pb_utils
        here = Path(args["model_repository"]) / str(args["model_version"])
        serve = json.loads((here / SERVE_FILE).read_text())
        self.runner = load_runner(serve["artifact"], serve.get("backend"), **serve.get("runner_options", {}))
        self.runner.activate()
        self.input_name = self.runner.spec.input_name
        self.output_name = self.runner.spec.output_name

    def execute(self, requests: list[Any]) -> list[Any]:
        """One runner call for all requests of a batch; each request gets its own rows back."""
        pb = self._pb
        arrays = [pb.get_input_tensor_by_name(r, self.input_name).as_numpy() for r in requests]
        try:
            logits = self.runner.infer(arrays[0] if len(arrays) == 1 else np.concatenate(arrays))
        except Exception as exc:   # one bad batch answers its requests with an error; the instance stays up
            error = pb.TritonError(f"fakewatch {self.runner.name} runner failed on a batch of "
                                   f"{sum(len(a) for a in arrays)}: {exc}")
            return [pb.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        logits = np.ascontiguousarray(logits, dtype=np.float32)
        responses, start = [], 0
        for a in arrays:
            part = logits[start:start + len(a)]
            start += len(a)
            responses.append(pb.InferenceResponse(output_tensors=[pb.Tensor(self.output_name, part)]))
        return responses

    def finalize(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.deactivate()
