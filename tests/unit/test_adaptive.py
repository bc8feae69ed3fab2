"""The adaptive window's arithmetic, fed with made-up measurements."""

from __future__ import annotations

import math

from fairq.worker.adaptive import (
    FIRST_DEPTH,
    GROW_AFTER,
    HEADROOM,
    LONG_FLOOR,
    MAX_EXTRA,
    MIN_INTERVAL,
    MIN_SAMPLES,
    REFRESH,
    SHORT_RUN,
    SHRINK,
    AdaptiveWindow,
)


def measured(slots: int, task: float, gap: float) -> AdaptiveWindow:
    w = AdaptiveWindow(slots)
    for _ in range(MIN_SAMPLES):
        w.refilled(gap)
        w.task_finished(task)
    return w


def long_task(w: AdaptiveWindow, seconds: float) -> None:
    """As the worker reports one: its watchdog saw it running long, then it finished."""
    w.running_long()
    w.task_finished(seconds, counted=True)


def test_it_starts_fair_and_stays_fair_without_enough_measurements() -> None:
    w = AdaptiveWindow(2)
    assert w.window == 2 and not w.deep
    w.task_finished(0.0001)
    w.refilled(0.002)
    assert w.decide(now=10.0) is None


def test_long_tasks_keep_one_task_per_slot() -> None:
    assert measured(3, task=0.5, gap=0.002).decide(now=10.0) is None


def test_short_tasks_deepen_the_window_to_cover_the_round_trip() -> None:
    w = measured(2, task=0.0005, gap=0.002)
    # HEADROOM × gap / task tasks per slot, on top of the slot's own
    assert w.decide(now=10.0) == 2 * (1 + math.ceil(HEADROOM * 0.002 / 0.0005))


def test_the_window_deepens_in_steps_as_it_turns_over_up_to_the_cap() -> None:
    w = measured(1, task=1e-7, gap=0.05)
    steps = []
    for _ in range(5):
        target = w.decide(now=10.0)
        assert target is not None
        w.changed(target, now=10.0)
        steps.append(target)
        for _ in range(GROW_AFTER * target - 1):
            w.task_finished(1e-7)
            assert w.decide(now=10.0) is None  # not before the window has turned over GROW_AFTER times
        w.task_finished(1e-7)
    assert steps == [1 + FIRST_DEPTH, 2 * (1 + FIRST_DEPTH), 4 * (1 + FIRST_DEPTH), 8 * (1 + FIRST_DEPTH), 1 + MAX_EXTRA]
    assert w.decide(now=10.0) is None  # at the cap


