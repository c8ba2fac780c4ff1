"""End to end: `fakewatch watch` (no model argument: the bundled demo model) on the live demo source.

Steady-state per-frame decisions (frame P(fake) >= the model's threshold) must agree with the demo's ground truth on
>= 90 % of scored frames, and a FAKE alert must be raised inside every manipulated range the run fully covers.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fakewatch.core.contract import load_spec

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "runtime" / "assets" / "demo" / "demo_model.onnx"
DURATION_S = 10.5      # demo schedule: real 0-4 s, fake 4-8 s, real 8-12 s (120-frame segments at 29.97 fps)
WARMUP_S = 0.5


def test_watch_demo_alerts_follow_the_manipulated_ranges(tmp_path):
    assert DEMO_MODEL.is_file(), (f"bundled demo model missing: {DEMO_MODEL} "
                                  f"(python -m fakewatch.training.make_demo_model)")
    spec = load_spec(DEMO_MODEL)
    out = tmp_path / "watch.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "fakewatch", "watch", "--json", str(out), "--frames", "--no-live",
         "--duration", str(DURATION_S), "--status-interval", "0", "--threads", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    frames = [r for r in records if r["type"] == "frame" and r.get("truth")]
    assert len(frames) >= 60, f"only {len(frames)} frames processed in {DURATION_S} s"
    scored = [r for r in frames if r["frame_score"] is not None and r["stream_time"] >= WARMUP_S]
    assert len(scored) >= 0.9 * len([r for r in frames if r["stream_time"] >= WARMUP_S]), "faces missed"
    agree = [(r["frame_score"] >= spec.threshold) == r["truth"]["fake"] for r in scored]
    rate = sum(agree) / len(agree)
    n_fake = sum(r["truth"]["fake"] for r in scored)
    assert 0 < n_fake < len(scored), "the run must cover real and manipulated frames"
    assert rate >= 0.90, f"frame decisions agree with ground truth on {rate:.1%} of {len(scored)} frames"

    # FAKE alerts: the state record that enters FAKE must lie inside a manipulated range
    last = max(r["truth"]["frame"] for r in frames)
    seg = 120
    covered = [(s, s + seg) for s in range(seg, last + 1, 2 * seg) if s + seg <= last + 1]
    assert covered, f"run too short: last frame {last}"
    fake_alerts = [r for r in records if r["type"] == "state" and r["state"] == "FAKE" and r.get("truth")]
    for s, e in covered:
        assert any(s <= r["truth"]["frame"] < e for r in fake_alerts), \
            f"no FAKE alert inside manipulated frames [{s}, {e}); alerts at {[r['truth']['frame'] for r in fake_alerts]}"
    # and no FAKE alert is raised while the stream shows only real footage (after warm-up)
    for r in fake_alerts:
        assert r["truth"]["fake"], f"FAKE alert on a real frame: {r}"
