"""fairq: a work queue on RabbitMQ that spreads uneven jobs fairly and loses none.

    import fairq
    app = fairq.App()

    @app.task(queue="images")
    def resize(path: str, width: int) -> None: ...

    resize.send("cat.png", 640)   # returns once the broker has confirmed it
"""

from __future__ import annotations

from .app import App
from .broker import QueueKind
from .errors import (
    BrokerError,
    ChannelClosed,
    ConfigurationError,
    ConnectionFailed,
    DecodeError,
    EncodeError,
    FairqError,
    LoginRefused,
    MessageError,
    NoResult,
    PublishRejected,
    QueueFull,
    Reject,
    ResultError,
    ResultTimeout,
    Retry,
    TaskControl,
    TaskFailed,
    TaskNotFound,
    TimeLimitExceeded,
    TLSRefused,
    VhostRefused,
)
from .results.group import Group, GroupHandle, group
from .results.handle import Handle
from .task import BoundCall, Call, Task
from .worker.context import current_worker

__version__ = "0.1.0"

__all__ = [
    "App",
    "BoundCall",
    "BrokerError",
    "Call",
    "ChannelClosed",
    "ConfigurationError",
    "ConnectionFailed",
    "DecodeError",
    "EncodeError",
    "FairqError",
    "Group",
    "GroupHandle",
    "Handle",
    "LoginRefused",
    "MessageError",
    "NoResult",
    "PublishRejected",
    "QueueFull",
    "QueueKind",
    "Reject",
    "ResultError",
    "ResultTimeout",
    "Retry",
    "Task",
    "TaskControl",
    "TaskFailed",
    "TaskNotFound",
    "TimeLimitExceeded",
    "TLSRefused",
    "VhostRefused",
    "current_worker",
    "group",
    "__version__",
]
