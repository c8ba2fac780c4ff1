"""CPU preprocessing (the reference) against a straightforward per-image implementation."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from fakewatch.core.checkpoint import default_spec
from fakewatch.core.preprocess import preprocess


def per_image_reference(image, box, spec):
    x0, y0, x1, y1 = box
    h, w = spec.input_size
    im = cv2.resize(image[y0:y1, x0:x1], (w, h), interpolation=cv2.INTER_LINEAR)
    if spec.channel_order == "RGB":
        im = cv2.cvtColor(im, cv2.COLOR_BGR2RGB)
    x = im.astype(np.float64) / 255.0
    x = (x - np.asarray(spec.mean)) / np.asarray(spec.std)
    return x.transpose(2, 0, 1).astype(np.float32)


@pytest.mark.parametrize("order", ["RGB", "BGR"])
@pytest.mark.parametrize("n", range(1, 9))
def test_batch_matches_per_image_reference(n, order):
    rng = np.random.default_rng(n)
    spec = default_spec("test", roi="face", input_size=(45, 37), channel_order=order)   # odd, non-square input
    images, boxes = [], []
    for i in range(n):
        h, w = int(rng.integers(31, 241)) | 1, int(rng.integers(29, 321)) | 1            # odd frame sizes
        images.append(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        boxes.append((x0, y0, int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))))
    got = preprocess(images, boxes, spec)
    want = np.stack([per_image_reference(im, b, spec) for im, b in zip(images, boxes)])
    assert got.shape == (n, 3, 45, 37) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-5


def test_writes_into_given_buffer_and_checks_it():
    spec = default_spec("test", roi="full")
    im = np.random.default_rng(0).integers(0, 256, (63, 81, 3), dtype=np.uint8)
    buf = np.zeros((4, 3, 64, 64), np.float32)
    out = preprocess([im, im], [(0, 0, 81, 63)] * 2, spec, out=buf[1:3])
    assert np.shares_memory(out, buf) and np.all(buf[0] == 0) and np.all(buf[3] == 0)
    assert np.abs(buf[1] - per_image_reference(im, (0, 0, 81, 63), spec)).max() <= 1e-5
    with pytest.raises(ValueError, match="out must be float32"):
        preprocess([im], [(0, 0, 81, 63)], spec, out=buf[:2])
    with pytest.raises(ValueError, match="2 images but 1 boxes"):
        preprocess([im, im], [(0, 0, 81, 63)], spec)
