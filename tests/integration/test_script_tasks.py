"""A script that defines a task and sends it: `python hello.py` sends, `fairq worker hello.py` runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import wait_for, worker_process

SCRIPT = '''
import os
import fairq

app = fairq.App()


@app.task(queue=os.environ["HELLO_QUEUE"])
def hello(who: str) -> None:
    with open(os.environ["HELLO_OUT"], "a") as out:
        out.write(f"hello {who}\\n")


if __name__ == "__main__":
    print(hello.name)
    hello.send("from the script")
'''


def test_a_task_sent_by_its_own_script_runs_on_a_worker_started_on_that_file(
        broker_url: str, queue: str, tmp_path: Path) -> None:
    script = tmp_path / "hello.py"
    script.write_text(SCRIPT)
    out = tmp_path / "out.txt"
    env = {**os.environ, "FAIRQ_BROKER_URL": broker_url, "HELLO_QUEUE": queue, "HELLO_OUT": str(out)}
    sent = subprocess.run([sys.executable, "hello.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.split() == ["hello.hello"]
    with worker_process(str(script), "-p", "1", env=env) as worker:
        wait_for(lambda: out.exists() and out.read_text() == "hello from the script\n", what="the task to run")
    assert any("tasks: hello.hello" in line for line in worker.lines)
    assert "unknown task" not in worker.output()


def test_a_task_defined_without_a_script_file_must_be_named(tmp_path: Path) -> None:
    code = "import fairq\napp = fairq.App()\n@app.task\ndef hello(): pass\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "fairq.errors.ConfigurationError" in result.stderr and "name=" in result.stderr
    named = subprocess.run([sys.executable, "-c", code.replace("@app.task", "@app.task(name='hello')")],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert named.returncode == 0, named.stderr
