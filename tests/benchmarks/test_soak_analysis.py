"""The soak verdict on synthetic runs: each goal can fail on its own (no soak is run here; see benchmarks/soak.py)."""
from __future__ import annotations

import pytest

from fakewatch.benchmarks.soak import Restart, Sample, SoakConfig, analyse, markdown

T0 = 1_000_000.0
RTSP, FILES = ["rtsp://127.0.0.1:1/cam0", "rtsp://127.0.0.1:1/cam1"], ["a.mp4"]


def run(rss=lambda t: 200.0, fds=lambda t: 15, threads=lambda t: 38, live_delay=1.5, alerts_every=10.0,
        returncode=0, tracebacks=0, duration=600.0):
    samples = [Sample(t, rss(t), fds(t), threads(t), t / 10) for t in range(0, int(duration), 2)]
    restarts = [Restart(T0 + t, T0 + t + 0.5) for t in range(60, int(duration) - 10, 60)]
    recs = [{"type": "source", "state": "live", "stream": s, "ts": r.ready_ts + live_delay + i * 0.8}
            for r in restarts for i, s in enumerate(RTSP)]
    recs += [{"type": "state", "stream": "a.mp4", "ts": T0 + t} for t in range(5, int(duration), int(alerts_every))]
    recs.append({"type": "summary", "stop_reason": "duration reached", "ts": T0 + duration})
    return analyse(samples, restarts, recs, RTSP, FILES, child_start_ts=T0, duration_s=duration, warmup_s=60,
                   returncode=returncode, tracebacks=tracebacks)


def test_a_healthy_run_passes():
    v = run()
    assert v["pass"], v
    assert v["rss"]["growth_pct"] == 0 and v["reconnect"]["restarts"] == 9
    assert v["reconnect"]["worst_s"] == pytest.approx(1.5 + 0.8) and v["alerts"]["per_window_min"] >= 11


@pytest.mark.parametrize("kw, goal", [
    ({"rss": lambda t: 200.0 + 0.05 * t}, "rss"),                    # +27 MiB over 9 min: a leak
    ({"fds": lambda t: 15 + t // 60}, "fds"),                         # one fd per restart
    ({"threads": lambda t: 38 + t // 60}, "threads"),                 # one thread per restart
    ({"live_delay": 4.5}, "reconnect"),                               # the second stream is back 5.3 s later
    ({"alerts_every": 200.0}, "alerts"),
    ({"returncode": 1}, "crashes"),
    ({"tracebacks": 1}, "crashes"),
])
def test_each_goal_fails_on_its_own(kw, goal):
    v = run(**kw)
    assert not v[goal]["ok"] and not v["pass"]
    assert all(v[g]["ok"] for g in ("rss", "fds", "threads", "reconnect", "alerts", "crashes") if g != goal), v


def test_a_stream_that_never_comes_back_is_missing_and_md_names_the_verdict():
    v = run()
    samples = [Sample(t, 200.0, 15, 38, 0.0) for t in range(0, 600, 2)]
    restarts = [Restart(T0 + 100, T0 + 100.5)]
    recs = [{"type": "source", "state": "live", "stream": RTSP[0], "ts": T0 + 102},
            {"type": "summary", "stop_reason": "x", "ts": T0 + 600}]
    v = analyse(samples, restarts, recs, RTSP, [], child_start_ts=T0, duration_s=600, warmup_s=60, returncode=0,
                tracebacks=0)
    assert v["reconnect"]["missing"] == 1 and not v["reconnect"]["ok"] and v["alerts"]["ok"]
    env = {"command": "python -m fakewatch.benchmarks.soak", "timestamp_utc": "now"}
    assert "**Overall: FAIL**" in markdown(v, SoakConfig(duration_s=600), env)


def test_config_is_validated():
    with pytest.raises(ValueError, match="invalid settings"):
        SoakConfig(duration_s=60, warmup_s=60)
