"""What the RabbitMQ backend reads from the broker's own dead-letter headers, and the management API's rows."""

from __future__ import annotations

from datetime import datetime, timezone

from fairq.broker import BrokerDeath
from fairq.broker.rabbitmq import death_of
from fairq.broker.rabbitmq.management import management_queues, queue_stats


def test_the_newest_x_death_entry_gives_reason_queue_and_time_in_fairqs_words() -> None:
    at = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    headers = {"x-death": [{"reason": "delivery_limit", "queue": "q", "time": at},
                           {"reason": "expired", "queue": "fairq.delay.03"}],
               "x-first-death-reason": "expired"}
    assert death_of(headers) == BrokerDeath("delivery limit", "q", at.isoformat())


def test_without_x_death_the_last_or_first_death_reason_serves_and_fairqs_own_dead_letters_have_none() -> None:
    assert death_of({"x-first-death-reason": "maxlen"}) == BrokerDeath("maxlen")
    assert death_of({"x-last-death-reason": b"rejected", "x-first-death-reason": "expired"}) == BrokerDeath("rejected")
    assert death_of({"fairq-dead-reason": "task failed"}) is None


def test_management_rows_become_queue_stats_with_unacked_and_kind() -> None:
    rows = queue_stats([{"name": "images", "messages_ready": 7, "messages_unacknowledged": 2, "consumers": 3,
                         "type": "quorum"}, {"name": "x", "messages_ready": None, "consumers": True}])
    assert (rows["images"].ready, rows["images"].unacked, rows["images"].consumers, rows["images"].kind) == (
        7, 2, 3, "quorum")
    assert (rows["x"].ready, rows["x"].consumers, rows["x"].unacked, rows["x"].kind) == (0, 0, 0, None)


def test_the_brokers_credentials_never_go_to_another_host() -> None:
    assert management_queues("amqp://u:secret@10.0.0.1/", "http://127.0.0.1:1") is None
