"""Reader-side scaling (streams/working_size.py) and decoder threads: the frames the pipeline gets, their scale,
and a real decoded file through a SourceGroup."""
from __future__ import annotations

import numpy as np
import pytest

from fakewatch.streams import SourceGroup, open_source
from fakewatch.streams.source import decode_params
from fakewatch.streams.working_size import WorkingSize


def test_whole_factor_reduction_keeps_aspect_and_averages_pixels():
    ws = WorkingSize(540)
    assert [ws.factor(h) for h in (480, 540, 541, 720, 1080, 1620, 2160)] == [1, 1, 2, 2, 2, 3, 4]
    img = np.zeros((1080, 1920, 3), np.uint8)
    img[0::2, :, :] = 200             # alternating rows: a 2x area reduction averages them to 100
    out, f = ws.apply(img)
    assert f == 2 and out.shape == (540, 960, 3) and out.dtype == np.uint8
    assert np.all(out == 100)


def test_small_frames_pass_through_untouched_and_odd_sizes_lose_only_edge_pixels():
    ws = WorkingSize(360)
    small = np.full((360, 640, 3), 7, np.uint8)
    out, f = ws.apply(small)
    assert f == 1 and out is small
    odd = np.arange(721 * 1281 * 3, dtype=np.uint32).astype(np.uint8).reshape(721, 1281, 3)
    out, f = ws.apply(odd)
    assert f == 3 and out.shape == (240, 427, 3)   # 721 // 3, 1281 // 3: the last row/column are dropped


@pytest.mark.parametrize("bad", [0, 100, 119, 540.5, "540", None])
def test_bad_working_size_is_refused_with_what_to_do(bad):
    with pytest.raises(ValueError, match=r"reader max height \(--reader-max-height\) must be an integer >= 120 px.*540 for 1080p"):
        WorkingSize(bad)


def test_decode_params():
    import cv2

    assert decode_params(0) == []
    assert decode_params(1) == [cv2.CAP_PROP_N_THREADS, 1]


def _collect(group, n, timeout_s=20.0, ids=()):
    """At least ``n`` frames, and at least one from each source in ``ids`` (unpaced sources start in any order:
    a busy machine can deliver ten frames of one before the other's first)."""
    import time

    frames, end = [], time.monotonic() + timeout_s
    while (len(frames) < n or not set(ids) <= {f.source_id for f in frames}) and time.monotonic() < end \
            and not group.all_finished:
        frames += group.wait_frames(0.2)
    return frames


def test_group_scales_decoded_file_frames_in_the_reader(video_25fps):
    """Working size 120: a 320x240 file is halved in the reader (the frame says by how much, the live event gives
    the source's own size), a 160x120 file in the same group is left as it is."""
    import cv2

    src_big = video_25fps.with_name("big_240.mp4")
    cap = cv2.VideoCapture(str(video_25fps))
    out = cv2.VideoWriter(str(src_big), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 240))
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.write(cv2.resize(img, (320, 240)))
    out.release()
    cap.release()
    events = []
    srcs = [open_source(str(src_big), source_id="big", pace=False), open_source(str(video_25fps), source_id="small",
                                                                                pace=False)]
    group = SourceGroup(srcs, on_event=events.append, working_size=WorkingSize(120), decode_threads=1)
    assert all(s.decode_threads == 1 for s in srcs)
    with group:
        frames = _collect(group, 10, ids=("big", "small"))
    big = [f for f in frames if f.source_id == "big"]
    small = [f for f in frames if f.source_id == "small"]
    assert big and small
    assert {(f.image.shape, f.scale) for f in big} == {((120, 160, 3), 2)}
    assert {(f.image.shape, f.scale) for f in small} == {((120, 160, 3), 1)}
    live = [e.message for e in events if e.state == "live" and e.source_id == "big"]
    assert live and live[0].startswith("320x240") and "scaled to 160x120 in the reader" in live[0]


def test_negative_decode_threads_refused(video_25fps):
    with pytest.raises(ValueError, match=r"decode_threads \(--decode-threads\) must be >= 0"):
        SourceGroup([open_source(str(video_25fps), pace=False)], decode_threads=-1)
