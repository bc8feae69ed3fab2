"""The send path without a broker: batch encoding, spliced properties, and the producer's
pipeline against an in-memory broker (timeouts bound stalls, not batches; no publish outlives
a batch; lost connections republish what was not confirmed)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from pamqp import commands as spec
from pamqp.header import ContentHeader

from fairq import message as wire
from fairq.broker import Backend, Broker, QueueSpec
from fairq.broker.rabbitmq import SharedProperties, to_properties
from fairq.errors import BrokerError, ChannelClosed, EncodeError, QueueFull
from fairq.message import Envelope
from fairq.producer import Producer

# -- encoding ---------------------------------------------------------------------------


def test_message_ids_are_distinct_uuid4_hex() -> None:
    ids = wire.new_message_ids(5000)
    assert len(set(ids)) == 5000
    for text in ids[:500]:
        parsed = uuid.UUID(text)
        assert parsed.hex == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_batch_encodes_each_call_as_a_single_send_would() -> None:
    calls = [((1, "two", [3.5, None]), {"k": {"x": True}}), ((), {}), ((2.5, False), {})]
    batch = wire.encode_tasks("m.f", calls, max_bytes=1000)
    for envelope, (args, kwargs) in zip(batch, calls):
        single = wire.encode_task("m.f", args, kwargs, max_bytes=1000)
        assert envelope.body == single.body
        assert envelope.headers == single.headers and envelope.content_type == single.content_type
        assert json.loads(envelope.body) == {"task": "m.f", "args": list(args), "kwargs": kwargs}
    assert len({e.message_id for e in batch}) == 3
    assert all(e.headers is batch[0].headers and e.timestamp is batch[0].timestamp for e in batch)


@pytest.mark.parametrize("bad", [(1, (2, 3)), (float("nan"),), ({1: "int key"},), (object(),), (1, float("inf"))])
def test_one_bad_call_refuses_the_whole_batch(bad: tuple[Any, ...]) -> None:
    with pytest.raises(EncodeError):
        wire.encode_tasks("t", [((1,), {}), (bad, {}), ((2,), {})], max_bytes=1000)


# -- properties ---------------------------------------------------------------------------


def _envelope(message_id: str, timestamp: datetime | None, headers: dict[str, Any]) -> Envelope:
    return Envelope(b"{}", headers, message_id, wire.CONTENT_TYPE, timestamp)


@pytest.mark.parametrize("timestamp", [datetime(2024, 5, 1, 12, 0, 7, tzinfo=timezone.utc), None])
@pytest.mark.parametrize("headers", [{"fairq-protocol": 1, "fairq-task": "a.b", "fairq-attempt": 0}, {}])
def test_spliced_properties_encode_exactly_as_pamqp_does(timestamp: datetime | None, headers: dict[str, Any]) -> None:
    first = _envelope("0" * 32, timestamp, headers)
    shared = SharedProperties(first)
    assert shared.valid
    for message_id in [*wire.new_message_ids(20), "short", "x" * 200]:
        envelope = _envelope(message_id, timestamp, headers)
        assert shared.fits(envelope)
        spliced = shared.properties(envelope)
        assert spliced.marshal() == to_properties(envelope).marshal()
        decoded = ContentHeader()
        decoded.unmarshal(ContentHeader(body_size=2, properties=spliced).marshal())
        assert decoded.properties.message_id == message_id and decoded.properties.headers == (headers or None)


def test_shared_properties_fit_only_the_same_headers_object_and_timestamp() -> None:
    now = datetime.now(timezone.utc)
    headers = {"fairq-protocol": 1}
    shared = SharedProperties(_envelope("a", now, headers))
    assert not shared.fits(_envelope("b", now, dict(headers)))
    assert not shared.fits(_envelope("b", datetime.now(timezone.utc), headers))
    assert shared.fits(_envelope("b", now, headers))
    assert isinstance(shared.properties(_envelope("b", now, headers)), spec.Basic.Properties)


# -- the producer's pipeline, on an in-memory broker -----------------------------------------


class MemoryBroker(Broker):
    """Confirms each publish ``confirm_after`` seconds after it starts (never, if None); can drop
    the connection after a number of publishes, and refuse when ``room`` runs out."""

    display_url = "memory://"

    def __init__(self, world: World) -> None:
        self.world = world
        self.alive = True

    async def connect(self) -> None:
        self.world.connections += 1
        self.alive = True

    async def close(self) -> None:
        self.alive = False

    async def wait_lost(self) -> BaseException:
        raise NotImplementedError

    async def declare(self, spec_: QueueSpec) -> None:
        pass

    async def publish(self, queue: str, envelope: Envelope, delay: float = 0.0) -> None:
        world = self.world
        world.started += 1
        world.in_flight += 1
        world.most_in_flight = max(world.most_in_flight, world.in_flight)
        try:
            if world.drop_after is not None and world.started > world.drop_after:
                world.drop_after = None
                self.alive = False
            if not self.alive:
                raise ChannelClosed("connection lost")
            if world.confirm_after is None:
                await asyncio.Event().wait()
            await asyncio.sleep(world.confirm_after or 0)
            if not self.alive:
                raise ChannelClosed("connection lost")
            if world.room is not None:
                if world.room <= 0:
                    raise QueueFull("full")
                world.room -= 1
            world.confirmed.append(envelope.message_id or "")
        finally:
            world.in_flight -= 1

    async def consume(self, *args: Any) -> Any:
        raise NotImplementedError

    async def stats(self, queue: str) -> Any:
        raise NotImplementedError

    async def get(self, queue: str) -> Any:
        raise NotImplementedError

    async def delete(self, queue: str) -> None:
        raise NotImplementedError

    async def purge(self, queue: str) -> int:
        raise NotImplementedError


class World:
    def __init__(self, confirm_after: float | None = 0.0, drop_after: int | None = None,
                 room: int | None = None) -> None:
        self.confirm_after = confirm_after
        self.drop_after = drop_after
        self.room = room
        self.started = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.connections = 0
        self.confirmed: list[str] = []


class WorldBackend(Backend):
    """A backend whose every connection is a fake broker on ``world``: the producer asks it after each loss."""

    kind = "memory"

    def __init__(self, world: World) -> None:
        self.url = self.display_url = "fake://world"
        self.world = world

    def broker(self) -> Broker:
        return MemoryBroker(self.world)


@pytest.fixture
def world() -> Iterator[World]:
    yield World()


def envelopes(count: int) -> list[Envelope]:
    return wire.encode_tasks("t", [((i,), {}) for i in range(count)], max_bytes=1000)


def run(coro_fn: Callable[[], Any]) -> Any:
    async def main() -> Any:
        try:
            return await coro_fn()
        finally:
            leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            assert not leftovers, f"publishes left running: {leftovers[:3]}"

    return asyncio.run(main())


def test_a_batch_that_keeps_moving_finishes_however_much_longer_than_the_timeout(world: World) -> None:
    world.confirm_after = 0.02
    batch = envelopes(200)
    loop_time: list[float] = []

    async def send() -> int:
        started = asyncio.get_running_loop().time()
        sent = await Producer(WorldBackend(world)).publish_many(QueueSpec("q"), batch, window=10, timeout=0.1)
        loop_time.append(asyncio.get_running_loop().time() - started)
        return sent

    assert run(send) == 200
    assert loop_time[0] > 0.3  # 20 rounds of 20 ms: three times the timeout, and it did not give up
    assert sorted(world.confirmed) == sorted(e.message_id for e in batch)
    assert world.most_in_flight == 10


def test_a_broker_that_confirms_nothing_is_given_up_on_after_the_timeout(world: World) -> None:
    world.confirm_after = None

    async def send() -> None:
        await Producer(WorldBackend(world)).publish_many(QueueSpec("q"), envelopes(50), window=10, timeout=0.2)

    loop = asyncio.new_event_loop()
    try:
        started = loop.time()
        with pytest.raises(BrokerError, match="without progress: no confirm"):
            loop.run_until_complete(_checked(send))
        assert 0.2 <= loop.time() - started < 1.0
    finally:
        loop.close()
    assert world.in_flight == 0 and world.started == 10  # the window, then nothing more; none left running


async def _checked(coro_fn: Callable[[], Any]) -> Any:
    try:
        return await coro_fn()
    finally:
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert not leftovers


def test_a_lost_connection_republishes_every_unconfirmed_message_on_a_new_one(world: World) -> None:
    world.drop_after = 120
    batch = envelopes(500)

    async def send() -> int:
        return await Producer(WorldBackend(world)).publish_many(QueueSpec("q"), batch, window=50, timeout=5)

    assert run(send) == 500
    assert world.connections == 2
    assert set(world.confirmed) == {e.message_id for e in batch}  # none lost (duplicates allowed)


def test_a_full_queue_refuses_or_waits_for_room(world: World) -> None:
    world.room = 30
    batch = envelopes(50)

    async def refuse() -> int:
        return await Producer(WorldBackend(world)).publish_many(QueueSpec("q", max_length=30), batch, window=10, timeout=5)

    with pytest.raises(QueueFull, match="30 of 50 accepted"):
        run(refuse)

    world.room, world.confirmed = 30, []

    async def wait() -> int:
        async def make_room() -> None:
            await asyncio.sleep(0.3)
            world.room = 100

        room = asyncio.ensure_future(make_room())
        try:
            return await Producer(WorldBackend(world)).publish_many(QueueSpec("q"), batch, window=10, wait_if_full=True,
                                                            timeout=5)
        finally:
            await room

    assert run(wait) == 50
    assert sorted(world.confirmed) == sorted(e.message_id for e in batch)
