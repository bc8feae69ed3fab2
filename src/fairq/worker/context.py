"""What a running task can ask about the worker running it."""

from __future__ import annotations

import contextvars

#: Name of the worker running the current task (readable from inside tasks and raw handlers).
current_worker: contextvars.ContextVar[str] = contextvars.ContextVar("fairq_worker", default="")
