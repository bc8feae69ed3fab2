"""W1, the article's experiment, on every backend: six tasks on three single-slot workers.

Three long tasks (nine dots) then three short ones (six), sent once all three workers consume. Under
``fair`` the outcome is the ideal greedy schedule (PRODUCT.md): the long ones start at once on the three
free slots, then each short one on a slot as it frees, so every worker runs one long task and then one
short one. Under ``unlimited`` the queue hands them out in turn, whatever each worker is doing: the
article's round-robin, where each worker gets every third message.
"""

from __future__ import annotations

from contextlib import ExitStack

import pytest

from tests.support.backends import Harness
from tests.support.workers import TASKS, Journal, wait_for

LONG = ["1.........", "2.........", "3........."]
SHORT = ["4......", "5......", "6......"]
ARTICLE_TASKS = LONG + SHORT
WORKERS = ["w1", "w2", "w3"]


@pytest.mark.parametrize("policy", ["fair", "unlimited"])
def test_the_articles_six_tasks_on_three_single_slot_workers(backend: Harness, queue: str, journal: Journal,
                                                             policy: str) -> None:
    with ExitStack() as stack:
        for name in WORKERS:  # one after the other: all three consume, in this order, before the first message
            stack.enter_context(backend.workers(queue, journal, module=None, raw_handler=f"{TASKS}:dots",
                                                prefetch=policy, name=name, env={"FAIRQ_DOT_SECONDS": "0.1"}))
        wait_for(lambda: backend.consumers(queue) == 3, what="three consumers")
        for body in ARTICLE_TASKS:
            backend.publish(queue, body.encode())
        wait_for(lambda: len(journal.tags("done")) == 6, what="six tasks done")
    starts = journal.entries("start")
    assert sorted(tag for _, tag, *_ in starts) == sorted(ARTICLE_TASKS)  # each ran once
    got = {name: [tag for _, tag, _, worker, _ in starts if worker == name] for name in WORKERS}
    if policy == "fair":
        assert {tag for _, tag, *_ in starts[:3]} == set(LONG)  # no short task starts before every long one
        assert all(len(tags) == 2 and tags[0] in LONG and tags[1] in SHORT for tags in got.values()), got
    else:
        splits = sorted(sorted(ARTICLE_TASKS.index(tag) % 3 for tag in tags) for tags in got.values())
        assert splits == [[0, 0], [1, 1], [2, 2]], got
