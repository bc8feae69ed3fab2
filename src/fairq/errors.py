"""fairq's exception hierarchy.

Every error fairq raises is a :class:`FairqError`, so callers can catch one type.
Errors of the AMQP client never leak: :mod:`fairq.broker.rabbitmq` translates
them at its boundary.

    FairqError
    ├── ConfigurationError          bad URL, bad option, bad task definition
    ├── MessageError                a message cannot be built or read
    │   ├── EncodeError             arguments are not JSON values, or too large (at send)
    │   ├── DecodeError             a received message is not a fairq task
    │   └── EventFormatError        an event batch cannot be read (docs/events.md)
    │       ├── UnsupportedEventVersion  another version of the events format
    │       └── UnknownEventKind    a routing key this fairq has no event for
    ├── TaskNotFound                a received task name is not registered (the error type of its dead letter)
    ├── TimeLimitExceeded           a task ran longer than its time_limit (counts as a failure)
    ├── ResultError                 a task's result cannot be had
    │   ├── TaskFailed              the task failed for good: the remote error type, message and traceback
    │   ├── ResultTimeout           no result within the time asked
    │   └── NoResult                the task was sent without asking for its result
    ├── BrokerError                 anything the broker did or failed to do
    │   ├── ConnectionFailed        cannot reach or log in to the broker
    │   │   └── LoginRefused        the broker refused the credentials (retrying will not help)
    │   │       ├── TLSRefused      the TLS handshake failed: unknown CA, wrong host name, certificate refused
    │   │       └── VhostRefused    the broker refused the virtual host: it does not exist, or the user may not use it
    │   ├── PublishRejected         the broker nacked or could not route a publish
    │   │   └── QueueFull           the queue's max-length refused the publish
    │   └── ChannelClosed           the broker closed our channel
    │       └── ConsumerTimedOut    … because a delivery stayed unsettled longer than the broker allows
    └── TaskControl                 raised *by tasks* to steer their own fate
        ├── Retry                   run me again later
        └── Reject                  dead-letter me now, no retries
"""

from __future__ import annotations


class FairqError(Exception):
    """Base of every error fairq raises."""


class ConfigurationError(FairqError):
    """A setting, URL or task definition is invalid."""


class MessageError(FairqError):
    """A message cannot be built or read."""


class EncodeError(MessageError):
    """Arguments cannot be sent: not JSON values, or the message is too large."""


class DecodeError(MessageError):
    """A received message is not a valid fairq task message.

    ``reason`` is a short machine-friendly tag that ends up in the dead-letter
    headers (``not a fairq message``, ``not JSON``, ``bad task message``, ``too large``).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class EventFormatError(MessageError):
    """An event batch cannot be read as fairq's events format (a listener counts it and goes on)."""


class UnsupportedEventVersion(EventFormatError):
    """An event batch of another format version than this fairq reads (a newer worker, or an older one)."""

    def __init__(self, version: int, supported: int) -> None:
        hint = "upgrade fairq here" if version > supported else "that worker runs an older fairq"
        super().__init__(f"an event batch of format version {version}; this fairq reads version {supported} ({hint})")
        self.version = version
        self.supported = supported


class UnknownEventKind(EventFormatError):
    """An event batch whose routing key names no event this fairq knows (a newer fairq may add kinds)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"an event batch of kind {key!r}, which this fairq does not know")
        self.key = key


class TaskNotFound(FairqError):
    """A message names a task that this worker does not know."""


class TimeLimitExceeded(FairqError):
    """A task ran longer than its ``time_limit``; it counts as a failure (and may be retried)."""


class ResultError(FairqError):
    """A task's result cannot be had (:meth:`fairq.Handle.result`)."""


class TaskFailed(ResultError):
    """The task failed for good (dead-lettered): ``error_type``, ``error_message`` and ``traceback`` are
    the worker's, ``reason`` the dead-letter reason (``task failed``, ``unknown task``, ...)."""

    def __init__(self, message_id: str, reason: str, error_type: str, error_message: str, traceback: str) -> None:
        super().__init__(f"task {message_id} failed ({reason}): {error_type}: {error_message}" if error_type
                         else f"task {message_id} failed ({reason}): {error_message}")
        self.message_id = message_id
        self.reason = reason
        self.error_type = error_type
        self.error_message = error_message
        self.traceback = traceback


class ResultTimeout(ResultError, TimeoutError):
    """No result arrived within the time asked; the task may still run (ask again later)."""


class NoResult(ResultError):
    """The task was sent without asking for its result (``@app.task(result=True)`` or ``send_with(result=True)``)."""


class BrokerError(FairqError):
    """The broker failed, refused, or could not be reached."""


class ConnectionFailed(BrokerError):
    """The broker cannot be reached, or refused our credentials."""


class LoginRefused(ConnectionFailed):
    """The broker refused the user or password; retrying will not help."""


class TLSRefused(LoginRefused):
    """The TLS handshake failed: unknown CA, wrong host name, or our certificate refused (retrying will not help)."""


class VhostRefused(LoginRefused):
    """The broker refused the URL's virtual host (missing, or not permitted); retrying will not help.

    A :class:`LoginRefused`, so every path that gives up on refused credentials gives up on it too.
    """

    def __init__(self, message: str, vhost: str = "") -> None:
        super().__init__(message)
        self.vhost = vhost


class PublishRejected(BrokerError):
    """The broker did not accept a publish (nack, or unroutable with ``mandatory``)."""


class QueueFull(PublishRejected):
    """The queue is at its ``max_length`` and refuses new messages."""


class ChannelClosed(BrokerError):
    """The broker closed a channel under us; ``code`` is the AMQP reply code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class ConsumerTimedOut(ChannelClosed):
    """The broker took a delivery back because it stayed unsettled longer than the broker allows.

    The backend that can tell this apart from other closures says so (a worker loses its
    session either way); ``advice`` is what the user can change, in the backend's own terms.
    """

    def __init__(self, message: str, code: int | None = None, advice: str = "") -> None:
        super().__init__(message, code)
        self.advice = advice


class TaskControl(FairqError):
    """Base of the exceptions a task raises on purpose to steer its own fate."""


class Retry(TaskControl):
    """Raise inside a task to have it run again after ``delay`` seconds."""

    def __init__(self, delay: float | None = None, reason: str = "") -> None:
        super().__init__(reason or "retry requested")
        self.delay = delay


class Reject(TaskControl):
    """Raise inside a task to dead-letter it at once, without retries."""

    def __init__(self, reason: str = "rejected by task") -> None:
        super().__init__(reason)
