"""demo_check.analyse on hand-made watch records (no model run)."""
from __future__ import annotations

from fakewatch.training.demo_check import analyse


def _frame(n, score):
    fake = (n // 120) % 2 == 1
    return {"type": "frame", "stream_time": n / 30.0, "frame_score": score,
            "truth": {"frame": n, "fake": fake}}


def test_agreement_alerts_per_range_and_false_alerts():
    recs = []
    for n in range(0, 360):
        fake = (n // 120) % 2 == 1
        score = 0.9 if fake else 0.1
        if n in (30, 31):          # two wrong real frames
            score = 0.8
        recs.append(_frame(n, score))
    recs.append({"type": "state", "state": "FAKE", "truth": {"frame": 170, "fake": True}})
    recs.append({"type": "state", "state": "FAKE", "truth": {"frame": 300, "fake": False}})
    out = analyse(recs, 0.5)
    steady = 360 - 15                                   # frames before 0.5 s are warm-up
    assert out["scored_after_warmup"] == steady
    assert out["agreement"] == round((steady - 2) / steady, 4)
    assert out["manipulated_ranges"] == [{"frames": [120, 240], "fake_alert": True, "alert_delay_frames": 50}]
    assert out["fake_alert_in_every_range"] is True
    assert out["fake_alerts_on_real_frames"] == [300]
    # 2 wrong reals at 0.8 below 225 fakes at 0.9: ranking is still perfect
    assert out["frame_auc"] == 1.0


def test_unpaced_check_of_a_missing_model_says_what_to_do(tmp_path):
    import pytest

    from fakewatch.training.demo_check import main

    with pytest.raises(SystemExit, match="does not exist; pass --model"):
        main(["--unpaced", "--model", str(tmp_path / "nope.onnx")])
