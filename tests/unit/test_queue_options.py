"""Queue kind and consumer timeout as RabbitMQ options of a QueueSpec: what App puts there, what RabbitMQ declares."""

from __future__ import annotations

import pytest

import fairq
from fairq.broker import QueueKind, QueueSpec, kind_option
from fairq.broker.rabbitmq.options import KIND, kind_of
from fairq.broker.rabbitmq.topology import dead_letter_arguments, queue_arguments
from fairq.errors import ConfigurationError


def test_an_apps_queue_spec_carries_generic_fields_and_the_kind_as_an_option() -> None:
    app = fairq.App(broker="memory://opts", queue_kind="classic")
    app.queue("urgent", kind=QueueKind.QUORUM, max_length=10)

    @app.task(queue="urgent", time_limit=30)
    def quick() -> None: ...

    @app.task(queue="urgent", time_limit=90)
    def slow() -> None: ...

    urgent, other = app.queue_spec("urgent"), app.queue_spec("other")
    assert (urgent.max_length, urgent.delivery_limit, urgent.task_time_limit) == (10, 5, 90)
    assert dict(urgent.options) == {KIND: "quorum"} and dict(other.options) == {KIND: "classic"}
    assert other.task_time_limit is None


def test_an_app_without_a_kind_leaves_it_to_the_backend_and_rabbitmq_makes_quorum() -> None:
    spec = fairq.App(broker="memory://opts").queue_spec("q")
    assert dict(spec.options) == {} and kind_of(spec) is QueueKind.QUORUM
    assert queue_arguments(spec) == {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "q.dlq",
                                     "x-queue-type": "quorum", "x-delivery-limit": 5}


def test_rabbitmq_turns_the_longest_time_limit_into_a_consumer_timeout_with_a_margin() -> None:
    args = queue_arguments(QueueSpec("q", task_time_limit=90, options=kind_option("classic")))
    assert args is not None and args["x-consumer-timeout"] == 150_000 and "x-queue-type" not in args
    assert queue_arguments(QueueSpec("q", max_length=3, options=kind_option(QueueKind.PLAIN))) is None
    assert dead_letter_arguments(QueueSpec("q", options=kind_option("classic"))) is None


def test_replicas_place_a_new_quorum_queue_and_its_dead_letters_on_that_many_nodes() -> None:
    app = fairq.App(broker="memory://opts", queue_replicas=3)
    app.queue("small", replicas=1)
    small, other = app.queue_spec("small"), app.queue_spec("other")
    for spec, replicas in ((small, 1), (other, 3)):
        assert (queue_arguments(spec) or {})["x-quorum-initial-group-size"] == replicas
        assert (dead_letter_arguments(spec) or {})["x-quorum-initial-group-size"] == replicas
    unset = fairq.App(broker="memory://opts").queue_spec("q")  # the broker's default
    assert "x-quorum-initial-group-size" not in (queue_arguments(unset) or {})
    classic = fairq.App(broker="memory://opts", queue_kind="classic", queue_replicas=3).queue_spec("q")
    assert "x-quorum-initial-group-size" not in (queue_arguments(classic) or {})  # only quorum queues replicate
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigurationError, match="replicas must be a whole number"):
            fairq.App(queue_replicas=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("make", [lambda: fairq.App(queue_kind="stream"),
                                  lambda: fairq.App(broker="memory://x").queue("q", kind="lazy")])
def test_an_unknown_queue_kind_is_refused_at_once_naming_the_choices(make: object) -> None:
    with pytest.raises(ConfigurationError, match="quorum, classic, plain"):
        make()  # type: ignore[operator]


def test_a_spec_is_hashable_and_its_options_read_only() -> None:
    spec = QueueSpec("q", options={KIND: "classic"})
    assert hash(spec) == hash(QueueSpec("q", options={KIND: "plain"})) and spec != QueueSpec("q")
    with pytest.raises(TypeError):
        spec.options[KIND] = "quorum"  # type: ignore[index]
