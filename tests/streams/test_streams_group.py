"""SourceGroup / reader semantics with scripted in-memory sources (deterministic, no decoding)."""
from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from fakewatch.streams import SourceError, SourceGroup
from fakewatch.streams.backoff import Backoff
from fakewatch.streams.source import RawRead, Source

NO_WAIT = Backoff(initial_s=0.01, max_s=0.02, jitter=0.0)


class Scripted(Source):
    """Frames every `period` s. `fail_reads_after[k]`: the k-th connection fails after that many frames;
    `open_failures`: how many opens fail after each lost connection; `sizes[k]`: frame size of connection k."""

    kind = "fake"

    def __init__(self, name, live=True, period=0.005, frames=None, fail_reads_after=(), open_failures=0,
                 sizes=((8, 6),), crash=None, block_s=0.0):
        super().__init__(name)
        self.live, self.period, self.frames = live, period, frames
        self.fail_reads_after, self.open_failures = list(fail_reads_after), open_failures
        self.sizes, self.crash, self.block_s = sizes, crash, block_s
        self.connection, self.n, self.opens, self.closes, self._pending_open_failures = -1, 0, 0, 0, 0
        self.read_timeout_s = None

    def open(self):
        self.opens += 1
        if self.crash == "open":
            raise ZeroDivisionError("bug in open")
        if self._pending_open_failures > 0:
            self._pending_open_failures -= 1
            raise SourceError(f"{self.uri}: connection refused (scripted)")
        self.connection += 1
        self.in_conn = 0
        w, h = self.sizes[min(self.connection, len(self.sizes) - 1)]
        self.width, self.height, self.fps = w, h, (1 / self.period if self.period else None)

    def read(self):
        if self.block_s:
            time.sleep(self.block_s)
        time.sleep(self.period)
        if self.crash == "read":
            raise KeyError("bug in read")
        if self.frames is not None and self.n >= self.frames:
            return None
        if self.connection < len(self.fail_reads_after) and self.in_conn >= self.fail_reads_after[self.connection]:
            self._pending_open_failures = self.open_failures
            raise SourceError(f"{self.uri}: stream lost (scripted)")
        self.n += 1
        self.in_conn += 1
        return RawRead(np.full((self.height, self.width, 3), self.n % 256, np.uint8), source_ts=self.n * self.period)

    def close(self):
        self.closes += 1


def _run(group, seconds, consumer_sleep=0.0):
    frames, end = [], time.monotonic() + seconds
    while time.monotonic() < end and not group.all_finished:
        frames += group.wait_frames(0.1)
        time.sleep(consumer_sleep)
    return frames


def test_newest_wins_counts_drops_and_never_repeats():
    src = Scripted("fast", period=0.002)
    with SourceGroup([src]) as group:
        frames = _run(group, 1.0, consumer_sleep=0.05)
    st = group.stats()["fast"]
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs))                                   # never the same frame twice
    assert st.dropped > 5 * st.delivered                               # consumer 25x slower: most dropped
    assert st.read - st.delivered - st.dropped in (0, 1)               # all accounted for
    # dropped = gaps between delivered seq numbers + frames read after the last delivery (minus one pending)
    gaps, after = seqs[-1] + 1 - len(seqs), st.read - 1 - seqs[-1]
    assert st.dropped - gaps in (after, after - 1)
    assert st.delivered == len(frames) and st.state == "stopped"


def test_wait_frames_times_out_and_returns_each_frame_once():
    src = Scripted("slow", period=0.3)
    with SourceGroup([src]) as group:
        first = []
        while not first:
            first = group.wait_frames(2.0)
        t0 = time.monotonic()
        again = group.wait_frames(0.1)
        waited = time.monotonic() - t0
    assert len(first) == 1 and again == [] and 0.08 <= waited < 0.25


