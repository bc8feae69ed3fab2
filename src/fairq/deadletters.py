"""Dead letters of a queue: read them in place, move them back, delete them (``fairq dlq``).

Data only; :mod:`fairq.cli.dlq` prints. Each call opens its own connection, so a
crash at any point leaves every dead letter it had not yet acked in ``QUEUE.dlq``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import message as wire
from .broker import Broker, BrokerDeath, Delivery, open_backend
from .broker.topology import dead_letter_queue
from .errors import FairqError
from .message import Envelope

#: What says a message lived and died before; a replayed copy drops all of it (and every ``x-`` header).
PAST_LIFE_HEADERS = (wire.H_REASON, wire.H_ERROR_TYPE, wire.H_ERROR_MESSAGE, wire.H_TRACEBACK, wire.H_ATTEMPTS,
                     wire.H_WORKER, wire.H_QUEUE, wire.H_DEAD_AT, wire.H_REDELIVERIES)
PLAIN_TASK = "(plain)"
UNKNOWN = "(unknown)"
#: How long ``list`` and ``replay`` wait for each batch of dead letters they looked at to be ready again.
SETTLE_SECONDS = 5.0
#: Dead letters handed back per batch. A quorum queue returns more than 32 at once in hash order
#: (an Erlang map), so larger batches would shuffle the queue.
RETURN_BATCH = 32


class NoDeadLetterQueue(FairqError):
    """``QUEUE.dlq`` does not exist: nothing was ever dead-lettered from QUEUE, or the name is wrong."""


@dataclass(frozen=True)
class DeadLetter:
    """What an operator needs to decide about one dead letter, and to debug it from fairq alone."""

    message_id: str | None
    task: str
    reason: str
    error_type: str | None
    error_message: str | None
    attempts: int | None
    worker: str | None
    dead_at: str | None
    size: int
    args: list[Any] | None = None  #: None when the body is not a task's JSON object
    kwargs: dict[str, Any] | None = None
    traceback: str | None = None
    sent_at: str | None = None  #: the message's AMQP timestamp: when it was first sent
    queue: str | None = None  #: the queue it died in, as the worker recorded it
    body: str | None = None  #: the body as text, only when it holds no task arguments (plain, not JSON)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _body_object(envelope: Envelope) -> dict[str, Any] | None:
    """The body as a JSON object, or None (plain bytes, not JSON, not an object)."""
    try:
        body = json.loads(envelope.body)
    except ValueError:  # UnicodeDecodeError included
        return None
    return body if isinstance(body, dict) else None


def _task_name(envelope: Envelope, body: dict[str, Any] | None) -> str:
    if not wire.is_fairq(envelope):
        return PLAIN_TASK
    name = envelope.headers.get(wire.H_TASK)
    if name is None and body is not None:  # the header is optional for other producers; the body names it too
        name = body.get("task")
    return _text(name) or UNKNOWN


def describe(envelope: Envelope, death: BrokerDeath | None = None) -> DeadLetter:
    """Read why ``envelope`` is dead: fairq's headers first, else ``death``, what the broker recorded
    when it dead-lettered the message itself (:attr:`~fairq.broker.Delivery.death`)."""
    headers = envelope.headers
    reason = _text(headers.get(wire.H_REASON)) or (death.reason if death else None) or UNKNOWN
    attempts = headers.get(wire.H_ATTEMPTS)
    body = _body_object(envelope) if wire.is_fairq(envelope) else None
    args, kwargs = (body or {}).get("args"), (body or {}).get("kwargs")
    readable = isinstance(args, list) and isinstance(kwargs, dict)
    return DeadLetter(
        message_id=envelope.message_id,
        task=_task_name(envelope, body),
        reason=reason,
        error_type=_text(headers.get(wire.H_ERROR_TYPE)),
        error_message=_text(headers.get(wire.H_ERROR_MESSAGE)),
        attempts=wire.as_count(attempts),
        worker=_text(headers.get(wire.H_WORKER)),
        dead_at=_text(headers.get(wire.H_DEAD_AT)) or (death.at if death else None),
        size=len(envelope.body),
        args=args if readable else None,
        kwargs=kwargs if readable else None,
        traceback=_text(headers.get(wire.H_TRACEBACK)),
        sent_at=_text(envelope.timestamp),
        queue=_text(headers.get(wire.H_QUEUE)) or (death.queue if death else None),
        body=None if readable else _text(envelope.body),
    )


def revived(envelope: Envelope) -> Envelope:
    """The copy a replay publishes: same body, id and properties; attempts from 0; no trace of its death.

    A kept delivery count would have a worker dead-letter the copy again at once
    for its delivery limit; a kept broker death record could make the broker drop
    it as a dead-letter cycle (:func:`fairq.message.republished` drops the broker's headers).
    """
    alive = dataclasses.replace(envelope, headers={
        name: value for name, value in envelope.headers.items() if name not in PAST_LIFE_HEADERS})
    return wire.republished(alive, **({wire.H_ATTEMPT: 0} if wire.is_fairq(envelope) else {}))


@dataclass
class _Walk:
    """One pass over a dead-letter queue: the connection, and the dead letters taken but not acked."""

    broker: Broker
    dlq: str
    kept: list[Delivery] = dataclasses.field(default_factory=list)


@asynccontextmanager
async def _walk(url: str, queue: str) -> AsyncIterator[_Walk]:
    """Open ``queue``'s dead-letter queue; on the way out hand back ``kept`` in order, then close.

    On an error the connection just closes: the broker takes back everything unacked,
    possibly out of order, but nothing is lost.
    """
    broker = open_backend(url).broker()
    await broker.connect()
    try:
        dlq = dead_letter_queue(queue)
        if await broker.stats(dlq) is None:
            raise NoDeadLetterQueue(f"{queue} has no dead-letter queue ({dlq} does not exist)")
        walk = _Walk(broker, dlq)
        yield walk
        for start in range(0, len(walk.kept), RETURN_BATCH):
            await _give_back(broker, dlq, walk.kept[start:start + RETURN_BATCH])
        # A round trip before closing: a backend may drop settlements still queued when it closes (sent without waiting).
        await broker.stats(dlq)
    finally:
        await broker.close()


async def _give_back(broker: Broker, dlq: str, batch: list[Delivery]) -> None:
    """Requeue ``batch`` in order and wait (bounded) until the queue has them ready again.

    Waiting keeps each return small (see RETURN_BATCH), and means a ``replay`` run
    right after ``list`` sees every dead letter that ``list`` showed.
    """
    before = await broker.stats(dlq)
    target = (before.ready if before else 0) + len(batch)
    for delivery in batch:
        await delivery.requeue()
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        stats = await broker.stats(dlq)
        if stats is None or stats.ready >= target:
            return
        await asyncio.sleep(0.005)


async def count(url: str, queue: str) -> int:
    """How many dead letters of ``queue`` are ready."""
    async with _walk(url, queue) as walk:
        stats = await walk.broker.stats(walk.dlq)
        return stats.ready if stats else 0


async def list_dead_letters(url: str, queue: str) -> list[DeadLetter]:
    """Every dead letter of ``queue``, oldest first, all left in place and in order.

    An unacked ``get`` hides a message until it is settled, so one pass walks the
    queue once. Some backends count the pass as a delivery (RabbitMQ's quorum queues).
    """
    async with _walk(url, queue) as walk:
        while (delivery := await walk.broker.get(walk.dlq)) is not None:
            walk.kept.append(delivery)
        return [describe(d.envelope, d.death) for d in walk.kept]


async def find(url: str, queue: str, message_id: str | None = None) -> DeadLetter | None:
    """The oldest dead letter of ``queue`` (with ``message_id``, the first with that id), or None; all stay in place.

    It walks the whole queue as :func:`list_dead_letters` does: handing back only the
    first few would move them behind the rest.
    """
    for letter in await list_dead_letters(url, queue):
        if message_id is None or letter.message_id == message_id:
            return letter
    return None


async def replay(url: str, queue: str, *, limit: int | None = None, message_id: str | None = None) -> int:
    """Move dead letters back to ``queue``, oldest first; returns how many.

    ``limit`` caps the count; ``message_id`` moves only the first dead letter with
    that id (``limit`` is then moot). Each copy is confirmed by the broker before
    its dead letter is acked: a crash in between duplicates a task, never loses one.
    """
    if message_id is not None:
        limit = 1
    async with _walk(url, queue) as walk:
        moved = 0
        while (delivery := await walk.broker.get(walk.dlq)) is not None:
            if moved == limit or (message_id is not None and delivery.envelope.message_id != message_id):
                # Walk on to the end: requeueing only the first few would move them behind the rest.
                walk.kept.append(delivery)
                continue
            await walk.broker.publish(queue, revived(delivery.envelope))
            await delivery.ack()
            moved += 1
            if message_id is None and moved == limit:
                break  # nothing taken is left over: the rest stay as they are
        return moved


async def purge(url: str, queue: str) -> int:
    """Delete every ready dead letter of ``queue``; returns how many."""
    async with _walk(url, queue) as walk:
        return await walk.broker.purge(walk.dlq)
