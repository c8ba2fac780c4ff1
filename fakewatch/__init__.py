"""fakewatch: edge-optimized real-time deepfake stream detector.

One import package in layers (docs/architecture.md; tests/test_architecture.py enforces them):

* :mod:`fakewatch.core` - the model contract, image ops, self-blending, metrics, redaction, TensorRT facts;
* :mod:`fakewatch.streams` - sources read live by reader threads (imports only the core);
* :mod:`fakewatch.runtime` - backends (runners), the watch pipeline, decisions, alerts, latency;
* :mod:`fakewatch.export` - checkpoint -> ONNX -> INT8/FP16 -> TensorRT engine, verified on the runtime's runners;
* :mod:`fakewatch.training`, :mod:`fakewatch.benchmarks` - fine-tuning and measurement;
* :mod:`fakewatch.cli` - the ``fakewatch`` command (``python -m fakewatch``), the only module that imports every part.

Importing ``fakewatch`` imports nothing heavy.
"""