def test_frames_carry_ids_seq_capture_and_source_time():
    src = Scripted("meta", period=0.01)
    with SourceGroup([src]) as group:
        frames = _run(group, 0.3)
    f = frames[-1]
    assert f.source_id == "meta" and f.source_ts == pytest.approx((f.seq + 1) * 0.01)
    assert f.timings["capture"] == f.capture_ts <= time.monotonic()
    assert f.image.dtype == np.uint8 and f.image.shape == (6, 8, 3)


def test_reconnect_events_backoff_and_size_change():
    src = Scripted("cam", period=0.005, fail_reads_after=[5, 5], open_failures=2, sizes=[(8, 6), (16, 12)])
    events = []
    group = SourceGroup([src], on_event=events.append, backoff=NO_WAIT).start()
    frames = _run(group, 1.0)
    group.stop()
    states = [e.state for e in events]
    # connection 0: 5 frames, lost, 2 failed opens, connection 1 (new size): 5 frames, lost, 2 failed opens, conn 2
    assert states[:9] == ["connecting", "live", "reconnecting", "reconnecting", "reconnecting", "live",
                          "reconnecting", "reconnecting", "reconnecting"]
    assert states[9] == "live" and states[-1] == "stopped"
    assert "frame size changed from 8x6" in events[5].message and "16x12" in events[5].message
    assert "stream lost" in events[2].message and "connection refused" in events[3].message
    assert "retry 1 in" in events[2].message and "retry 3 in" in events[4].message
    st = group.stats()["cam"]
    assert st.reconnects == 2 and (st.width, st.height) == (16, 12)
    seqs = [f.seq for f in frames]
    assert seqs == sorted(set(seqs))                                   # seq keeps counting across reconnects
    assert src.opens == src.connection + 1 + 4 and src.closes >= src.opens + 1   # +1: final close on stop


def test_max_retries_then_failed_and_delays_grow():
    src = Scripted("dies", fail_reads_after=[3], open_failures=100)
    events = []
    bo = Backoff(initial_s=0.05, max_s=1.0, factor=2.0, jitter=0.0, max_retries=3)
    group = SourceGroup([src], on_event=events.append, backoff=bo).start()
    deadline = time.monotonic() + 5
    while not group.all_finished and time.monotonic() < deadline:
        group.wait_frames(0.1)
    group.stop()
    states = [e.state for e in events]
    assert states == ["connecting", "live", "reconnecting", "reconnecting", "reconnecting", "failed"]
    gaps = np.diff([e.ts for e in events[2:]])
    assert gaps == pytest.approx([0.05, 0.10, 0.20], abs=0.05)         # exponential: 0.05, 0.1, 0.2
    assert "gave up after 3 retries" in events[-1].message
    assert group.stats()["dies"].state == "failed" and group.all_finished


def test_backoff_schedule():
    bo = Backoff(initial_s=0.5, max_s=4.0, factor=2.0, jitter=0.25)
    rng = random.Random(0)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        d = [bo.delay(attempt, rng) for _ in range(200)]
        assert base * 0.75 <= min(d) and max(d) <= base * 1.25 and np.std(d) > 0.05 * base   # jittered
    assert not Backoff().exhausted(10**6)                                # forever by default
    assert Backoff(max_retries=2).exhausted(3) and not Backoff(max_retries=2).exhausted(2)
    with pytest.raises(ValueError):
        Backoff(initial_s=5, max_s=1)


def test_file_like_source_fails_without_retry_and_others_continue():
    bad = Scripted("broken-file", live=False, fail_reads_after=[2])
    crashy = Scripted("crashy", crash="read")
    crashy_open = Scripted("crashy-open", crash="open", live=False)
    good = Scripted("good", period=0.01)
    events = []
    with SourceGroup([bad, crashy, crashy_open, good], on_event=events.append,
                     backoff=Backoff(0.01, 0.02, max_retries=2)) as group:
        frames = _run(group, 0.8)
        st = group.stats()
    assert st["broken-file"].state == "failed" and bad.opens == 1            # non-live: no reconnect
    assert st["crashy"].state == "failed" and "KeyError" in st["crashy"].last_error
    assert st["crashy-open"].state == "failed" and "ZeroDivisionError" in st["crashy-open"].last_error
    assert st["good"].state == "live" and st["good"].read > 40
    assert sum(f.source_id == "good" for f in frames) > 40


