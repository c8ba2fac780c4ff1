"""Tiny synthetic "people" for the eval and diagnosis tests: a face-like ellipse per person, two photos each."""
from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

PEOPLE = (("ann", (60, 120, 200)), ("ben", (200, 160, 90)), ("cid", (90, 200, 90)))


def face_image(rng: np.random.Generator, colour: tuple[int, int, int]) -> np.ndarray:
    img = np.full((96, 80, 3), 40, np.uint8)
    img[:] = rng.integers(30, 60, 3)
    cv2.ellipse(img, (40, 50), (22, 30), 0, 0, 360, colour, -1)
    cv2.circle(img, (32, 42), 3, (10, 10, 10), -1)
    cv2.circle(img, (48, 42), 3, (10, 10, 10), -1)
    return img


def write_people_manifest(root: Path, rng: np.random.Generator, photos: int = 2) -> Path:
    """``root/people/<name>/<k>.png`` for every person and a manifest (path, label, video_id = person) of them."""
    rows = []
    for person, colour in PEOPLE:
        d = root / "people" / person
        d.mkdir(parents=True)
        for k in range(photos):
            p = d / f"{k}.png"
            cv2.imwrite(str(p), face_image(rng, colour))
            rows.append([str(p), "real", person])
    manifest = root / "people.csv"
    with manifest.open("w", newline="") as fh:
        csv.writer(fh).writerows([["path", "label", "video_id"], *rows])
    return manifest
