"""The wire format (docs/protocol.md): how a task becomes bytes and back.

Kept free of I/O so that any backend, and any other language, can share it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from .errors import DecodeError, EncodeError

PROTOCOL_VERSION = 1
CONTENT_TYPE = "application/json"

# Header names. Everything fairq adds starts with "fairq-".
H_PROTOCOL = "fairq-protocol"
H_TASK = "fairq-task"
H_ATTEMPT = "fairq-attempt"
#: How often a message came back unsettled (its worker died), counted in a copy by a backend whose broker
#: does not count that itself (broker/rabbitmq/deliveries.py); workers read ``Delivery.redeliveries``.
H_REDELIVERIES = "fairq-redeliveries"
#: How often a worker handed the task back to the queue unstarted (a rebalance, not a failure).
H_HANDED_BACK = "fairq-handed-back"
#: Where the task's result goes: an inbox's address (docs/results.md); absent when nobody asked for it.
H_REPLY_TO = "fairq-reply-to"
#: Seconds the result is kept (with fairq-reply-to).
H_RESULT_TTL = "fairq-result-ttl"
#: Headers whose names start with this are the broker's own (AMQP's convention; fairq's start with ``fairq-``).
BROKER_HEADER_PREFIX = "x-"
# Dead-letter headers, added to the copy in QUEUE.dlq.
H_REASON = "fairq-dead-reason"
H_ERROR_TYPE = "fairq-error-type"
H_ERROR_MESSAGE = "fairq-error-message"
H_TRACEBACK = "fairq-traceback"
H_ATTEMPTS = "fairq-attempts"
H_WORKER = "fairq-worker"
H_QUEUE = "fairq-queue"
H_DEAD_AT = "fairq-dead-at"

# Reasons a message is dead-lettered (the value of ``fairq-dead-reason``).
REASON_NOT_FAIRQ = "not a fairq message"
REASON_NOT_JSON = "not JSON"
REASON_BAD_MESSAGE = "bad task message"
REASON_UNKNOWN_TASK = "unknown task"
REASON_BAD_ARGUMENTS = "wrong arguments"
REASON_TOO_LARGE = "too large"
REASON_FAILED = "task failed"
REASON_REJECTED = "rejected by task"
REASON_RAW_FAILED = "raw handler failed"
REASON_DELIVERY_LIMIT = "delivery limit"


@dataclass
class Envelope:
    """A message as the broker seam carries it: bytes plus properties, no AMQP types."""

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    content_type: str | None = None
    timestamp: datetime | None = None
    persistent: bool = True


def republished(envelope: Envelope, **headers: Any) -> Envelope:
    """A fresh copy of ``envelope`` to publish again, with ``headers`` set.

    The broker's own headers (:data:`BROKER_HEADER_PREFIX`) are dropped: they are the
    old message's history in the broker's words, and a broker reads them on the copy
    as its own (RabbitMQ would take an old dead-letter record for a cycle and silently
    drop the message).
    """
    kept = {k: v for k, v in envelope.headers.items() if not k.startswith(BROKER_HEADER_PREFIX)}
    kept.update(headers)
    return Envelope(body=envelope.body, headers=kept, message_id=envelope.message_id,
                    content_type=envelope.content_type, timestamp=envelope.timestamp, persistent=envelope.persistent)


@dataclass(frozen=True)
class TaskMessage:
    """A decoded task invocation."""

    task: str
    args: list[Any]
    kwargs: dict[str, Any]
    message_id: str
    attempt: int = 0


def check_json_value(value: Any, where: str = "argument") -> None:
    """Raise :class:`EncodeError` unless ``value`` survives a JSON round trip unchanged.

    ``json.dumps`` alone would quietly turn tuples into lists and int keys into
    strings; a task would then receive something other than what was sent.
    """
    if value is None or isinstance(value, (str, bool, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EncodeError(f"{where} {value!r} is not a JSON number (NaN and infinity are not)")
        return
    if isinstance(value, list):
        for item in value:
            check_json_value(item, where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodeError(f"{where} has a non-string key {key!r}: JSON object keys are strings")
            check_json_value(item, where)
        return
    raise EncodeError(f"{where} of type {type(value).__name__} is not a JSON value")


#: One encoder for every body: ``json.dumps`` with options would build a new one per call.
_JSON = json.JSONEncoder(separators=(",", ":"))
#: Types whose every value :func:`check_json_value` accepts, except non-finite floats.
_SCALARS = frozenset((str, int, bool, type(None)))
# A random UUID made version 4 (RFC 4122 variant): clear, then set, the version and variant bits.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_message_ids(count: int) -> list[str]:
    """``count`` message ids: 32 hex digits of a random UUID4 each, from one read of ``os.urandom``.

    The same ids as ``uuid.uuid4().hex``, about five times cheaper in bulk.
    """
    data = os.urandom(16 * count)
    return ["%032x" % (int.from_bytes(data[i:i + 16], "big") & _UUID4_CLEAR | _UUID4_SET)
            for i in range(0, 16 * count, 16)]


def _check_arguments(task: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """:func:`check_json_value` on both, with a fast path for flat arguments (the usual case)."""
    for value in args:
        kind = type(value)
        if kind in _SCALARS or (kind is float and math.isfinite(value)):
            continue
        check_json_value(args, f"argument of {task}")
        break
    if kwargs:
        check_json_value(kwargs, f"keyword argument of {task}")


def _body(task: str, args: list[Any], kwargs: dict[str, Any], max_bytes: int) -> bytes:
    _check_arguments(task, args, kwargs)
    body = _JSON.encode({"task": task, "args": args, "kwargs": kwargs}).encode()
    if len(body) > max_bytes:
        raise EncodeError(f"message for {task} is {len(body)} bytes, over the limit of {max_bytes}")
    return body


def encode_task(
    task: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    max_bytes: int,
    attempt: int = 0,
    message_id: str | None = None,
) -> Envelope:
    """Build the envelope of one task message; refuse what could not be run as sent."""
    return Envelope(
        body=_body(task, list(args), kwargs, max_bytes),
        headers={H_PROTOCOL: PROTOCOL_VERSION, H_TASK: task, H_ATTEMPT: attempt},
        message_id=message_id or new_message_ids(1)[0],
        content_type=CONTENT_TYPE,
        timestamp=datetime.now(timezone.utc),
    )


def encode_tasks(task: str, calls: Iterable[tuple[Sequence[Any], dict[str, Any]]], *, max_bytes: int) -> list[Envelope]:
    """The envelopes of a batch of calls of ``task``: each checked as :func:`encode_task` does,
    all encoded before any is sent (so one bad call refuses the whole batch).

    The envelopes share one headers dict and one timestamp (the time of this call):
    treat them as read-only. The broker encodes such a run's properties once.
    """
    bodies = [_body(task, list(args), kwargs, max_bytes) for args, kwargs in calls]
    headers: dict[str, Any] = {H_PROTOCOL: PROTOCOL_VERSION, H_TASK: task, H_ATTEMPT: 0}
    now = datetime.now(timezone.utc)
    return [Envelope(body, headers, message_id, CONTENT_TYPE, now)
            for body, message_id in zip(bodies, new_message_ids(len(bodies)))]


def _refuse_constant(name: str) -> Any:
    raise DecodeError(REASON_BAD_MESSAGE, f"{name} is not a JSON number (NaN and infinity are refused)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as infinity
        raise DecodeError(REASON_BAD_MESSAGE, f"{text} is out of range for a number (it would arrive as infinity)")
    return value


#: Python's json accepts NaN, Infinity and -Infinity, which are not JSON (RFC 8259) and which
#: fairq's own send refuses: the worker refuses them too, so every producer gets the same answer.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def as_count(value: Any) -> int | None:
    """``value`` if it is an integer, else None: how every count read from a header or an API is checked.

    ``bool`` is an ``int`` in Python (``True == 1``), but a boolean is not a count.
    """
    return value if type(value) is int else None


def int_header(headers: dict[str, Any], name: str, default: int = 0) -> int:
    """A counting header of ours; ``default`` if absent or not an integer (:func:`as_count`)."""
    count = as_count(headers.get(name))
    return default if count is None else count


def _json_text(body: bytes) -> str:
    """The body as text: strict UTF-8, as protocol.md says.

    ``json.loads`` on bytes would also accept UTF-16 and UTF-32 (it guesses from the
    first bytes); another producer's mistake must not run as a task on one worker and
    fail on another. A UTF-8 byte order mark is skipped: it is still UTF-8, and RFC 8259
    lets a parser ignore it.
    """
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DecodeError(REASON_NOT_JSON, f"body is not UTF-8 ({exc.reason} at byte {exc.start})") from None


def is_fairq(envelope: Envelope) -> bool:
    """True when the message carries fairq's protocol header."""
    return H_PROTOCOL in envelope.headers


