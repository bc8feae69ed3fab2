"""The raw AMQP client (aiormq, the client fairq builds on) as a "system" that only sends.

Bodies have the shape of a fairq task (``{"task", "args", "kwargs"}``); publishes
are persistent and ``mandatory`` and wait for publisher confirms, pipelined with
up to ``WINDOW`` outstanding (fairq's own default window), or one at a time.
The queue is declared by the harness. Consumers: ``raw_consumer.py``.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import aiormq
import settings
from pamqp.commands import Basic

WINDOW = 1000
_loop = asyncio.new_event_loop()
_channel: aiormq.abc.AbstractChannel | None = None


def body(i: int, seconds: float, sent: float) -> bytes:
    return json.dumps({"task": "bench.work", "args": [i, seconds, sent], "kwargs": {}}).encode()


async def _open() -> aiormq.abc.AbstractChannel:
    global _channel
    if _channel is None:
        connection = await aiormq.connect(settings.broker_url())
        _channel = await connection.channel(publisher_confirms=True)
    return _channel


async def _publish(channel: aiormq.abc.AbstractChannel, payload: bytes) -> None:
    props = Basic.Properties(delivery_mode=2, content_type="application/json", message_id=uuid.uuid4().hex)
    confirm = await channel.basic_publish(payload, routing_key=settings.queue(), properties=props, mandatory=True)
    if not isinstance(confirm, Basic.Ack):
        raise RuntimeError(f"publish not acked: {confirm!r}")


async def _batch(items: list[tuple[int, float]], sent: float) -> None:
    channel = await _open()
    slots = asyncio.Semaphore(WINDOW)

    async def one(i: int, seconds: float) -> None:
        async with slots:
            await _publish(channel, body(i, seconds, sent))

    await asyncio.gather(*(one(i, s) for i, s in items))


def send_batch(items: list[tuple[int, float]], sent: float) -> None:
    _loop.run_until_complete(_batch(items, sent))


def send_one(i: int, seconds: float, sent: float) -> None:
    _loop.run_until_complete(_publish(_loop.run_until_complete(_open()), body(i, seconds, sent)))


def close() -> None:
    if _channel is not None:
        _loop.run_until_complete(_channel.connection.close())
