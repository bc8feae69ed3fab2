"""AMQP message properties <-> fairq envelopes, and the shared encoding that makes batches cheap."""

from __future__ import annotations

from aiormq.abc import DeliveredMessage
from pamqp import commands as spec
from pamqp import encode

from ...message import Envelope

PERSISTENT = 2


def to_properties(envelope: Envelope) -> spec.Basic.Properties:
    return spec.Basic.Properties(
        content_type=envelope.content_type,
        delivery_mode=PERSISTENT if envelope.persistent else 1,
        message_id=envelope.message_id,
        timestamp=envelope.timestamp,
        headers=envelope.headers or None,
    )


def to_envelope(message: DeliveredMessage) -> Envelope:
    props = message.header.properties
    return Envelope(
        body=message.body,
        headers=dict(props.headers or {}),
        message_id=props.message_id,
        content_type=props.content_type,
        timestamp=props.timestamp,
        persistent=props.delivery_mode == PERSISTENT,
    )


class SplicedProperties(spec.Basic.Properties):
    """Properties that marshal as a shared encoding with their own message id spliced in."""

    head = b""
    tail = b""

    def marshal(self) -> bytes:
        return self.head + encode.short_string(self.message_id or "") + self.tail


class SharedProperties:
    """The properties of a run of envelopes that differ only in message id (a batch from
    :func:`~fairq.message.encode_tasks`): pamqp encodes them once, not once per message,
    which is most of what publishing a message costs on the client.
    """

    _PROBE_ID = "0" * 32

    def __init__(self, envelope: Envelope) -> None:
        self.headers = envelope.headers
        self.timestamp = envelope.timestamp
        self.content_type = envelope.content_type
        self.persistent = envelope.persistent
        probe = to_properties(self._like(envelope, self._PROBE_ID))
        whole = probe.marshal()
        # Only the timestamp follows message_id among the properties fairq sets (AMQP's order);
        # it encodes alone as a property list of it alone, less its two flag bytes.
        tail = spec.Basic.Properties(timestamp=self.timestamp).marshal()[2:] if self.timestamp else b""
        head = whole[:len(whole) - len(tail) - 1 - len(self._PROBE_ID)]
        self.valid = head + encode.short_string(self._PROBE_ID) + tail == whole
        self.head, self.tail = head, tail

    @staticmethod
    def _like(envelope: Envelope, message_id: str) -> Envelope:
        return Envelope(envelope.body, envelope.headers, message_id, envelope.content_type, envelope.timestamp,
                        envelope.persistent)

    def fits(self, envelope: Envelope) -> bool:
        return (envelope.headers is self.headers and envelope.timestamp is self.timestamp
                and envelope.content_type == self.content_type and envelope.persistent == self.persistent)

    def properties(self, envelope: Envelope) -> spec.Basic.Properties:
        props = SplicedProperties(
            content_type=self.content_type,
            delivery_mode=PERSISTENT if self.persistent else 1,
            message_id=envelope.message_id,
            timestamp=self.timestamp,
            headers=self.headers or None,
        )
        props.head, props.tail = self.head, self.tail
        return props
