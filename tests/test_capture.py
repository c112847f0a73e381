"""The capture stage's parts on their own: the bounded queue's two policies and the two pairers."""
import threading

import numpy as np
import pytest

from defusion_rt.capture import END, Closed, Frame, FrameQueue, LivePairer, RecordedPairer


def frames(q: FrameQueue, times: list[float], end: bool = True) -> FrameQueue:
    for i, t in enumerate(times):
        q.put(Frame(np.zeros((2, 2, 3), np.uint8), i, t, t))
    if end:
        q.put(END)
    return q


def drain(pairer) -> list[tuple[int, int]]:
    out = []
    while (pair := pairer.next_pair()) is not None:
        out.append((pair[0].index, pair[1].index))
    return out


def test_drop_oldest_keeps_the_freshest_and_counts_every_drop():
    q = FrameQueue(2, "drop_oldest")
    for i in range(5):
        q.put(i)
    assert [q.get(0.1), q.get(0.1)] == [3, 4] and q.dropped == 3 and q.high_water == 2


def test_block_waits_for_room_and_stops_when_asked():
    stop = threading.Event()
    q = FrameQueue(1, "block", stop)
    q.put("first")
    threading.Timer(0.3, q.get).start()  # a consumer makes room later
    q.put("second")                      # blocks until then, loses nothing
    assert q.get(1.0) == "second" and q.dropped == 0
    q.put("third")
    stop.set()
    with pytest.raises(Closed):
        q.put("fourth")                  # full and stopping: the producer is released
    with pytest.raises(Closed):
        FrameQueue(1, "block", stop).get(timeout=5)


def test_end_always_fits_and_an_empty_get_times_out():
    for policy in ("block", "drop_oldest"):
        q = FrameQueue(1, policy)
        q.put("frame")
        q.put(END)
        assert q.get(0.1) == "frame" and q.get(0.1) is END and q.dropped == 0
        with pytest.raises(TimeoutError):
            q.get(timeout=0.05)


def test_recorded_pairs_frame_by_frame_at_equal_rates():
    qa, qb = frames(FrameQueue(20), [i / 10 for i in range(5)]), frames(FrameQueue(20), [i / 10 for i in range(5)])
    p = RecordedPairer(qa, qb, fps_b=10, timeout=1)
    assert drain(p) == [(i, i) for i in range(5)]
    assert (p.stats.pairs, p.stats.repeated_b, p.stats.skipped_b) == (5, 0, 0)


def test_recorded_b_at_twice_the_rate_skips_every_other_b_frame():
    qa = frames(FrameQueue(20), [i / 10 for i in range(4)])
    qb = frames(FrameQueue(20), [i / 20 for i in range(8)])
    p = RecordedPairer(qa, qb, fps_b=20, timeout=1)
    assert drain(p) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert p.stats.skipped_b == 3 and p.stats.repeated_b == 0


def test_recorded_b_at_half_the_rate_repeats_and_a_short_b_ends_the_run():
    qa = frames(FrameQueue(20), [i / 10 for i in range(8)])
    qb = frames(FrameQueue(20), [i / 5 for i in range(2)])  # B: 0.0 and 0.2 s, then it ends
    p = RecordedPairer(qa, qb, fps_b=5, timeout=1)
    # A at 0.3 s is half a B period (0.1 s) past B's last frame: the run ends there, no A frame is dropped before
    assert drain(p) == [(0, 0), (1, 0), (2, 1), (3, 1)]
    assert p.stats.repeated_b == 2


def test_live_pairs_the_freshest_frames_within_tolerance_and_drops_the_rest():
    qa = frames(FrameQueue(10), [0.00, 0.10, 0.20], end=False)
    qb = frames(FrameQueue(10), [0.205], end=False)
    p = LivePairer(qa, qb, tolerance_s=0.02, timeout=1)
    fa, fb = p.next_pair()
    assert (fa.index, fb.index) == (2, 0) and p.stats.dropped_a == 2 and p.stats.dropped_b == 0
    assert p.stats.out_of_tolerance == 0  # the two A frames were stale in the queue, not a pairing choice
    frames(qa, [0.30], end=False)
    frames(qb, [0.40, 0.50], end=False)   # A's 0.30 is too old for B's freshest: dropped, a newer A awaited
    threading.Timer(0.2, lambda: frames(qa, [0.51], end=False)).start()
    fa, fb = p.next_pair()
    assert (fa.timestamp, fb.timestamp) == (0.51, 0.50) and p.stats.dropped_a == 3 and p.stats.dropped_b == 1
    assert p.stats.out_of_tolerance == 1  # A's 0.30 given up for the tighter pair
    qa.put(END)
    assert p.next_pair() is None
