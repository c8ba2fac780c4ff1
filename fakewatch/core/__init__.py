"""The bottom layer every part may use; it imports nothing of the project outside itself.

* :mod:`~fakewatch.core.contract` - ``ModelSpec``, the contract inside every artifact, and its sidecars;
* :mod:`~fakewatch.core.variants` - the EfficientNet variant table;
* :mod:`~fakewatch.core.checkpoint` - checkpoint layouts -> timm model (torch imported on use);
* :mod:`~fakewatch.core.roi` / :mod:`~fakewatch.core.preprocess` - face boxes, crops, the preprocessing reference;
* :mod:`~fakewatch.core.sbi` - self-blended fakes (training data and the demo stream);
* :mod:`~fakewatch.core.metrics` - sigmoid, aggregation strategies, AUC and friends;
* :mod:`~fakewatch.core.redact` - credentials out of anything printed or logged;
* :mod:`~fakewatch.core.tensorrt` - version/compatibility facts shared by the engine builder and runner.
"""
