"""Dataset discovery, frame sampling, runtime-identical crops, crop cache, split by video."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from fakewatch.core.checkpoint import default_spec
from fakewatch.core.preprocess import preprocess
from fakewatch.core.roi import RoiExtractor, full_box
from fakewatch.training.data import DataError, build_crops, discover, read_frames, sample_indices, split_groups


def _write_video(path, n=12, size=(48, 40), seed=0):
    rng = np.random.default_rng(seed)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert w.isOpened()
    for i in range(n):
        f = np.full((size[1], size[0], 3), (i * 20) % 255, np.uint8)
        f[:, :, 1] = rng.integers(0, 255)
        w.write(f)
    w.release()


def _layout(root):
    (root / "real" / "person_a").mkdir(parents=True)
    (root / "fake").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(root / "real" / "person_a" / f"{i}.png"), np.full((20, 20, 3), i * 10, np.uint8))
    cv2.imwrite(str(root / "real" / "single.jpg"), np.zeros((20, 20, 3), np.uint8))
    _write_video(root / "fake" / "clip.avi")
    (root / "real" / "notes.txt").write_text("ignored")


def test_discover_folder_groups_by_video_and_image_folder(tmp_path):
    _layout(tmp_path)
    items = discover(tmp_path)
    assert len(items) == 5
    vids = {(it.video_id, it.label, it.kind) for it in items}
    assert ("real/person_a", 0, "image") in vids and ("real/single.jpg", 0, "image") in vids
    assert ("fake/clip.avi", 1, "video") in vids


def test_discover_manifest_and_errors(tmp_path):
    _layout(tmp_path)
    m = tmp_path / "m.csv"
    m.write_text("path,label,video_id\nreal/single.jpg,real,v1\nfake/clip.avi,1,\n")
    items = discover(m)
    assert [(it.label, it.video_id.endswith("clip.avi") or it.video_id) for it in items] == [(0, "v1"), (1, True)]
    (tmp_path / "bad.csv").write_text("real/single.jpg,maybe\n")
    with pytest.raises(DataError, match="maybe"):
        discover(tmp_path / "bad.csv")
    only_real = tmp_path / "r"
    (only_real / "real").mkdir(parents=True)
    cv2.imwrite(str(only_real / "real" / "x.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="--synth sbi"):
        discover(only_real)
    assert len(discover(only_real, require_fake=False)) == 1
    with pytest.raises(FileNotFoundError):
        discover(tmp_path / "nope")
    with pytest.raises(DataError, match="real/"):
        discover(tmp_path / "real")


def test_sample_indices_even_and_video_frames(tmp_path):
    assert sample_indices(100, 4) == [12, 37, 62, 87]
    assert sample_indices(3, 32) == [0, 1, 2]
    assert sample_indices(0, 5) == []
    _write_video(tmp_path / "v.avi", n=12)
    from fakewatch.training.data import MediaItem
    frames = read_frames(MediaItem(str(tmp_path / "v.avi"), 0, "v", "video"), 4)
    assert [i for i, _ in frames] == sample_indices(12, 4) == [1, 4, 7, 10]
    # the frame content matches the frame index (brightness encodes it); MJPG is lossy so allow a little
    for i, f in frames:
        assert abs(int(f[..., 0].mean()) - (i * 20) % 255) <= 3


def test_face_crops_are_the_runtime_crops_and_cached(tmp_path):
    from fakewatch.streams.demo import find_clip, load_clip
    frames, _ = load_clip(str(find_clip()))
    (tmp_path / "real" / "c").mkdir(parents=True)
    for k in (0, 100):   # upright and tilted head
        cv2.imwrite(str(tmp_path / "real" / "c" / f"{k}.png"), frames[k])
    spec = default_spec("test", roi="face")
    recs, summary = build_crops(discover(tmp_path, require_fake=False), spec, tmp_path / "cache", progress=False)
    assert summary["crops"] == 2 and summary["frames_without_face"] == 0
    roi = RoiExtractor(spec)
    for rec in recs:
        k = int(rec.source.rsplit("/", 1)[1].split(".")[0])
        crop = cv2.imread(rec.file)
        box = roi(frames[k])[0]
        assert np.array_equal(preprocess([crop], [full_box(crop)], spec), preprocess([frames[k]], [box], spec))
        x0, y0, x1, y1 = rec.face_box
        assert 0 <= x0 < x1 <= crop.shape[1] and 0 <= y0 < y1 <= crop.shape[0]
    again, s2 = build_crops(discover(tmp_path, require_fake=False), spec, tmp_path / "cache", progress=False)
    assert s2["cache_hits"] == 2 and [r.file for r in again] == [r.file for r in recs]


def test_split_is_by_video_and_stratified():
    from fakewatch.training.data import CropRecord
    recs = [CropRecord(f"{v}_{i}.png", lab, v, v, i, (0, 0, 1, 1))
            for lab, vids in ((0, [f"r{j}" for j in range(5)]), (1, [f"f{j}" for j in range(5)]))
            for v in vids for i in range(4)]
    split = split_groups(recs, 0.2, seed=1)
    assert set(split) == {r.video_id for r in recs}
    val = [v for v, s in split.items() if s == "val"]
    assert sum(v.startswith("r") for v in val) == 1 and sum(v.startswith("f") for v in val) == 1
    assert split == split_groups(recs, 0.2, seed=1)
    json.dumps(split)
