"""Live counts the shared RabbitMQ node gives only through rabbitmqctl (read-only queries).

fairq's seam cannot say how many deliveries a queue's consumers hold right now: the management
API's figures lag by seconds (its statistics interval), and AMQP tells only the ready count.
"""

from __future__ import annotations

import subprocess


def rabbitmqctl(*args: str) -> str:
    """Read-only queries against the shared node (list_queues, list_channels)."""
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, text=True,
                          timeout=60).stdout


def unacked(queue: str, vhost: str = "/") -> int:
    """Deliveries of ``queue`` held unacknowledged by its consumers, as the broker counts them.

    Read from the consumers' channels: they are live, while list_queues figures of
    quorum queues lag by seconds. fairq gives every consumer its own channel.
    """
    rows = rabbitmqctl("list_consumers", "-p", vhost, "queue_name", "channel_pid", "--no-table-headers").splitlines()
    channels = {line.split("\t")[1] for line in rows if line.split("\t")[0] == queue}
    total = 0
    for line in rabbitmqctl("list_channels", "pid", "messages_unacknowledged", "--no-table-headers").splitlines():
        pid, _, count = line.partition("\t")
        if pid in channels:
            total += int(count)
    return total
