"""aiormq's and the socket's exceptions, translated into fairq's (the one boundary where that happens)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import unquote, urlsplit

import aiormq.exceptions as amqp_errors

from ...config import redact
from ...errors import (BrokerError, ChannelClosed, ConnectionFailed, ConsumerTimedOut, LoginRefused, PublishRejected,
                      QueueFull, TLSRefused, VhostRefused)

CONSUMER_TIMEOUT_ADVICE = (
    "RabbitMQ's consumer_timeout closed the channel while a task ran longer than it allows; the broker "
    "requeued the delivery. This worker will not run it twice: a redelivered copy that comes back here "
    "waits for the running task's result. Raise consumer_timeout in rabbitmq.conf above your longest task "
    "(milliseconds), or on RabbitMQ 3.12+ give the task a time_limit so fairq sets x-consumer-timeout on "
    "new queues.")


@contextmanager
def translated(action: str, url: str) -> Iterator[None]:
    """Re-raise aiormq and socket errors as fairq errors."""
    try:
        yield
    except Exception as exc:
        error = translate(exc, action, url)
        if error is exc:
            raise
        raise error from None


def translate(exc: BaseException, action: str, url: str) -> BaseException:
    """The fairq error for an aiormq or socket error; ``exc`` itself when it is none of those."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, amqp_errors.PublishError):
        return PublishRejected(f"{action}: unroutable (no such queue?)")
    if isinstance(exc, amqp_errors.DeliveryError):  # the broker nacked: reject-publish on a full queue
        return QueueFull(f"{action}: refused (nack): the queue is full, or the broker could not store it")
    if isinstance(exc, (amqp_errors.ProbableAuthenticationError, amqp_errors.AuthenticationError)):
        return LoginRefused(f"{action}: the broker at {url} refused the login (wrong user or password?)")
    if isinstance(exc, amqp_errors.ConnectionNotAllowed) or _refused_open(exc):
        return _vhost_refused(exc, action, url)
    if isinstance(exc, amqp_errors.ChannelClosed):
        return ChannelClosed(f"{action}: the broker closed the channel: {reason(exc)}", error_code(exc))
    if isinstance(exc, amqp_errors.ChannelInvalidStateError):
        return ChannelClosed(f"{action}: channel already closed")
    if isinstance(exc, (amqp_errors.AMQPError, ConnectionError, OSError, asyncio.TimeoutError)):
        tls = _tls_failure(exc)
        if tls:
            return TLSRefused(f"{action}: TLS with the broker at {url} failed: {tls}")
        return ConnectionFailed(f"{action}: cannot reach the broker at {url}: {reason(exc)}")
    return exc


def lost(what: str, url: str, exc: BaseException | None) -> ChannelClosed:
    """Why a connection or channel closed under us (``exc`` None: closed without a reason), as the error
    ``wait_lost`` returns: :class:`ConsumerTimedOut` for RabbitMQ's consumer timeout, which only the
    close text tells apart (406 PRECONDITION_FAILED, "delivery acknowledgement … timed out")."""
    text = reason(exc) if exc is not None else "closed"
    code = error_code(exc) if exc is not None else None
    message = f"{what} to {url} lost: {text}"
    if "acknowledgement" in text and "timed out" in text:
        return ConsumerTimedOut(message, code, advice=CONSUMER_TIMEOUT_ADVICE)
    return ChannelClosed(message, code)


def _refused_open(exc: BaseException) -> bool:
    """The broker answered ``connection.open`` with ``connection.close``.

    RabbitMQ does that (530 NOT_ALLOWED) when the virtual host does not exist or the
    user may not use it. aiormq 7.2 checks the reply's type before it looks for a
    close, so instead of ConnectionNotAllowed it raises InvalidFrameError, at once,
    with only the frame's type in its text; this is the one way to tell it apart
    from a garbled frame (a real outage, worth retrying).
    """
    text = str(exc)
    return isinstance(exc, amqp_errors.InvalidFrameError) and "Connection.OpenOk" in text and "Connection.Close" in text


def _vhost_refused(exc: BaseException, action: str, url: str) -> VhostRefused:
    vhost = vhost_of(url)
    if isinstance(exc, amqp_errors.ConnectionNotAllowed):
        detail = reason(exc)
    else:
        detail = "it does not exist, or the user may not use it"
    return VhostRefused(f"{action}: the broker at {url} refused the virtual host {vhost!r}: {detail}", vhost)


def vhost_of(url: str) -> str:
    """The virtual host a URL names, as aiormq reads it: the path less its first slash, ``/`` if none."""
    path = urlsplit(url).path
    return "/" if path in ("", "/") else unquote(path[1:])


_TLS_REFUSALS = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "HANDSHAKE_FAILURE", "WRONG_VERSION_NUMBER")


def _tls_failure(exc: BaseException) -> str | None:
    """Why the TLS handshake failed, if it did (aiormq re-raises the ssl error as a cause).

    An EOF or reset in the middle of a session stays an outage worth retrying.
    """
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError) and any(r in (cause.reason or "") for r in _TLS_REFUSALS):
        return str(cause.reason).replace("_", " ").lower()  # TLSV13_ALERT_CERTIFICATE_REQUIRED → readable
    return None


_CODES = {
    amqp_errors.ChannelAccessRefused: 403,
    amqp_errors.ChannelNotFoundEntity: 404,
    amqp_errors.ChannelLockedResource: 405,
    amqp_errors.ChannelPreconditionFailed: 406,
}


def error_code(exc: BaseException) -> int | None:
    """The AMQP reply code behind an aiormq exception (aiormq keeps it in the type, or in args[0])."""
    for kind, code in _CODES.items():
        if isinstance(exc, kind):
            return code
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def reason(exc: BaseException) -> str:
    """An exception's text for a message, passwords redacted."""
    text = " ".join(str(a) for a in exc.args if a is not None) or type(exc).__name__
    return redact(text)
