"""What ``fairq status``, ``fairq top`` and the dashboard show: one picture of queues and workers.

- :mod:`.counts`: the backend's queue figures (ready, consumers, unacked, delayed, dead letters);
- :mod:`.model`: :class:`Picture`, folded from worker events, heartbeats and counts, read as
  :class:`QueueView` / :class:`WorkerView` / :class:`RunningView` or as JSON;
- :mod:`.observer`: :class:`Observer` keeps a picture live; :func:`once` is one look.

Data only: drawing it is the CLI's and the dashboard's job.
"""

from __future__ import annotations

from .counts import DEFAULT_MANAGEMENT_URL, Counts, QueueRow, count
from .model import Picture, QueueView, RunningView, WorkerView, lost_after
from .observer import DEFAULT_WAIT, Observer, once

__all__ = ["DEFAULT_MANAGEMENT_URL", "DEFAULT_WAIT", "Counts", "Observer", "Picture", "QueueRow", "QueueView",
           "RunningView", "WorkerView", "count", "lost_after", "once"]
