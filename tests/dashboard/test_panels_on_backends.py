"""The dashboard on every backend: its event stream draws each run as a bar on its slot's lane, and the
dead-letter panel lists, replays and purges through HTTP as the page does.
"""

from __future__ import annotations

import uuid

import httpx

from tests.support.backends import Harness
from tests.support.dashboard import StreamReader, post
from tests.support.workers import Journal, wait_for

SECRET = "pw-" + uuid.uuid4().hex[:8]


def _ours(reader: StreamReader, name: str) -> list[dict[str, object]]:
    """The bars of workers named ``name``, with their lanes and task names."""
    lanes, names = reader.lanes(), reader.names()
    out = []
    for bar in reader.bars().values():
        lane = lanes.get(bar[1])
        if lane is not None and str(lane[1]).startswith(name):
            out.append({"worker": lane[1], "process": lane[2], "slot": lane[3], "start": bar[2], "end": bar[3],
                        "task": names.get(bar[4]), "outcome": bar[5], "message_id": bar[6]})
    return out


def test_each_running_task_is_a_bar_on_its_slot_that_ends_with_its_outcome(backend: Harness, served, queue: str,
                                                                             journal: Journal) -> None:
    name = f"dash-{uuid.uuid4().hex[:6]}"
    with StreamReader(served.url) as reader, backend.workers(queue, journal, threads=2, name=name):
        first = backend.send(queue, "record", "a", 1.0)
        second = backend.send(queue, "record", "b", 1.0)
        running = reader.wait(lambda r: len(b := [b for b in _ours(r, name) if b["end"] is None and
                                                  b["message_id"] in (first, second)]) == 2 and b,
                              "both tasks running as bars", timeout=30)
        assert {b["slot"] for b in running} == {0, 1}, running  # one lane per slot, both busy at once
        done = reader.wait(lambda r: len(d := [b for b in _ours(r, name) if b["message_id"] in (first, second)
                                               and b["outcome"] == "ok"]) == 2 and d, "both bars ended", timeout=30)
    assert all(b["task"] == "record" for b in done)
    assert all(b["end"] - b["start"] >= 1.0 for b in done), done
    assert sorted(journal.tags("done")) == ["a", "b"]


def _dead(server, queue: str) -> int | None:
    rows = httpx.get(server.url + "api/deadletters", timeout=30).json()["queues"]
    return next((row["dead"] for row in rows if row["queue"] == queue), None)


def test_dead_letters_are_read_whole_replayed_one_or_all_and_purged(backend: Harness, served, queue: str,
                                                                   journal: Journal) -> None:
    name = f"dash-{uuid.uuid4().hex[:6]}"
    with StreamReader(served.url) as reader, backend.workers(queue, journal, name=name):
        message_id = backend.send(queue, "explode", f"boom at amqp://app:{SECRET}@db.example/")
        wait_for(lambda: _dead(served, queue) == 1, what="the dead letter in the panel's list")
        response = httpx.get(served.url + "api/deadletters/letters", params={"queue": queue}, timeout=30)
        assert SECRET not in response.text
        [letter] = response.json()["letters"]
        assert letter["message_id"] == message_id and letter["task"] == "explode"
        assert letter["reason"] == "task failed" and letter["error_type"] == "ValueError"
        assert letter["args"] == ["boom at amqp://app:***@db.example/"]
        assert "ValueError" in letter["traceback"] and "raise ValueError" in letter["traceback"]

        replayed = post(served, "/api/deadletters/replay", {"queue": queue, "message_id": message_id})
        assert replayed.json() == {"queue": queue, "replayed": 1}
        # The replayed task runs again (a second bar for the same message) and, failing again, dies again.
        reader.wait(lambda r: len([b for b in _ours(r, name) if b["message_id"] == message_id
                                   and b["outcome"] == "dead"]) == 2, "the replayed run's bar")
        wait_for(lambda: _dead(served, queue) == 1, what="the dead letter back")
        assert post(served, "/api/deadletters/replay", {"queue": queue}).json()["replayed"] == 1
        reader.wait(lambda r: len([b for b in _ours(r, name) if b["message_id"] == message_id]) == 3, "a third run")
        wait_for(lambda: _dead(served, queue) == 1, what="the dead letter back again")

        missing = post(served, "/api/deadletters/replay", {"queue": queue, "message_id": "no-such-id"})
        assert missing.status_code == 404
        assert post(served, "/api/deadletters/purge", {"queue": queue}).status_code == 400
        assert _dead(served, queue) == 1
        assert post(served, "/api/deadletters/purge", {"queue": queue, "confirm": queue}).json()["purged"] == 1
        assert _dead(served, queue) == 0
        empty = httpx.get(served.url + "api/deadletters/letters", params={"queue": queue}, timeout=30).json()
        assert empty["total"] == 0 and empty["letters"] == []