def decode_task(envelope: Envelope, *, max_bytes: int) -> TaskMessage:
    """Read a task message, or raise :class:`DecodeError` saying why it is not one."""
    if not is_fairq(envelope):
        raise DecodeError(REASON_NOT_FAIRQ, "no fairq-protocol header")
    version = envelope.headers.get(H_PROTOCOL)
    if type(version) is not int or version != PROTOCOL_VERSION:  # not True, not 1.0, not "1"
        raise DecodeError(REASON_BAD_MESSAGE, f"unsupported protocol version {version!r} "
                                              f"(fairq-protocol must be the integer {PROTOCOL_VERSION})")
    if len(envelope.body) > max_bytes:
        raise DecodeError(REASON_TOO_LARGE, f"{len(envelope.body)} bytes, limit {max_bytes}")
    text = _json_text(envelope.body)
    try:
        data = _DECODER.decode(text)  # a DecodeError of the hooks above passes through
    except ValueError as exc:
        raise DecodeError(REASON_NOT_JSON, str(exc)) from None
    if not isinstance(data, dict):
        raise DecodeError(REASON_BAD_MESSAGE, f"body is a JSON {type(data).__name__}, not an object")
    task = data.get("task")
    args = data.get("args", [])
    kwargs = data.get("kwargs", {})
    if not isinstance(task, str) or not task:
        raise DecodeError(REASON_BAD_MESSAGE, "'task' must be a non-empty string")
    if not isinstance(args, list):
        raise DecodeError(REASON_BAD_MESSAGE, "'args' must be a list")
    if not isinstance(kwargs, dict):
        raise DecodeError(REASON_BAD_MESSAGE, "'kwargs' must be an object")
    return TaskMessage(
        task=task,
        args=args,
        kwargs=kwargs,
        message_id=envelope.message_id or "",
        attempt=int_header(envelope.headers, H_ATTEMPT),
    )


