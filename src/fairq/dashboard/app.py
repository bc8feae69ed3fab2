"""The dashboard as an ASGI app (Starlette): the page, its static files, the live stream, the panels' requests.

    app = create_app("amqp://guest:guest@localhost:5672/")

What each route does lives beside its panel (:mod:`.deadletter_api`); the checks every request
passes are :mod:`.security`'s; the live data is the :class:`~fairq.dashboard.hub.Hub`'s.
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..broker import open_backend
from . import deadletter_api
from .hub import Hub
from .security import Guard, GuardMiddleware

__all__ = ["STATIC", "create_app"]

STATIC = Path(__file__).with_name("static")


async def index(request: Request) -> Response:
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    token = html.escape(request.app.state.guard.csrf_token, quote=True)
    return HTMLResponse(page.replace("{{csrf_token}}", token))


async def stream(request: Request) -> Response:
    """``GET /api/stream``: server-sent events (``status``, ``snapshot``, then ``timeline`` deltas)."""
    hub: Hub = request.app.state.hub
    client = hub.subscribe()

    async def body() -> AsyncIterator[str]:
        try:
            yield "retry: 1000\n\n"
            while (text := await client.next()) is not None:
                yield text or ": ping\n\n"
        finally:
            hub.unsubscribe(client)

    return StreamingResponse(body(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


def create_app(url: str, *, host: str = "127.0.0.1", password: str | None = None, window: float = 300.0) -> Starlette:
    """The dashboard of the broker at ``url``, served on ``host`` (its checks depend on it: see
    :mod:`.security`), keeping ``window`` seconds of the timeline for pages that connect."""
    guard = Guard(host, password)
    hub = Hub(open_backend(url), url, window=window)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    routes = [
        Route("/", index),
        Route("/api/stream", stream),
        Route("/api/deadletters", deadletter_api.queues),
        Route("/api/deadletters/letters", deadletter_api.letters),
        Route("/api/deadletters/replay", deadletter_api.replay, methods=["POST"]),
        Route("/api/deadletters/purge", deadletter_api.purge, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(GuardMiddleware, guard=guard)])
    app.state.hub = hub
    app.state.guard = guard
    app.state.url = url
    return app
