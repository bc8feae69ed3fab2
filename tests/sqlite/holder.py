"""A child process for the SQLite tests.

``holder.py URL QUEUE hold N``: claim N messages with get(), print ``held``, sit on them for ever.
``holder.py URL QUEUE drain IDLE``: consume and ack, printing each message id, until IDLE seconds bring nothing."""

from __future__ import annotations

import asyncio
import sys

from fairq.broker import Delivery
from fairq.broker.sqlite import SQLiteBroker


async def hold(url: str, queue: str, n: int) -> None:
    broker = SQLiteBroker(url)
    await broker.connect()
    for _ in range(n):
        assert await broker.get(queue) is not None
    print("held", flush=True)
    await asyncio.Event().wait()


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
    asyncio.run(hold(url, queue, int(arg)) if mode == "hold" else drain(url, queue, float(arg)))
