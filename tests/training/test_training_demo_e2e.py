"""End to end: the bundled demo model on the demo source through the watch pipeline, load-robust.

The demo is read unpaced for a fixed number of frames (3 segments of 120: real, fake, real), so every frame is
scored on media time whatever the machine's load; nothing here depends on wall-clock speed. Steady-state per-frame
decisions (frame P(fake) >= the model's threshold) must agree with the demo's ground truth on >= 90 % of scored
frames, a FAKE alert must be raised inside the manipulated range, and none on real footage.
"""
from __future__ import annotations

from pathlib import Path

from fakewatch.core.contract import load_spec
from fakewatch.runtime.backends import load_runner
from fakewatch.runtime.decision import DecisionConfig
from fakewatch.runtime.pipeline import Pipeline, WatchConfig
from fakewatch.streams.demo import DemoSource

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "runtime" / "assets" / "demo" / "demo_model.onnx"
SEG = 120              # demo schedule: real [0, 120), fake [120, 240), real [240, 360) at 29.97 fps
WARMUP_S = 0.5


def test_watch_demo_alerts_follow_the_manipulated_ranges():
    assert DEMO_MODEL.is_file(), (f"bundled demo model missing: {DEMO_MODEL} "
                                  f"(python -m fakewatch.training.make_demo_model)")
    spec = load_spec(DEMO_MODEL)
    # the CLI's defaults (runtime/watch_cli.py): enter/leave = threshold +- 0.1, 2 s window, 1 s hold
    decision = DecisionConfig(enter=min(1.0, spec.threshold + 0.1), leave=max(0.0, spec.threshold - 0.1))
    cfg = WatchConfig(decision=decision, status_interval_s=0, keep_frame_records=4 * SEG)
    source = DemoSource(pace=False, loops=3)          # 3 x 120-frame clip = exactly the three segments
    summary = Pipeline([source], load_runner(DEMO_MODEL, intra_op_threads=1), cfg).run()

    assert summary.stop_reason == "all sources ended"
    frames = [r for r in summary.frame_records if r.get("truth")]
    assert [r["seq"] for r in frames] == list(range(3 * SEG)), "unpaced: every frame, in order"
    scored = [r for r in frames if r["frame_score"] is not None and r["stream_time"] >= WARMUP_S]
    assert len(scored) >= 0.9 * len([r for r in frames if r["stream_time"] >= WARMUP_S]), "faces missed"
    agree = [(r["frame_score"] >= spec.threshold) == r["truth"]["fake"] for r in scored]
    rate = sum(agree) / len(agree)
    n_fake = sum(r["truth"]["fake"] for r in scored)
    assert 0 < n_fake < len(scored), "the run must cover real and manipulated frames"
    assert rate >= 0.90, f"frame decisions agree with ground truth on {rate:.1%} of {len(scored)} frames"

    # FAKE alerts: the state record that enters FAKE must lie inside the manipulated range
    fake_alerts = [r for r in summary.events if r["type"] == "state" and r["state"] == "FAKE" and r.get("truth")]
    assert any(SEG <= r["truth"]["frame"] < 2 * SEG for r in fake_alerts), \
        f"no FAKE alert inside manipulated frames [{SEG}, {2 * SEG}); alerts at {[r['truth']['frame'] for r in fake_alerts]}"
    for r in fake_alerts:      # and none while the stream shows only real footage
        assert r["truth"]["fake"], f"FAKE alert on a real frame: {r}"
    # the stream goes back to REAL in the last real segment
    back = [r for r in summary.events if r["type"] == "state" and r["state"] == "REAL" and r.get("truth")
            and r["truth"]["frame"] >= 2 * SEG]
    assert back, "no return to REAL after the manipulated range"
