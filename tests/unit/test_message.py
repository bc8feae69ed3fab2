"""The wire format, without a broker."""

from __future__ import annotations

import json

import pytest

from fairq import message as wire
from fairq.errors import DecodeError, EncodeError


def test_a_task_round_trips_through_the_wire_format() -> None:
    env = wire.encode_task("m.f", (1, "two", [3.5, None]), {"k": {"x": True}}, max_bytes=1000)
    assert json.loads(env.body) == {"task": "m.f", "args": [1, "two", [3.5, None]], "kwargs": {"k": {"x": True}}}
    assert env.headers == {"fairq-protocol": 1, "fairq-task": "m.f", "fairq-attempt": 0}
    assert env.content_type == "application/json" and env.persistent and env.message_id and env.timestamp
    msg = wire.decode_task(env, max_bytes=1000)
    assert (msg.task, msg.args, msg.kwargs, msg.message_id, msg.attempt) == (
        "m.f", [1, "two", [3.5, None]], {"k": {"x": True}}, env.message_id, 0)


@pytest.mark.parametrize("bad", [{1, 2}, b"bytes", object(), float("nan"), {1: "int key"}, [float("inf")]])
def test_values_that_would_not_arrive_as_sent_are_refused(bad: object) -> None:
    with pytest.raises(EncodeError):
        wire.encode_task("t", (bad,), {}, max_bytes=1000)


def test_a_message_over_the_size_limit_is_refused_at_send() -> None:
    with pytest.raises(EncodeError, match="over the limit"):
        wire.encode_task("t", ("x" * 200,), {}, max_bytes=100)


def _env(body: bytes, headers: dict[str, object] | None = None) -> wire.Envelope:
    return wire.Envelope(body=body, headers={"fairq-protocol": 1} if headers is None else headers, message_id="id")


@pytest.mark.parametrize(("env", "reason"), [
    (_env(b"{}", {}), wire.REASON_NOT_FAIRQ),
    (_env(b"\xff"), wire.REASON_NOT_JSON),
    (_env(b"not json"), wire.REASON_NOT_JSON),
    (_env(b"[1]"), wire.REASON_BAD_MESSAGE),
    (_env(b'{"args": []}'), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t", "args": {}}'), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t", "kwargs": []}'), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t"}', {"fairq-protocol": 99}), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t"}', {"fairq-protocol": True}), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t"}', {"fairq-protocol": 1.0}), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t"}', {"fairq-protocol": "1"}), wire.REASON_BAD_MESSAGE),
    (_env('{"task": "t"}'.encode("utf-16")), wire.REASON_NOT_JSON),
    (_env('{"task": "t"}'.encode("utf-16-be")), wire.REASON_NOT_JSON),
    (_env('{"task": "t"}'.encode("utf-32")), wire.REASON_NOT_JSON),
    (_env(b'{"task": "t", "args": [NaN]}'), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t", "args": [Infinity]}'), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t", "kwargs": {"x": -Infinity}}'), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t", "args": [1e400]}'), wire.REASON_BAD_MESSAGE),
    (_env(b'{"task": "t", "args": ["' + b"x" * 2000 + b'"]}'), wire.REASON_TOO_LARGE),
])
def test_each_kind_of_bad_message_has_its_reason(env: wire.Envelope, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        wire.decode_task(env, max_bytes=1000)
    assert info.value.reason == reason


def test_a_utf8_byte_order_mark_is_skipped_and_plain_numbers_still_decode() -> None:
    env = _env('{"task": "t", "args": [1.5, -2e-3, 7, "é"]}'.encode("utf-8-sig"))
    msg = wire.decode_task(env, max_bytes=1000)
    assert msg.task == "t" and msg.args == [1.5, -2e-3, 7, "é"]


def test_a_boolean_counting_header_is_not_a_count() -> None:
    assert wire.int_header({"fairq-attempt": True}, "fairq-attempt") == 0
    assert wire.int_header({"fairq-attempt": 3}, "fairq-attempt") == 3
    env = _env(b'{"task": "t"}', {"fairq-protocol": 1, "fairq-attempt": True})
    assert wire.decode_task(env, max_bytes=1000).attempt == 0


def test_dead_letter_headers_name_the_error_and_keep_the_end_of_the_traceback() -> None:
    headers = wire.dead_letter_headers("task failed", worker="w1", error=KeyError("k"),
                                       traceback_text="x" * 20_000 + "END", attempts=2)
    assert headers["fairq-error-type"] == "KeyError"
    assert headers["fairq-traceback"].endswith("END")
    assert len(headers["fairq-traceback"]) == wire.MAX_TRACEBACK_CHARS
    assert headers["fairq-attempts"] == 2 and headers["fairq-worker"] == "w1"
