"""Which failures are retried: retry_verdict is the one place that decides, after_failure carries it out."""

from __future__ import annotations

import pytest

import fairq
from fairq import message as wire
from fairq.errors import ConfigurationError, TimeLimitExceeded
from fairq.worker.settlement import Outcome, after_failure, retry_verdict


def no_jitter(low: float, high: float) -> float:
    return high


app = fairq.App()


@app.task(name="default_policy", max_retries=2)
def default_policy() -> None: ...


@app.task(name="only_connections", max_retries=2, retry_on=ConnectionError)
def only_connections() -> None: ...


@app.task(name="dont_wins", max_retries=2, retry_on=(OSError,), dont_retry=(FileNotFoundError, TypeError))
def dont_wins() -> None: ...


@pytest.mark.parametrize(("task", "exc", "attempt", "retried"), [
    (default_policy, KeyError("k"), 1, True),
    (default_policy, TimeLimitExceeded("slow"), 2, True),
    (default_policy, KeyError("k"), 3, False),  # max_retries=2: the third run was the last
    (default_policy, TypeError("bug"), 1, False),  # the default dont_retry
    (default_policy, fairq.Reject("no"), 1, False),
    (default_policy, fairq.Retry(), 2, True),
    (default_policy, fairq.Retry(), 3, False),
    (default_policy, KeyboardInterrupt(), 1, False),  # not an Exception: not in the default retry_on
    (only_connections, ConnectionResetError(), 1, True),
    (only_connections, KeyError("k"), 1, False),
    (only_connections, TypeError("bug"), 1, False),
    (only_connections, fairq.Retry(), 1, True),  # an explicit Retry needs no retry_on
    (dont_wins, PermissionError(), 1, True),
    (dont_wins, FileNotFoundError(), 1, False),  # in both: dont_retry wins
    (dont_wins, fairq.Retry(), 1, True),  # while retries remain, even with dont_retry
    (None, KeyError("raw"), 1, False),  # raw handlers are never retried
])
def test_retry_verdict(task: fairq.Task[..., None] | None, exc: BaseException, attempt: int, retried: bool) -> None:
    assert retry_verdict(task, attempt, exc)[0] is retried


def test_a_type_not_retried_is_dead_lettered_after_one_run_with_its_traceback() -> None:
    try:
        len(5)  # type: ignore[arg-type]
    except TypeError as exc:
        settlement = after_failure(default_policy, 1, exc, "w", no_jitter)
    assert settlement.outcome is Outcome.DEAD
    assert settlement.headers[wire.H_REASON] == wire.REASON_FAILED
    assert settlement.headers[wire.H_ATTEMPTS] == 1
    assert "TypeError" in settlement.headers[wire.H_TRACEBACK]
    assert settlement.note == "dead-lettered (task failed: TypeError is not retried (dont_retry))"


def test_a_retried_failure_waits_its_backoff_and_says_so() -> None:
    settlement = after_failure(default_policy, 1, KeyError("k"), "w", no_jitter)
    assert settlement.outcome is Outcome.RETRY and settlement.headers == {wire.H_ATTEMPT: 1}
    assert settlement.delay == pytest.approx(1.0) and settlement.note == "retry 1/2 in 1.0 s"
    assert after_failure(default_policy, 1, fairq.Retry(delay=7), "w", no_jitter).delay == 7
    assert after_failure(default_policy, 1, fairq.Reject("no"), "w", no_jitter).headers[wire.H_REASON] == \
        wire.REASON_REJECTED


@pytest.mark.parametrize("bad", [ValueError("an instance"), "ValueError", (KeyError, 3)])
def test_retry_options_take_exception_types_only(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="retry_on takes exception types"):
        app.task(name="bad_retry_on", retry_on=bad)(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="dont_retry takes exception types"):
        app.task(name="bad_dont_retry", dont_retry=bad)(lambda: None)  # type: ignore[arg-type]
