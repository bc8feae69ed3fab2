"""Small pure parts: yardsticks, prefetch policies, URL redaction, the public API."""

from __future__ import annotations

import asyncio
import threading

import pytest

import fairq
from fairq.config import broker_url, redact
from fairq.demo.yardsticks import ideal_greedy, lower_bound
from fairq.errors import ConfigurationError, EncodeError
from fairq.worker.policy import Prefetch


def test_lower_bound_is_the_larger_of_average_load_and_longest_task() -> None:
    assert lower_bound([3, 0.2, 0.2] * 3, 3) == pytest.approx(3.4)
    assert lower_bound([10, 1, 1], 3) == 10


def test_ideal_greedy_starts_each_task_on_the_first_free_slot_in_send_order() -> None:
    # slots: [3, 0.2+0.2+3 ...]: the second long task waits for a short one, the third for another
    assert ideal_greedy([3, 0.2, 0.2] * 3, 3) == pytest.approx(3.6)
    assert ideal_greedy([1, 1, 1, 1], 2) == 2
    assert ideal_greedy([], 3) == 0


@pytest.mark.parametrize(("text", "threads", "count"), [("fair", 4, 4), ("unlimited", 4, 0), ("7", 4, 7), ("FAIR", 1, 1)])
def test_prefetch_policies_map_to_a_prefetch_count(text: str, threads: int, count: int) -> None:
    assert Prefetch.parse(text).count(threads) == count


@pytest.mark.parametrize("text", ["0", "-1", "lots", ""])
def test_bad_prefetch_values_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError):
        Prefetch.parse(text)


def test_passwords_in_urls_are_redacted_everywhere_in_a_text() -> None:
    text = "at amqp://user:p%40ss@h:5672/v and amqps://u:x@h2/ and amqp://u:p@ss@h3/"
    assert redact(text) == "at amqp://user:***@h:5672/v and amqps://u:***@h2/ and amqp://u:***@h3/"


def test_broker_url_comes_from_the_argument_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAIRQ_BROKER_URL", "amqp://a:b@envhost/")
    assert broker_url() == "amqp://a:b@envhost/"
    assert broker_url("amqp://x@y/") == "amqp://x@y/"
    with pytest.raises(ConfigurationError, match=r"\*\*\*"):
        broker_url("http://u:secret@host/")


def test_defining_tasks_opens_no_connection_and_names_them_module_function() -> None:
    app = fairq.App(broker="amqp://guest:guest@127.0.0.1:1/")  # nothing listens there

    @app.task
    def plain(x: int) -> int:
        return x * 2

    @app.task(queue="images", name="resize", max_retries=5)
    async def resize(path: str, width: int) -> None: ...

    assert plain.name == f"{__name__}.test_defining_tasks_opens_no_connection_and_names_them_module_function.<locals>.plain"
    assert plain(21) == 42 and plain.queue == "default" and not plain.is_async
    assert resize.name == "resize" and resize.queue == "images" and resize.is_async and resize.max_retries == 5
    assert app.queues() == ["default", "images"]
    with pytest.raises(EncodeError, match="missing a required argument"):
        resize.send("only-path")  # refused before any connection is tried
    with pytest.raises(EncodeError, match="not a JSON value"):
        plain.send(object())


def _signatures() -> list[object]:
    def none() -> None: ...
    def two(a: int, b: int) -> None: ...
    def defaults(a: int, b: int = 1, c: int = 2) -> None: ...
    def star(a: int, *rest: int) -> None: ...
    def pos_only(a: int, /, b: int = 0) -> None: ...
    def kw_default(a: int, *, k: int = 0) -> None: ...
    def kw_required(a: int, *, k: int) -> None: ...
    def anything(*args: int, **kwargs: int) -> None: ...
    return [none, two, defaults, star, pos_only, kw_default, kw_required, anything]


@pytest.mark.parametrize("fn", _signatures(), ids=lambda fn: fn.__name__)  # type: ignore[attr-defined]
def test_argument_checks_agree_with_signature_bind(fn: object) -> None:
    import inspect

    task = fairq.App(broker="amqp://guest:guest@127.0.0.1:1/").task(fn)  # type: ignore[call-overload]
    calls: list[tuple[tuple[int, ...], dict[str, int]]] = [((1,) * n, {}) for n in range(5)]
    calls += [((1,), {"b": 2}), ((), {"a": 1}), ((1,), {"k": 3}), ((1, 2), {"a": 1}), ((1,), {"zz": 1})]
    for args, kwargs in calls:
        try:
            inspect.signature(fn).bind(*args, **kwargs)  # type: ignore[arg-type]
            expected = None
        except TypeError as exc:
            expected = str(exc)
        try:
            task.check_arguments(args, kwargs)
            got = None
        except TypeError as exc:
            got = str(exc)
        assert got == expected, (args, kwargs)


def test_the_public_api_is_pinned() -> None:
    assert sorted(fairq.__all__) == sorted([
        "App", "BrokerError", "Call", "ChannelClosed", "ConfigurationError", "ConnectionFailed", "DecodeError",
        "EncodeError", "FairqError", "LoginRefused", "MessageError", "PublishRejected", "QueueFull", "QueueKind",
        "Reject", "Retry", "Task", "TaskControl", "TaskNotFound", "TimeLimitExceeded", "TLSRefused", "VhostRefused", "current_worker", "__version__",
        # results (docs/results.md)
        "BoundCall", "Group", "GroupHandle", "Handle", "NoResult", "ResultError", "ResultTimeout", "TaskFailed",
        "group"])
    assert all(issubclass(getattr(fairq, n), fairq.FairqError) for n in fairq.__all__ if n.endswith(("Error", "Failed")))


def test_reclaiming_jobs_spares_the_ones_asked_and_keeps_their_order() -> None:
    from fairq.worker.threads import Job, NotStarted, ThreadRunner

    async def scenario() -> tuple[list[str], list[str]]:
        runner = ThreadRunner(1, "test")
        started, gate = threading.Event(), threading.Event()
        ran: list[str] = []

        def block() -> None:
            started.set()
            gate.wait()

        blocker = runner.submit(block, (), {})
        assert started.wait(10)  # the one thread is busy: what follows stays queued
        jobs = {name: runner.submit(ran.append, (name,), {}) for name in ["keep-1", "back", "keep-2"]}

        def spare(job: Job) -> bool:
            return job.args[0].startswith("keep")

        assert runner.reclaim(republish=True, spare=spare) == 1
        gate.set()
        await blocker.future
        await jobs["keep-1"].future
        await jobs["keep-2"].future
        given_back = []
        try:
            await jobs["back"].future
        except NotStarted as exc:
            given_back.append("back" if exc.republish else "?")
        runner.stop()
        return ran, given_back

    assert asyncio.run(scenario()) == (["keep-1", "keep-2"], ["back"])
