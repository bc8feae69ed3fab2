"""Direct reply-to against a per-caller exclusive reply queue, on the raw AMQP client (issue 16's choice).

One echo server (its own connection) consumes a request queue and publishes each body back to the
request's ``reply_to``. The caller, on one connection, does RPC round trips one at a time:

- ``direct``: consume ``amq.rabbitmq.reply-to`` (no-ack) and publish the requests on that same
  channel with ``reply_to=amq.rabbitmq.reply-to``, as RabbitMQ requires;
- ``exclusive``: declare a server-named exclusive queue once (its cost printed apart), consume it,
  publish the requests on a separate confirm channel, as fairq's producer does.

Rounds alternate between the two in blocks of 50. Prints p50 / p99 in ms and the declare's cost.

    .venv/bin/python benchmarks/reply_queues.py [--rounds 2000] [--url amqp://…]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import aiormq
from pamqp import commands as spec

URL = "amqp://guest:guest@127.0.0.1:5672/"


async def echo_server(url: str, queue: str) -> aiormq.abc.AbstractConnection:
    connection = await aiormq.connect(url)
    channel = await connection.channel()
    await channel.queue_declare(queue, auto_delete=True)

    async def on_request(message: aiormq.abc.DeliveredMessage) -> None:
        props = message.header.properties
        await channel.basic_publish(message.body, routing_key=props.reply_to or "",
                                    properties=spec.Basic.Properties(correlation_id=props.correlation_id))

    await channel.basic_consume(queue, on_request, no_ack=True)
    return connection


class Caller:
    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[None]] = {}

    async def on_reply(self, message: aiormq.abc.DeliveredMessage) -> None:
        future = self.waiting.pop(message.header.properties.correlation_id or "", None)
        if future is not None and not future.done():
            future.set_result(None)

    async def call(self, channel: aiormq.abc.AbstractChannel, queue: str, reply_to: str) -> float:
        key = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self.waiting[key] = future
        start = time.perf_counter()
        await channel.basic_publish(b"x", routing_key=queue,
                                    properties=spec.Basic.Properties(reply_to=reply_to, correlation_id=key))
        await future
        return time.perf_counter() - start


async def main(url: str, rounds: int) -> None:
    queue = f"bench.rpc.{uuid.uuid4().hex[:8]}"
    server = await echo_server(url, queue)
    connection = await aiormq.connect(url)
    caller = Caller()
    direct = await connection.channel(publisher_confirms=True)
    await direct.basic_consume("amq.rabbitmq.reply-to", caller.on_reply, no_ack=True)
    declares = []
    for _ in range(20):
        start = time.perf_counter()
        channel = await connection.channel(publisher_confirms=False)
        await channel.queue_declare("", exclusive=True, auto_delete=True)
        declares.append(time.perf_counter() - start)
        await channel.close()
    replies = await connection.channel(publisher_confirms=False)
    ok = await replies.queue_declare("", exclusive=True, auto_delete=True)
    await replies.basic_consume(ok.queue or "", caller.on_reply, no_ack=True)
    publish = await connection.channel(publisher_confirms=True)
    times: dict[str, list[float]] = {"direct": [], "exclusive": []}
    for block in range(rounds // 50):
        for _ in range(50):
            if block % 2 == 0:
                times["direct"].append(await caller.call(direct, queue, "amq.rabbitmq.reply-to"))
            else:
                times["exclusive"].append(await caller.call(publish, queue, ok.queue or ""))
    for name, values in times.items():
        values = sorted(values[50:]) if len(values) > 100 else sorted(values)
        print(f"{name:10} round trip p50 {statistics.median(values) * 1000:.3f} ms  "
              f"p99 {values[int(len(values) * 0.99)] * 1000:.3f} ms  ({len(values)} calls)")
    print(f"exclusive queue: channel + declare once per caller, median {statistics.median(declares) * 1000:.3f} ms")
    await connection.close()
    await server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--url", default=URL)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.rounds))
