"""What keeps the dashboard safe by default: who may load it, and who may change anything.

- It binds to the loopback address unless told otherwise; any other address needs a password
  (:func:`check_bind`), asked for with HTTP basic authentication (the user name is not checked).
- Without a password only requests naming a loopback host (or the bound one) are served: a page
  elsewhere that points its own DNS name at 127.0.0.1 (DNS rebinding) gets 403, not dead letters.
- A state-changing request (replay, purge) is a POST that carries the page's CSRF token in a
  header, from the page's own origin (``Origin`` and ``Sec-Fetch-Site`` checked where the browser
  sends them): another site can neither read the token nor forge the request.
- Every response says not to be framed (clickjacking the replay button), not to sniff types, and
  to run only the dashboard's own scripts (a dead letter's arguments are text, never markup).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse

from ..errors import ConfigurationError

__all__ = ["CSRF_HEADER", "Guard", "GuardMiddleware", "check_bind", "is_loopback"]

CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = ("GET", "HEAD")
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine only."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, password: str | None) -> None:
    """Refuse to serve another host than this machine without a password."""
    if not is_loopback(host) and not password:
        raise ConfigurationError(f"the dashboard would be open to anyone who can reach {host}: give it a password "
                                 "(--password, or $FAIRQ_DASHBOARD_PASSWORD), or bind it to 127.0.0.1")


def _hostname(host_header: str) -> str:
    """The name in a ``Host`` header, without its port (``[::1]:8400`` → ``::1``)."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0].lower()
    return host_header.rsplit(":", 1)[0].lower() if host_header.count(":") == 1 else host_header.lower()


class Guard:
    """The dashboard's checks, decided apart from the HTTP plumbing (:class:`GuardMiddleware`)."""

    def __init__(self, bind_host: str = "127.0.0.1", password: str | None = None) -> None:
        check_bind(bind_host, password)
        self.bind_host = bind_host.strip("[]").lower()
        self._password = password
        #: The token a page must send back with every POST; new each time the dashboard starts.
        self.csrf_token = secrets.token_urlsafe(32)

    @property
    def needs_password(self) -> bool:
        return bool(self._password)

    def host_allowed(self, host_header: str | None) -> bool:
        if self._password:
            return True  # reachable under any name: the password is the check
        name = _hostname(host_header or "")
        return is_loopback(name) or name == self.bind_host

    def authorized(self, authorization: str | None) -> bool:
        if not self._password:
            return True
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            _user, _, given = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given.encode(), self._password.encode())

    def refuse_change(self, headers: Headers, scheme: str) -> str | None:
        """Why a state-changing request is refused, or None to let it through."""
        if not hmac.compare_digest(headers.get(CSRF_HEADER, "").encode(), self.csrf_token.encode()):
            return "missing or wrong CSRF token: reload the dashboard"
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"cross-site request refused ({site})"
        origin = headers.get("origin")
        if origin is not None and origin != f"{scheme}://{headers.get('host', '')}":
            return "cross-origin request refused"
        return None


class GuardMiddleware:
    """Applies a :class:`Guard` to every HTTP request, and the security headers to every response."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        guard = self.guard
        refusal: PlainTextResponse | None = None
        if not guard.host_allowed(headers.get("host")):
            refusal = PlainTextResponse("this dashboard answers to localhost only\n", status_code=403)
        elif not guard.authorized(headers.get("authorization")):
            refusal = PlainTextResponse("password required\n", status_code=401,
                                        headers={"WWW-Authenticate": 'Basic realm="fairq dashboard", charset="UTF-8"'})
        elif scope["method"] not in SAFE_METHODS:
            reason = guard.refuse_change(headers, scope.get("scheme", "http"))
            if reason is not None:
                refusal = PlainTextResponse(reason + "\n", status_code=403)

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, secured)
        else:
            await self.app(scope, receive, secured)
