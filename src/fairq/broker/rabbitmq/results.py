"""Results on RabbitMQ: a reply queue per caller connection, and the worker's publish to it.

The caller's inbox is a server-named queue, exclusive to its connection and deleted with
it: results are not stored past the caller (docs/results.md says where to keep them when
callers come back later). Replies are transient, carry a per-message TTL, and are
published ``mandatory`` with a confirm, so a worker learns from the broker's return that the
caller is gone. Chosen over direct reply-to (``amq.rabbitmq.reply-to``), which would tie the
reply to the very channel that published the request — the producer's pipelined confirm
channel — and drops a reply to a departed caller silently (benchmarks/reply_queues.py
measures the two).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import aiormq
from aiormq.abc import AbstractChannel, DeliveredMessage
from pamqp import commands as spec

from ...errors import PublishRejected
from ..base import ResultInbox
from ..mailbox import Mailbox
from .errors import translated


class ReplyQueue(ResultInbox):
    """An exclusive, auto-delete queue consumed without acks into a :class:`Mailbox`."""

    def __init__(self, channel: AbstractChannel, address: str, mailbox: Mailbox) -> None:
        self.address = address
        self._channel = channel
        self._mailbox = mailbox

    async def wait(self, ids: Sequence[str], timeout: float | None) -> list[str]:
        return await self._mailbox.wait(ids, timeout)

    async def get(self, message_id: str) -> bytes | None:
        return self._mailbox.get(message_id)

    async def close(self) -> None:
        if not self._channel.is_closed:
            await self._channel.close()  # the queue goes with the connection; closing the channel stops the consumer


async def open_reply_queue(connection: aiormq.abc.AbstractConnection, ttl: float, url: str) -> ReplyQueue:
    mailbox = Mailbox(ttl)
    with translated("open the reply queue", url):
        channel = await connection.channel(publisher_confirms=False)
        ok = await channel.queue_declare("", exclusive=True, auto_delete=True)

        async def on_reply(message: DeliveredMessage) -> None:  # aiormq runs each in a task
            message_id = message.header.properties.message_id
            if message_id:
                mailbox.deliver(message_id, message.body)

        await channel.basic_consume(ok.queue or "", on_reply, no_ack=True)
    return ReplyQueue(channel, ok.queue or "", mailbox)


async def publish_reply(channel: AbstractChannel, address: str, message_id: str, body: bytes, ttl: float,
                        url: str) -> bool:
    """Publish one result to a reply queue; False if the broker returned it (the queue is gone)."""
    properties = spec.Basic.Properties(content_type="application/json", delivery_mode=1, message_id=message_id,
                                       expiration=str(max(1, int(ttl * 1000))))
    try:
        with translated(f"publish the result of {message_id}", url):
            await cast(aiormq.Channel, channel).basic_publish(body, routing_key=address, properties=properties,
                                                              mandatory=True, wait=False)
    except PublishRejected:
        return False
    return True
