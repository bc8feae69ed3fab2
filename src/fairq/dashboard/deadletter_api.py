"""The dead-letter panel's requests: which queues have dead letters, what they are, replay, purge.

The work is :mod:`fairq.deadletters`' (what ``fairq dlq`` runs), each request on a connection of
its own; this module only turns requests into its calls and its answers into JSON. Every text
that leaves (an error message, a traceback, an argument) has URL passwords redacted: a task that
failed on ``amqp://user:secret@…`` must not show the secret to whoever opens the page.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from .. import deadletters
from ..broker import open_backend
from ..broker.topology import dead_letter_queue, is_dead_letter_queue, is_internal
from ..config import redact
from ..errors import BrokerError, FairqError
from ..observe.counts import discoverable_queues

__all__ = ["MAX_SHOWN", "letters", "purge", "queues", "redacted", "replay"]

#: Dead letters a page is sent at most (the oldest first); the count says how many there are.
MAX_SHOWN = 500


def redacted(value: Any) -> Any:
    """``value`` with every URL password in its strings replaced by ``***``."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redacted(v) for v in value]
    if isinstance(value, dict):
        return {redact(str(k)): redacted(v) for k, v in value.items()}
    return value


def _error(exc: FairqError) -> JSONResponse:
    status = 404 if isinstance(exc, deadletters.NoDeadLetterQueue) else 503 if isinstance(exc, BrokerError) else 400
    return JSONResponse({"error": redact(str(exc))}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("queue"), str) or not body["queue"]:
        raise ValueError("a JSON object naming the queue is needed")
    return body


async def queues(request: Request) -> JSONResponse:
    """``GET /api/deadletters``: every queue the dashboard knows of, with its dead letters' count."""
    hub = request.app.state.hub
    broker = open_backend(request.app.state.url).broker()
    try:
        await broker.connect()
        try:
            listed = await broker.list_queues()
            names = set(hub.queues_seen) | set(discoverable_queues())
            names |= {n for n in listed or () if not is_dead_letter_queue(n) and not is_internal(n)}
            rows = []
            for name in sorted(names):
                stats = await broker.stats(dead_letter_queue(name))
                if stats is not None:
                    rows.append({"queue": name, "dead": stats.ready})
        finally:
            await broker.close()
    except FairqError as exc:
        return _error(exc)
    return JSONResponse({"queues": rows})


async def letters(request: Request) -> JSONResponse:
    """``GET /api/deadletters/letters?queue=Q``: Q's dead letters, oldest first, every field."""
    queue = request.query_params.get("queue", "")
    if not queue:
        return JSONResponse({"error": "which queue? (?queue=NAME)"}, status_code=400)
    try:
        found = await deadletters.list_dead_letters(request.app.state.url, queue)
    except FairqError as exc:
        return _error(exc)
    shown = [redacted(dataclasses.asdict(letter)) for letter in found[:MAX_SHOWN]]
    return JSONResponse({"queue": queue, "total": len(found), "letters": shown})


async def replay(request: Request) -> JSONResponse:
    """``POST /api/deadletters/replay`` ``{"queue": Q, "message_id": ID?}``: one dead letter back, or all."""
    try:
        body = await _body(request)
        message_id = body.get("message_id")
        if message_id is not None and not isinstance(message_id, str):
            raise ValueError("message_id must be a string")
        moved = await deadletters.replay(request.app.state.url, body["queue"], message_id=message_id)
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except FairqError as exc:
        return _error(exc)
    if message_id is not None and moved == 0:
        return JSONResponse({"error": f"no dead letter with id {message_id} in {dead_letter_queue(body['queue'])}"},
                            status_code=404)
    return JSONResponse({"queue": body["queue"], "replayed": moved})


async def purge(request: Request) -> JSONResponse:
    """``POST /api/deadletters/purge`` ``{"queue": Q, "confirm": Q}``: delete Q's dead letters for good.

    The page asks first; ``confirm`` must name the queue again, so no stray request purges."""
    try:
        body = await _body(request)
        if body.get("confirm") != body["queue"]:
            raise ValueError("purge deletes dead letters for good: confirm must name the queue")
        purged = await deadletters.purge(request.app.state.url, body["queue"])
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except FairqError as exc:
        return _error(exc)
    return JSONResponse({"queue": body["queue"], "purged": purged})
