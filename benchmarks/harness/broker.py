"""Administration of the shared broker: declare, count, and clean up what a run created.

Everything here is a short-lived pika BlockingConnection; nothing is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

import pika
import pika.exceptions

#: Sibling queues each system may create next to a run's queue: fairq's dead letters, Dramatiq's delay and dead-letter queues.
SIBLING_SUFFIXES = ("", ".dlq", ".DQ", ".XQ")
#: Exchanges Celery workers declare under fixed names (remote control, events).
CELERY_SHARED_EXCHANGES = ("celery.pidbox", "reply.celery.pidbox", "celeryev")


@contextlib.contextmanager
def channel(url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def server_version(url: str) -> str:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        found = connection._impl.server_properties.get("version", "?")  # noqa: SLF001 - pika keeps them only here
        return found.decode() if isinstance(found, bytes) else str(found)
    finally:
        connection.close()


def declare(url: str, queue: str, kind: str) -> None:
    """A durable queue of ``kind`` ("classic" or "quorum"), as the raw clients use it."""
    arguments = {"x-queue-type": "quorum"} if kind == "quorum" else None
    with channel(url) as ch:
        ch.queue_declare(queue, durable=True, arguments=arguments)


def counts(url: str, queue: str) -> tuple[int, int] | None:
    """(ready messages, consumers) of ``queue``, or None if it does not exist (yet)."""
    try:
        with channel(url) as ch:
            ok = ch.queue_declare(queue, passive=True)
            return ok.method.message_count, ok.method.consumer_count
    except pika.exceptions.ChannelClosedByBroker:
        return None


def wait_consumers(url: str, queue: str, expected: int, timeout: float, alive: Callable[[], None]) -> None:
    """Wait until ``queue`` has ``expected`` consumers; ``alive()`` raises if the workers died."""
    deadline = time.monotonic() + timeout
    while True:
        alive()
        found = counts(url, queue)
        if found is not None and found[1] >= expected:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{queue}: {found[1] if found else 0} of {expected} consumers after {timeout:.0f} s")
        time.sleep(0.1)


def fairq_consumers(url: str, queue: str) -> int:
    """Consumers of ``queue`` as fairq's own backend reports them (how a SQLite run is watched)."""
    from fairq.broker import open_backend

    async def count() -> int:
        broker = open_backend(url).broker()
        await broker.connect()
        try:
            stats = await broker.stats(queue)
            return stats.consumers if stats is not None else 0
        finally:
            await broker.close()

    return asyncio.run(count())


def wait_fairq_consumers(url: str, queue: str, expected: int, timeout: float, alive: Callable[[], None]) -> None:
    """:func:`wait_consumers` for a backend other than the shared RabbitMQ, through fairq's seam."""
    deadline = time.monotonic() + timeout
    while (found := fairq_consumers(url, queue)) < expected:
        alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{queue}: {found} of {expected} consumers after {timeout:.0f} s")
        time.sleep(0.1)


def delete_run(url: str, queue: str) -> None:
    """Delete a run's queue, its siblings and the exchange Celery names after it."""
    with channel(url) as ch:
        for suffix in SIBLING_SUFFIXES:
            ch.queue_delete(queue + suffix)
        ch.exchange_delete(queue)


def existing_exchanges(url: str, names: tuple[str, ...]) -> set[str]:
    found = set()
    for name in names:
        try:
            with channel(url) as ch:
                ch.exchange_declare(name, passive=True)
            found.add(name)
        except pika.exceptions.ChannelClosedByBroker:
            pass
    return found


def delete_unused_exchanges(url: str, names: set[str]) -> None:
    """Delete exchanges a run created under shared names, unless something is bound to them."""
    for name in names:
        try:
            with channel(url) as ch:
                ch.exchange_delete(name, if_unused=True)
        except pika.exceptions.ChannelClosedByBroker:
            pass
