"""The demo, measured: ``python -m fakewatch.training.demo_check [--duration S] [--out FILE]``.

Runs ``fakewatch watch`` (no arguments: the demo stream and the bundled demo model) for ``--duration`` seconds with
per-frame records, then compares them with the demo's ground truth: per-frame decisions (frame P(fake) >= the model's
threshold) vs ``truth.fake``, FAKE alerts inside each fully covered manipulated range, FAKE alerts on real footage,
and the delay from a range's start to its alert. Writes the numbers as JSON (the README and the model card quote it).

``--unpaced`` instead reads the demo unpaced for exactly 3 segments (real, manipulated, real: 360 frames), in
process, with the CLI's decision defaults: every frame is scored on media time, so the figures do not depend on the
machine's load (the paced run drops frames on a busy CPU). ``tests/training/test_training_demo_e2e.py`` asserts the
same thing for the bundled model.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SEGMENT = 120          # demo frames per segment (pattern "RF": odd segments are manipulated)
WARMUP_S = 0.5


def analyse(records: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    frames = [r for r in records if r.get("type") == "frame" and r.get("truth")]
    if not frames:
        raise RuntimeError("no frame records with ground truth: was the source the demo stream?")
    steady = [r for r in frames if r["stream_time"] >= WARMUP_S]
    scored = [r for r in steady if r["frame_score"] is not None]
    agree = [(r["frame_score"] >= threshold) == r["truth"]["fake"] for r in scored]
    real_ok = [a for a, r in zip(agree, scored) if not r["truth"]["fake"]]
    fake_ok = [a for a, r in zip(agree, scored) if r["truth"]["fake"]]
    last = max(r["truth"]["frame"] for r in frames)
    ranges = [(s, s + SEGMENT) for s in range(SEGMENT, last + 1, 2 * SEGMENT) if s + SEGMENT <= last + 1]
    alerts = [r for r in records if r.get("type") == "state" and r.get("state") == "FAKE" and r.get("truth")]
    per_range = []
    for s, e in ranges:
        inside = [r for r in alerts if s <= r["truth"]["frame"] < e]
        first = min((r["truth"]["frame"] for r in inside), default=None)
        per_range.append({"frames": [s, e], "fake_alert": bool(inside),
                          "alert_delay_frames": None if first is None else first - s})
    false_alerts = [r["truth"]["frame"] for r in alerts if not r["truth"]["fake"]]
    from fakewatch.core.metrics import roc_auc

    truth = [int(r["truth"]["fake"]) for r in scored]
    # threshold-free: does the model rank this person's manipulated frames above his real ones at all?
    auc = round(float(roc_auc(truth, [r["frame_score"] for r in scored])), 4) if 0 < sum(truth) < len(truth) else None
    return {"frames": len(frames), "scored_after_warmup": len(scored), "steady_frames": len(steady),
            "threshold": threshold, "frame_auc": auc,
            "agreement": round(sum(agree) / max(1, len(agree)), 4),
            "real_frames_correct": round(sum(real_ok) / max(1, len(real_ok)), 4),
            "fake_frames_correct": round(sum(fake_ok) / max(1, len(fake_ok)), 4),
            "manipulated_ranges": per_range,
            "fake_alert_in_every_range": all(r["fake_alert"] for r in per_range) and bool(per_range),
            "fake_alerts_on_real_frames": false_alerts}


def run_unpaced(model: Path, threads: int = 1, segments: int = 3) -> list[dict[str, Any]]:
    """Records (frames, then alert/state events) of the demo read unpaced for ``segments`` 120-frame segments."""
    from fakewatch.core.contract import load_spec
    from fakewatch.runtime.backends import load_runner
    from fakewatch.runtime.decision import DecisionConfig
    from fakewatch.runtime.pipeline import Pipeline, WatchConfig
    from fakewatch.streams.demo import DemoSource

    spec = load_spec(model)
    # the CLI's defaults (runtime/watch_cli.py): enter/leave = threshold +- 0.1
    decision = DecisionConfig(enter=min(1.0, spec.threshold + 0.1), leave=max(0.0, spec.threshold - 0.1))
    cfg = WatchConfig(decision=decision, status_interval_s=0, keep_frame_records=segments * SEGMENT + SEGMENT)
    summary = Pipeline([DemoSource(pace=False, loops=segments)], load_runner(model, intra_op_threads=threads),
                       cfg).run()
    return [{**r, "type": "frame"} for r in summary.frame_records] + list(summary.events)


def main(argv: list[str] | None = None) -> int:
    from fakewatch.core.contract import load_spec

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=17.0, help="seconds of demo stream (default 17: 2 fake ranges)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write the JSON here")
    ap.add_argument("--model", type=Path, help="a model other than the bundled demo model")
    ap.add_argument("--unpaced", action="store_true",
                    help="every frame of 3 segments (360), in process: load-independent (--duration is ignored)")
    args = ap.parse_args(argv)
    model = args.model or Path(__file__).resolve().parents[1] / "runtime" / "assets" / "demo" / "demo_model.onnx"
    if not model.is_file():
        raise SystemExit(f"demo_check: model {model} does not exist; pass --model PATH or build the demo model "
                         f"(python -m fakewatch.training.make_demo_model --install)")
    spec = load_spec(model)
    if args.unpaced:
        doc = {"command": "python -m fakewatch.training.demo_check " + " ".join(argv or sys.argv[1:]),
               "mode": "unpaced, 3 segments", "model": str(model.name), "model_sha_prefix": _sha(model),
               **analyse(run_unpaced(model, args.threads), float(spec.threshold))}
        return _emit(doc, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        jl = Path(tmp) / "watch.jsonl"
        cmd = [sys.executable, "-m", "fakewatch", "watch", "--json", str(jl), "--frames", "--no-live",
               "--duration", str(args.duration), "--status-interval", "0", "--threads", str(args.threads)]
        if args.model:
            cmd += ["--model", str(args.model)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode:
            raise SystemExit(f"fakewatch watch failed ({proc.returncode}): {proc.stderr[-2000:]}")
        records = [json.loads(line) for line in jl.read_text().splitlines() if line.strip()]
    doc = {"command": "python -m fakewatch.training.demo_check " + " ".join(argv or sys.argv[1:]),
           "watch": " ".join(["fakewatch"] + cmd[3:]), "model": str(model.name),
           "model_sha_prefix": _sha(model), **analyse(records, float(spec.threshold))}
    return _emit(doc, args.out)


def _emit(doc: dict[str, Any], out: Path | None) -> int:
    text = json.dumps(doc, indent=2) + "\n"
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    print(text)
    return 0


def _sha(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


if __name__ == "__main__":
    sys.exit(main())
