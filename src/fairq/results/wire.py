"""A result on the wire (docs/results.md): a JSON object, the same on every backend.

``{"v": 1, "ok": true, "value": V}`` for a task that returned ``V``;
``{"v": 1, "ok": false, "reason": R, "type": T, "message": M, "traceback": TB}`` for one that
failed for good (R: the dead-letter reason, T: the exception's type). No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import message as wire
from ..errors import DecodeError, EncodeError, TaskFailed

RESULT_VERSION = 1
#: The ``fairq-reply-to`` address that means "the result store of the task's app" (``App(results=URL)``).
STORE = "store"
#: The result was not a JSON value: the task ran, but what it returned cannot be sent.
REASON_BAD_RESULT = "result not JSON"


@dataclass(frozen=True)
class Outcome:
    """A decoded result: the value, or the failure to raise."""

    ok: bool
    value: Any = None
    failure: Mapping[str, str] | None = None

    def unwrap(self, message_id: str) -> Any:
        if self.ok:
            return self.value
        failure = self.failure or {}
        raise TaskFailed(message_id, failure.get("reason", ""), failure.get("type", ""), failure.get("message", ""),
                         failure.get("traceback", ""))


def encode_value(value: Any) -> bytes:
    """The body for a returned ``value``; a failure with :data:`REASON_BAD_RESULT` if it is not JSON."""
    try:
        wire.check_json_value(value, "result")
    except EncodeError as exc:
        return encode_failure(REASON_BAD_RESULT, "fairq.EncodeError", str(exc), "")
    return json.dumps({"v": RESULT_VERSION, "ok": True, "value": value}, separators=(",", ":")).encode()


def encode_failure(reason: str, error_type: str, message: str, traceback: str) -> bytes:
    return json.dumps({"v": RESULT_VERSION, "ok": False, "reason": reason, "type": error_type,
                       "message": message, "traceback": traceback}, separators=(",", ":")).encode()


def encode_dead(headers: Mapping[str, Any]) -> bytes:
    """The failure body from a dead letter's headers (:func:`fairq.message.dead_letter_headers`)."""
    return encode_failure(str(headers.get(wire.H_REASON, "")), str(headers.get(wire.H_ERROR_TYPE, "")),
                          str(headers.get(wire.H_ERROR_MESSAGE, "")), str(headers.get(wire.H_TRACEBACK, "")))


def decode(body: bytes) -> Outcome:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise DecodeError(wire.REASON_NOT_JSON, f"a result: {exc}") from None
    if not isinstance(data, dict) or data.get("v") != RESULT_VERSION or not isinstance(data.get("ok"), bool):
        raise DecodeError(wire.REASON_BAD_MESSAGE, "a result of another format or version")
    if data["ok"]:
        return Outcome(True, data.get("value"))
    return Outcome(False, failure={k: str(data.get(k, "")) for k in ("reason", "type", "message", "traceback")})
