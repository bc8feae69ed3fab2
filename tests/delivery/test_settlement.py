"""How deliveries end, on every backend: dead letters with their reasons, retries with backoff, delays.

One ``fairq worker`` (in-process Worker objects on memory) serves the whole module per backend; each test
sends its own tags and reads only its own dead letters (the dead-letter queue is emptied first).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest

from fairq.broker.topology import dead_letter_queue
from fairq.deadletters import DeadLetter
from tests.support.backends import Harness, Workers, unique_queue
from tests.support.workers import Journal, wait_for


@dataclass
class Shared:
    queue: str
    journal: Journal
    workers: Workers


@pytest.fixture(scope="module")
def shared(backend: Harness, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    queue = unique_queue("settle")
    journal = Journal(tmp_path_factory.mktemp("journal") / "journal.txt")
    try:
        with backend.workers(queue, journal) as workers:
            yield Shared(queue, journal, workers)
    finally:
        backend.delete_with_dead_letters(queue)


@pytest.fixture
def q(backend: Harness, shared: Shared) -> Iterator[str]:
    """The module's queue, its dead letters purged: what this test dead-letters is all there is."""
    backend.purge(dead_letter_queue(shared.queue))
    yield shared.queue
    assert shared.workers.alive(), "the worker stopped during the test"


def dead_letters(backend: Harness, queue: str, count: int) -> list[DeadLetter]:
    wait_for(lambda: backend.ready(dead_letter_queue(queue)) >= count, what=f"{count} dead letter(s)")
    letters = backend.dead_letters(queue)
    assert len(letters) == count, letters
    return letters


def by_id(letters: Iterable[DeadLetter]) -> dict[str | None, DeadLetter]:
    return {letter.message_id: letter for letter in letters}


def test_each_message_that_cannot_be_a_task_is_dead_lettered_with_its_reason_and_the_next_task_runs(
        backend: Harness, shared: Shared, q: str) -> None:
    sent = {
        "not JSON": backend.publish(q, b"\xff\xfe not json", headers={"fairq-protocol": 1},
                                    content_type="application/json"),
        "unknown task": backend.publish_task(q, "no.such.task", [1]),
        "wrong arguments": backend.publish_task(q, "add", [1, 2, 3]),
        "not a fairq message": backend.publish(q, b"Hello World!"),
        "too large": backend.publish_task(q, "record", ["x" * (2 * 1024 * 1024)]),  # over the 1 MiB default
        "task failed": backend.publish_task(q, "explode", ["boom"]),
    }
    backend.send(q, "record", "after-the-bad-ones")
    wait_for(lambda: "after-the-bad-ones" in shared.journal.tags("done"), what="the valid task")
    letters = by_id(dead_letters(backend, q, len(sent)))
    assert {reason: letters[mid].reason for reason, mid in sent.items()} == {reason: reason for reason in sent}
    assert letters[sent["not a fairq message"]].body == "Hello World!"  # the body is kept as sent
    unknown = letters[sent["unknown task"]]
    assert unknown.error_type == "fairq.errors.TaskNotFound" and "no.such.task" in (unknown.error_message or "")
    assert "positional argument" in (letters[sent["wrong arguments"]].error_message or "")
    failed = letters[sent["task failed"]]
    assert (failed.error_type, failed.error_message, failed.attempts, failed.queue) == ("ValueError", "boom", 1, q)
    assert "raise ValueError(message)" in (failed.traceback or "") and failed.worker
    assert backend.ready(q) == 0


def test_failures_are_retried_with_growing_backoff_until_the_task_succeeds(backend: Harness, shared: Shared,
                                                                          q: str) -> None:
    backend.send(q, "flaky", "flaky", 3)  # fails three times; retry_backoff=0.2
    wait_for(lambda: shared.journal.tags("done").count("flaky") == 1, what="the fourth run to succeed")
    starts = shared.journal.times("start", "flaky")
    assert len(starts) == 4
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # Retry n waits between half and all of 0.2 × 2^(n-1) (jitter): each at least the last one's floor, doubled.
    assert all(gap >= 0.1 * 2 ** n for n, gap in enumerate(gaps)), gaps
    assert backend.ready(q) == 0 and backend.ready(dead_letter_queue(q)) == 0


def test_retries_exhausted_dead_letter_the_task_with_attempts_error_and_traceback(backend: Harness, shared: Shared,
                                                                                 q: str) -> None:
    message_id = backend.send(q, "always_fails", "doomed")
    (letter,) = dead_letters(backend, q, 1)
    assert shared.journal.tags("start").count("doomed") == 3  # max_retries=2: three runs
    assert (letter.message_id, letter.reason, letter.attempts) == (message_id, "task failed", 3)
    assert letter.error_type == "KeyError" and "KeyError: 'doomed'" in (letter.traceback or "")
    assert letter.args == ["doomed"]


def test_retry_waits_the_delay_it_asks_for_and_reject_dead_letters_at_once(backend: Harness, shared: Shared,
                                                                          q: str) -> None:
    backend.send(q, "ask_retry", "asks", 1.0)
    refused = backend.send(q, "refuse", "refused")
    (letter,) = dead_letters(backend, q, 1)
    wait_for(lambda: "asks" in shared.journal.tags("done"), what="the retried task")
    first, second = shared.journal.times("start", "asks")
    assert second - first >= 1.0  # never before the delay it asked for
    assert shared.journal.tags("start").count("refused") == 1
    assert (letter.message_id, letter.reason) == (refused, "rejected by task")
    assert letter.error_message == "bad input, retrying will not help"


@pytest.mark.parametrize(("task", "error"), [("buggy", "TypeError"), ("no_value_retry", "ValueError")])
def test_a_type_that_is_not_retried_runs_once_and_is_dead_lettered_with_its_traceback(
        backend: Harness, shared: Shared, q: str, task: str, error: str) -> None:
    # buggy: a TypeError (not retried by default); no_value_retry: ValueError in its dont_retry. Both allow 3 retries.
    tag = f"once-{task}"
    backend.send(q, task, tag)
    (letter,) = dead_letters(backend, q, 1)
    assert shared.journal.tags("start").count(tag) == 1
    assert (letter.reason, letter.attempts, letter.error_type) == ("task failed", 1, error)
    assert f"{error}:" in (letter.traceback or "")


def test_a_delayed_task_starts_no_sooner_than_its_delay(backend: Harness, shared: Shared, q: str) -> None:
    sent = time.time()
    backend.send(q, "record", "delayed", delay=1.0)
    wait_for(lambda: "delayed" in shared.journal.tags("done"), what="the delayed task")
    assert shared.journal.times("start", "delayed")[0] - sent >= 1.0


def test_a_short_delay_is_not_stuck_behind_a_long_one(backend: Harness, shared: Shared, q: str) -> None:
    backend.send(q, "record", "in-an-hour", delay=3600)
    backend.send(q, "record", "soon", delay=0.3)
    wait_for(lambda: "soon" in shared.journal.tags("done"), what="the short delay")
    assert "in-an-hour" not in shared.journal.tags("start")
