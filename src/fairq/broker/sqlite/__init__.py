"""``sqlite:///path/to/fairq.db``: the embedded broker for one host.

Any number of producer and worker processes on one host share one database file (WAL mode;
each broker connection runs its statements on its own database thread, so the event loop
never blocks; claims take the write lock up front with ``BEGIN IMMEDIATE``).

At-least-once with leases (:mod:`.leases`): a claimed message belongs to its broker's session,
renewed every 0.5 s; a session whose process died (checked by pid on this host) or whose
heartbeat is 1.5 s old gives its messages back with ``redelivered`` set and ``delivery_count``
+ 1. Idle consumers sleep until a wake-up (:mod:`.wake`) or the next ``ready_at``.

Durability. Everything a ``publish`` returned for is committed, and a commit survives
``kill -9`` of any process (producer, worker, or both): SQLite's WAL is on disk before the
commit returns. Against power loss or an OS crash, the URL option ``synchronous`` decides:

* ``full`` (the default) fsyncs the WAL at every commit: a confirmed publish (and an ack)
  survives power loss, the same promise a RabbitMQ publisher confirm gives. It costs one
  fsync per commit.
* ``normal`` fsyncs only at checkpoints: much faster commits, still safe against ``kill -9``,
  but the last commits before a power loss may be lost (the database stays consistent).
  ``extra`` and ``off`` are passed to SQLite as they are.

Network filesystems (NFS, SMB, most FUSE mounts) are unsafe: WAL needs shared memory between
the processes and POSIX locks that such filesystems do not provide reliably, and the pid
check only knows this host. Keep the file on a local disk; use RabbitMQ across hosts.
Wall-clock time is used for heartbeats and delays (several processes must agree on it): a
clock stepped forward by more than the lease makes live sessions look dead (a duplicate run,
never a loss).
"""

from __future__ import annotations

from .broker import SQLiteBroker, parse_url

__all__ = ["SQLiteBroker", "parse_url"]
