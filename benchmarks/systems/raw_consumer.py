"""A raw AMQP consumer: consume + ack, nothing else, recording the same event line as a task.

``python raw_consumer.py aiormq|pika PREFETCH`` consumes ``$BENCH_QUEUE`` until
SIGTERM. Each delivery's body is parsed for ``(i, seconds, sent)`` (sleeping
``seconds``, normally 0), one event line is written, then the message is acked:
``basic_ack(wait=False)`` on aiormq (as fairq does), ``basic_ack`` on pika's
BlockingConnection.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import events
import settings


def _handle(body: bytes) -> None:
    i, seconds, sent = json.loads(body)["args"]
    events.run_task(i, seconds, sent)


async def consume_aiormq(prefetch: int) -> None:
    import aiormq

    connection = await aiormq.connect(settings.broker_url())
    channel = await connection.channel()
    await channel.basic_qos(prefetch_count=prefetch)

    async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
        _handle(message.body)
        await channel.basic_ack(message.delivery_tag, wait=False)

    await channel.basic_consume(settings.queue(), on_message)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await connection.close()


def consume_pika(prefetch: int) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(settings.broker_url()))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)

    def on_message(ch: object, method: object, _props: object, body: bytes) -> None:
        _handle(body)
        channel.basic_ack(method.delivery_tag)  # type: ignore[attr-defined]

    def on_term(_signum: int, _frame: object) -> None:
        connection.add_callback_threadsafe(channel.stop_consuming)

    signal.signal(signal.SIGTERM, on_term)
    channel.basic_consume(settings.queue(), on_message)
    channel.start_consuming()
    connection.close()


def main() -> None:
    client, prefetch = sys.argv[1], int(sys.argv[2])
    if client == "aiormq":
        asyncio.run(consume_aiormq(prefetch))
    elif client == "pika":
        consume_pika(prefetch)
    else:
        sys.exit(f"unknown client {client!r}")


if __name__ == "__main__":
    main()