#: Tracebacks are cut to this many characters (the end, where the error is) in dead-letter headers.
MAX_TRACEBACK_CHARS = 16_000


def dead_letter_headers(
    reason: str,
    *,
    worker: str | None = None,
    detail: str = "",
    error: BaseException | None = None,
    traceback_text: str | None = None,
    attempts: int | None = None,
) -> dict[str, Any]:
    """The headers that say why a message was dead-lettered (docs/protocol.md): built here and nowhere else.

    ``worker`` is None when the broker itself gave up on the message (its delivery limit).
    Where and when it died are added by :func:`dead_letter_stamp` as it moves.
    """
    headers: dict[str, Any] = {H_REASON: reason}
    if worker is not None:
        headers[H_WORKER] = worker
    if error is not None:
        headers[H_ERROR_TYPE] = f"{type(error).__module__}.{type(error).__qualname__}".removeprefix("builtins.")
        headers[H_ERROR_MESSAGE] = str(error)
    elif detail:
        headers[H_ERROR_MESSAGE] = detail
    if traceback_text:
        headers[H_TRACEBACK] = traceback_text[-MAX_TRACEBACK_CHARS:]
    if attempts is not None:
        headers[H_ATTEMPTS] = attempts
    return headers


def dead_letter_stamp(queue: str) -> dict[str, Any]:
    """The queue a message died in and the time, added as it moves to the dead-letter queue."""
    return {H_QUEUE: queue, H_DEAD_AT: datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
