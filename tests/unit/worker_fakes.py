"""What the in-process worker tests share: a task published to a memory backend, and a delivery without a broker."""

from __future__ import annotations

from fairq import message as wire
from fairq.broker import Delivery, MemoryBackend


async def send(backend: MemoryBackend, queue: str, task: str, *args: object) -> str:
    """Publish ``task(*args)`` to ``queue`` on a connection of its own; returns the message id."""
    envelope = wire.encode_task(task, list(args), {}, max_bytes=1 << 20)
    broker = backend.broker()
    await broker.connect()
    try:
        await broker.publish(queue, envelope)
    finally:
        await broker.close()
    assert envelope.message_id
    return envelope.message_id


class FakeDelivery(Delivery):
    """A delivery as a backend hands it over, with the redelivery flag and count a test gives it."""

    def __init__(self, envelope: wire.Envelope, redelivered: bool = False, redeliveries: int = 0) -> None:
        self.envelope = envelope
        self.queue = "q"
        self.redelivered = redelivered
        self.redeliveries = redeliveries
        self.acked = False

    @property
    def alive(self) -> bool:
        return True

    async def ack(self) -> None:
        self.acked = True

    async def requeue(self) -> None:
        raise AssertionError("not requeued in these tests")
