"""A child process for the SQLite tests.

``holder.py URL QUEUE hold N``: claim N messages with get(), print ``held``, sit on them for ever.
``holder.py URL QUEUE publish N``: publish N messages one by one, printing each id once publish returned.
``holder.py URL QUEUE drain IDLE``: consume and ack, printing each message id, until IDLE seconds bring nothing."""

from __future__ import annotations

import asyncio
import sys

from fairq.broker import Delivery
from fairq.broker.sqlite import SQLiteBroker
from fairq.message import Envelope


async def hold(url: str, queue: str, n: int) -> None:
    broker = SQLiteBroker(url)
    await broker.connect()
    for _ in range(n):
        assert await broker.get(queue) is not None
    print("held", flush=True)
    await asyncio.Event().wait()


async def publish(url: str, queue: str, n: int) -> None:
    broker = SQLiteBroker(url)
    await broker.connect()
    for i in range(n):
        await broker.publish(queue, Envelope(b"x", message_id=f"p{i:05d}"))
        print(f"p{i:05d}", flush=True)


async def drain(url: str, queue: str, idle: float) -> None:
    broker = SQLiteBroker(url)
    await broker.connect()
    last = asyncio.get_running_loop().time()

    async def handler(d: Delivery) -> None:
        nonlocal last
        await asyncio.sleep(0.02)  # a task's work: keeps both processes claiming at the same time
        await d.ack()
        print(d.envelope.message_id, flush=True)
        last = asyncio.get_running_loop().time()

    consumer = await broker.consume(queue, 10, handler)
    while asyncio.get_running_loop().time() - last < idle:
        await asyncio.sleep(0.1)
    await consumer.cancel()
    await broker.close()


if __name__ == "__main__":
    url, queue, mode, arg = sys.argv[1:5]
    modes = {"hold": lambda: hold(url, queue, int(arg)), "publish": lambda: publish(url, queue, int(arg)),
             "drain": lambda: drain(url, queue, float(arg))}
    asyncio.run(modes[mode]())
