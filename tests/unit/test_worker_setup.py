"""A worker's log level, its banner, and the names of tasks defined in a running script."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

import fairq
from fairq.errors import ConfigurationError
from fairq.logs import resolve_log_level
from fairq.task import default_task_name
from fairq.worker.banner import banner_lines
from fairq.worker.config import WorkerConfig


@pytest.mark.parametrize(("option", "env", "level"), [
    (None, {}, "warning"),
    (None, {"FAIRQ_LOG_LEVEL": "INFO"}, "info"),
    (None, {"FAIRQ_LOG_LEVEL": " "}, "warning"),
    ("debug", {"FAIRQ_LOG_LEVEL": "error"}, "debug"),  # the option wins
    ("ERROR", {}, "error"),
])
def test_the_log_level_comes_from_the_option_then_the_environment(option: str | None, env: dict[str, str],
                                                                   level: str) -> None:
    assert resolve_log_level(option, env) == level


def test_a_bad_log_level_in_the_environment_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="FAIRQ_LOG_LEVEL must be one of debug, info, warning, error"):
        resolve_log_level(None, {"FAIRQ_LOG_LEVEL": "loud"})


def test_the_log_level_reaches_the_worker_processes() -> None:
    config = WorkerConfig(module="m", log_level="info")
    assert WorkerConfig.from_json(config.to_json()).log_level == "info"
    assert WorkerConfig(module="m").log_level == "warning"


def test_the_banner_names_worker_broker_queues_slots_policy_and_tasks() -> None:
    config = WorkerConfig(module="m", processes=2, threads=3, prefetch="fair", name="w")
    text = "\n".join(banner_lines(config, "amqp://u:secret@host:5672/", ["q1", "q2"], ["b.task", "a.task"]))
    assert "fairq worker w.1..2: broker amqp://u:***@host:5672/, queues q1, q2" in text
    assert "2 process(es) x 3 thread(s), prefetch fair, log level warning" in text
    assert "tasks: a.task, b.task" in text and "secret" not in text


def script_function(monkeypatch: pytest.MonkeyPatch, main: types.ModuleType) -> types.FunctionType:
    monkeypatch.setitem(sys.modules, "__main__", main)
    namespace: dict[str, object] = {"__name__": "__main__"}
    exec("def hello():\n    pass\n", namespace)
    fn = namespace["hello"]
    assert isinstance(fn, types.FunctionType)
    return fn


def test_a_task_of_a_running_script_is_named_after_the_script(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    main = types.ModuleType("__main__")
    main.__file__ = str(tmp_path / "hello.py")
    assert default_task_name(script_function(monkeypatch, main)) == "hello.hello"


def test_a_task_of_a_module_run_with_dash_m_keeps_the_module_name(monkeypatch: pytest.MonkeyPatch) -> None:
    main = types.ModuleType("__main__")
    main.__file__ = "/somewhere/pkg/jobs.py"
    main.__spec__ = types.SimpleNamespace(name="pkg.jobs")  # type: ignore[assignment]
    assert default_task_name(script_function(monkeypatch, main)) == "pkg.jobs.hello"


def test_a_task_defined_without_a_script_file_must_be_given_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    fn = script_function(monkeypatch, types.ModuleType("__main__"))
    app = fairq.App()
    with pytest.raises(ConfigurationError, match=r"pass @app.task\(name=...\)"):
        app.task(fn)
    assert app.task(name="hello")(fn).name == "hello"
