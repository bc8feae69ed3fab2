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
    PublishRejected,
    QueueFull,
    Reject,
    Retry,
    TaskControl,
    TaskNotFound,
    TimeLimitExceeded,
    TLSRefused,
    VhostRefused,
)
from .task import Call, Task
from .worker.context import current_worker

__version__ = "0.1.0"

__all__ = [
    "App",
    "BrokerError",
    "Call",
    "ChannelClosed",
    "ConfigurationError",
    "ConnectionFailed",
    "DecodeError",
    "EncodeError",
    "FairqError",
    "LoginRefused",
    "MessageError",
    "PublishRejected",
    "QueueFull",
    "QueueKind",
    "Reject",
    "Retry",
    "Task",
    "TaskControl",
    "TaskNotFound",
    "TimeLimitExceeded",
    "TLSRefused",
    "VhostRefused",
    "current_worker",
    "__version__",
]