def test_a_process_holds_at_most_max_extra_beyond_its_slots_however_many_it_has() -> None:
    for slots in (1, 3, 8):
        w = measured(slots, task=1e-7, gap=0.05)
        assert w.target() == slots * (1 + MAX_EXTRA // slots)
        assert w.target() - slots <= MAX_EXTRA


def test_growth_waits_for_turnovers_and_a_deep_window_shrinks_only_to_a_quarter() -> None:
    w = measured(1, task=0.0005, gap=0.002)
    first = w.decide(now=10.0)
    assert first == 1 + min(FIRST_DEPTH, HEADROOM * 4)  # HEADROOM round trips of 2 ms, in tasks of 0.5 ms
    w.changed(first, now=10.0)
    for _ in range(GROW_AFTER * first - 1):
        w.task_finished(0.00005)  # ten times shorter: the target is far deeper ...
    assert w.decide(now=10.0) is None  # ... but the window has not turned over often enough yet
    window = first
    while True:  # then it doubles, step by step, as each window turns over
        w.task_finished(0.00005)
        step = w.decide(now=10.0)
        if step is None:
            break
        assert step == 2 * window
        w.changed(step, now=10.0)
        window = step
        for _ in range(GROW_AFTER * window - 1):
            w.task_finished(0.00005)
    target = 1 + HEADROOM * 40  # 2 ms ÷ 0.05 ms per round trip
    assert w.target() == target and window < target < 2 * window  # the next doubling would overshoot it
    for _ in range(40):
        w.task_finished(0.0002)  # slower, as tiny tasks waver with load: a third of the window, no change
    assert w.decide(now=20.0) is None
    for _ in range(40):
        w.task_finished(0.001)  # five times slower again: a quarter or less, worth a new consumer
    assert w.decide(now=10.0 + MIN_INTERVAL / 2) is None  # but not within the interval
    smaller = w.decide(now=30.0)
    assert smaller is not None and 1 < smaller <= window // 4


def test_a_long_task_in_a_deep_window_parks_it_and_long_work_sends_it_back_to_fair() -> None:
    w = measured(1, task=0.0001, gap=0.002)
    w.changed(w.decide(now=10.0) or 0, now=10.0)
    assert w.deep
    assert w.long_after == LONG_FLOOR  # 50 × 0.1 ms is below the floor
    assert w.should_park(LONG_FLOOR * 1.01) and not w.should_park(LONG_FLOOR * 0.99)
    for _ in range(20):
        w.task_finished(0.3)
    assert w.decide(now=20.0) == 1  # the median turned long
    w.changed(1, now=20.0)
    assert not w.should_park(5.0)  # in a fair window nothing waits behind a long task


def test_what_counts_as_long_follows_the_median() -> None:
    w = measured(1, task=0.01, gap=0.002)
    assert w.long_after == 50 * 0.01
    for _ in range(2 * REFRESH + 32):
        w.task_finished(0.02)
    assert w.long_after == 50 * 0.02


def test_gaps_from_an_empty_queue_are_clipped() -> None:
    w = measured(1, task=0.001, gap=5.0)  # idle periods, not round trips
    assert w.gap_seconds is not None and w.gap_seconds <= 0.05


def test_a_few_long_tasks_among_short_ones_do_not_make_the_short_ones_look_long() -> None:
    w = measured(1, task=0.0001, gap=0.002)
    for _ in range(3):
        w.task_finished(1.0)
        for _ in range(10):
            w.task_finished(0.0001)
    assert w.task_seconds == 0.0001  # the median; a mean would say 0.07 s and keep the window fair
    assert w.target() > 1


def test_a_fair_window_goes_deep_only_after_a_run_of_short_tasks() -> None:
    w = measured(1, task=0.0001, gap=0.002)
    w.changed(1, now=10.0)  # back to fair (parked behind a long task, say)
    for _ in range(SHORT_RUN - 1):
        w.task_finished(0.0001)
        assert w.decide(now=10.0) is None
    w.task_finished(2.0)  # a long one breaks the run
    for _ in range(SHORT_RUN - 1):
        w.task_finished(0.0001)
    assert w.decide(now=10.0) is None
    w.task_finished(0.0001)
    assert (w.decide(now=10.0) or 0) > 1  # no interval to wait: a run of short tasks is evidence enough


def test_long_tasks_among_short_ones_cap_the_depth() -> None:
    w = measured(1, task=0.00001, gap=0.05)
    assert w.target() == 1 + MAX_EXTRA
    for _ in range(40):  # one task in 250 runs a second
        long_task(w, 1.0)
        for _ in range(249):
            w.task_finished(0.00001)
    # a window holds about a quarter of the stretch between long tasks, so few hold one
    assert 30 <= w.target() - 1 <= 100


def test_the_share_of_long_tasks_is_believed_after_a_few_hundred_tasks() -> None:
    w = measured(1, task=0.00001, gap=0.05)
    for _ in range(2):  # 500 tasks, two of them long: not the thousand the running average spans
        for _ in range(249):
            w.task_finished(0.00001)
        long_task(w, 1.0)
    assert abs(w.long_share - 2 / 508) < 0.001
    assert 30 <= w.target() - 1 <= 100


def test_a_task_counts_as_long_only_when_seen_running_long_not_by_its_measured_time() -> None:
    # A no-op measured at 60 ms was a stalled process, not a long task: the watchdog did not see it
    # running long on a tick that came on time, so the window stays as deep as before.
    w = measured(1, task=0.00001, gap=0.05)
    for _ in range(200):
        w.task_finished(0.00001)
    w.task_finished(0.06)
    assert w.long_share == 0 and w.target() == 1 + MAX_EXTRA
    long_task(w, 0.06)
    assert w.long_share > 0 and w.target() < 1 + MAX_EXTRA


def test_a_deep_window_of_tiny_tasks_does_not_shrink_when_their_median_wavers() -> None:
    w = measured(1, task=0.000004, gap=0.0005)
    w.changed(1 + MAX_EXTRA, now=0.0)
    for _ in range(64):
        w.task_finished(0.00004)  # ten times slower: the target falls below a quarter ...
    assert SHRINK * w.target() <= w.window
    assert w.decide(now=10.0) is None  # ... but 1,024 of them are 41 ms of work: not worth a new consumer
    for _ in range(64):
        w.task_finished(0.0002)  # 0.2 ms each: 0.2 s of work in hand, a deep window still
    assert 1 < w.target() and w.decide(now=20.0) == w.target()


def test_a_new_session_starts_fair_and_measures_the_round_trip_again() -> None:
    w = measured(2, task=0.0001, gap=0.002)
    w.changed(w.target(), 0.0)
    assert w.deep
    w.restarted(10.0)  # the session was lost: the next may be on another node of a cluster
    assert w.window == 2 and not w.deep and w.gap_seconds is None
    assert w.decide(20.0) is None  # no decision before a few refill gaps on the new session
    for _ in range(MIN_SAMPLES):
        w.refilled(0.002)
        w.task_finished(0.0001)
    assert (w.decide(30.0) or 0) > 2  # the task times it learnt before still count
