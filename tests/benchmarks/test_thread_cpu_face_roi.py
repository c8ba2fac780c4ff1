"""benchmarks/thread_cpu.py (CPU per thread group) and the face-ROI report writer with reader/cadence columns."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from fakewatch.benchmarks.thread_cpu import ThreadCpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/task is Linux only")


def _burn(cpu_s: float, then_sleep_s: float = 0.0) -> None:
    t0 = time.thread_time()
    x = 0
    while time.thread_time() - t0 < cpu_s:     # CPU time, not wall time: holds on a loaded machine
        x += 1
    time.sleep(then_sleep_s)                   # idle, so the sampler reads the final CPU time before the thread ends


def test_cpu_is_charged_to_the_group_of_the_thread_that_used_it():
    with ThreadCpu(interval_s=0.02) as tc:
        # CPU a thread spends after the sampler's last look is not seen (documented): the thread idles a while
        t = threading.Thread(target=_burn, args=(0.3, 0.5), name="streams-reader[cam0]")
        t.start()
        t.join()
        _burn(0.1)                                  # the main thread: "loop"
    s = tc.seconds()
    assert s["decode"] >= 0.25                      # the reader's 0.3 s, even though it ended before __exit__
    assert s["loop"] >= 0.08
    assert s.get("roi", 0.0) == 0.0


def test_face_roi_report_has_reader_and_cadence_columns(tmp_path):
    from fakewatch.benchmarks.face_roi import write

    row = {"kind": "e2e", "status": "ok", "size": "720p", "streams": 8, "detector": "blazeface_full on onnxruntime",
           "detect_every": 3, "max_detect_every": 6, "frames_at_detect_every": {"3": 100, "6": 900},
           "processed_min": 0.931, "p50_ms": 10.0, "p99_ms": 90.0, "detector_ms_per_frame": 1.5,
           "cpu_ms_per_frame": {"decode": 1.0, "native": 2.5, "roi": 1.2, "loop": 2.0},
           "decode_cpu_ms_per_decoded_frame": 3.4, "reader_max_height": None, "cpu_ceiling": 0.9876}
    scaled = {**row, "reader_max_height": 360, "processed_min": 0.95}
    doc = {"command": "x", "machine": "m", "nice": 0, "load_before": "l0", "load_after": "l1", "footage": "f",
           "rows": [row, scaled]}
    paths = write(doc, tmp_path)
    md = (tmp_path / "face_roi.md").read_text()
    assert "| 720p | 8 |  | blazeface_full on onnxruntime | 3 (6) | 3: 100, 6: 900 | 93.1% | >= 90% |" in md
    assert "| 3.5, 1.2, 2.0 | 3.4 | 99% |" in md                   # decode includes the FFmpeg threads
    assert "| 720p | 8 | 360 | blazeface_full on onnxruntime | 3 (6) | 3: 100, 6: 900 | 95.0% |  |" in md
    assert (tmp_path / "face_roi.csv").is_file() and len(paths) >= 3
