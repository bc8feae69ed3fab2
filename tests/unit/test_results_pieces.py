"""Results without a broker: the mailbox's bounds, memory's shelf, the wire format, the handle as an id,
and results through fairq.testing."""

from __future__ import annotations

import asyncio
import json
import pickle

import pytest

import fairq
from fairq.broker.clock import ManualClock
from fairq.broker.mailbox import Mailbox
from fairq.broker.memory import MemoryStore
from fairq.broker.memory_results import ResultShelf
from fairq.results import wire
from fairq.results.handle import Handle
from fairq.testing import run_tasks


def test_a_mailbox_forgets_results_after_its_ttl_and_beyond_its_capacity() -> None:
    clock = ManualClock()
    box = Mailbox(ttl=10.0, capacity=3, clock=clock)
    box.deliver("a", b"1")
    box.deliver("a", b"again")  # a task run twice: the first result stays
    assert box.get("a") == b"1"
    clock.now = 11.0
    assert box.get("a") is None
    for key in "bcde":
        box.deliver(key, key.encode())
    assert len(box) == 3 and box.get("b") is None and box.get("e") == b"e"


def test_a_mailbox_wait_returns_what_arrived_or_nothing_at_the_timeout() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        box = Mailbox(ttl=60.0)
        nothing = await box.wait(["x"], 0.01)
        asyncio.get_running_loop().call_soon(box.deliver, "y", b"{}")
        return nothing, await box.wait(["x", "y"], 5)

    assert asyncio.run(scenario()) == ([], ["y"])


def test_memorys_shelf_keeps_results_for_their_ttl_on_the_stores_clock() -> None:
    clock = ManualClock()
    shelf = ResultShelf(MemoryStore(clock=clock))
    shelf.put("m", b"r", ttl=5)
    assert shelf.get("m") == b"r"
    clock.now = 6
    assert shelf.get("m") is None
    shelf.put("n", b"s", ttl=5)
    assert shelf.get("n") == b"s"


def test_the_wire_format_carries_a_value_or_the_failure() -> None:
    assert json.loads(wire.encode_value([1, "a"])) == {"v": 1, "ok": True, "value": [1, "a"]}
    assert wire.decode(wire.encode_value({"k": None})).unwrap("id") == {"k": None}
    failed = wire.decode(wire.encode_dead({"fairq-dead-reason": "task failed", "fairq-error-type": "KeyError",
                                           "fairq-error-message": "'k'", "fairq-traceback": "Traceback..."}))
    with pytest.raises(fairq.TaskFailed) as raised:
        failed.unwrap("id")
    assert (raised.value.reason, raised.value.error_type, raised.value.traceback) == ("task failed", "KeyError",
                                                                                      "Traceback...")
    not_json = wire.decode(wire.encode_value((1, 2)))  # a tuple would come back a list: refused
    assert not not_json.ok and not_json.failure is not None and not_json.failure["reason"] == "result not JSON"
    with pytest.raises(fairq.DecodeError):
        wire.decode(b'{"v": 2, "ok": true}')


def test_a_handle_is_its_message_id_everywhere_an_id_went() -> None:
    handle = Handle("ab" * 16)
    assert handle == "ab" * 16 and str(handle) == "ab" * 16 and {handle: 1}["ab" * 16] == 1
    assert json.dumps([handle]) == json.dumps(["ab" * 16])
    assert type(pickle.loads(pickle.dumps(handle))) is str
    with pytest.raises(fairq.NoResult):
        handle.result()
    assert isinstance(fairq.ResultTimeout("x"), TimeoutError)


def test_results_work_in_an_apps_unit_tests_through_fairq_testing() -> None:
    app = fairq.App("memory://results-unit")

    @app.task(name="unit.double", result=True)
    def double(x: int) -> int:
        return 2 * x

    with run_tasks(app) as queue:
        handle = double.send(21)
        group = fairq.group([double.call(i) for i in range(5)]).send()
        queue.run_until_idle()
        assert handle.result(timeout=5) == 42
        assert group.results(timeout=5) == [0, 2, 4, 6, 8]
    app.close()