def test_eof_ends_cleanly_with_last_frame_delivered():
    src = Scripted("clip", live=False, frames=20, period=0.001)
    events = []
    with SourceGroup([src], on_event=events.append) as group:
        time.sleep(0.3)                       # let it hit EOF before anyone reads
        assert not group.all_finished          # the last frame is still waiting
        frames = group.wait_frames(0.1)
        assert group.all_finished and group.wait_frames(0.1) == []
    assert [f.seq for f in frames] == [19]
    assert [e.state for e in events] == ["connecting", "live", "eof"]


def test_lossless_non_live_source_waits_for_consumer():
    src = Scripted("bench", live=False, frames=30, period=0.0)
    src.lossless = True
    with SourceGroup([src]) as group:
        frames = _run(group, 5.0, consumer_sleep=0.01)
    assert [f.seq for f in frames] == list(range(30)) and group.stats()["bench"].dropped == 0


def test_stop_joins_many_readers_quickly():
    sources = [Scripted(f"s{i}", period=0.02) for i in range(12)]
    group = SourceGroup(sources).start()
    _run(group, 0.3)
    t0 = time.monotonic()
    assert group.stop(timeout=2.0)
    assert time.monotonic() - t0 < 0.5
    assert all(not r.thread.is_alive() for r in group._readers)
    assert all(s.state == "stopped" for s in group.stats().values())
    assert all(src.closes >= 1 for src in sources)
    with pytest.raises(RuntimeError, match="stopped"):
        group.start()


def test_stop_is_bounded_even_with_a_stuck_source():
    stuck = Scripted("stuck", block_s=2.0)
    ok = Scripted("ok")
    group = SourceGroup([stuck, ok]).start()
    time.sleep(0.1)
    t0 = time.monotonic()
    assert group.stop(timeout=0.3) is False          # reports the straggler instead of hanging
    assert time.monotonic() - t0 < 0.5
    time.sleep(2.2)
    assert not any(r.thread.is_alive() for r in group._readers)   # and it exits once its read returns


def test_event_callback_errors_are_contained_and_events_buffered():
    def boom(ev):
        raise RuntimeError("consumer bug")

    src = Scripted("cb", fail_reads_after=[2] * 50, open_failures=0)
    group = SourceGroup([src], on_event=boom, backoff=NO_WAIT, max_events=10).start()
    frames = _run(group, 0.5)
    group.stop()
    evs = group.events()
    assert frames and len(evs) == 10 and group.events() == []      # bounded buffer, drained once
    assert all(e.source_id == "cb" for e in evs) and evs[-1].state == "stopped"


def test_group_injects_read_timeout_and_dedupes_ids():
    a, b = Scripted("same"), Scripted("same")
    b.read_timeout_s = 1.5
    group = SourceGroup([a, b], read_timeout_s=0.7).start()
    group.stop()
    assert a.read_timeout_s == 0.7 and b.read_timeout_s == 1.5
    assert set(group.stats()) == {"same", "same#2"}


def test_many_waiters_single_condition():
    """Two consumer threads never receive the same frame."""
    src = Scripted("shared", period=0.001)
    seen, lock = [], threading.Lock()
    with SourceGroup([src]) as group:
        def consume():
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                got = group.wait_frames(0.05)
                with lock:
                    seen.extend(f.seq for f in got)
        ts = [threading.Thread(target=consume) for _ in range(2)]
        [t.start() for t in ts]
        [t.join() for t in ts]
    assert len(seen) == len(set(seen)) > 20
