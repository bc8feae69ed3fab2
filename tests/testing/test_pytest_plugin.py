"""The fixture as a user's project gets it: through the entry point, or named in pytest_plugins."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

TASKS = """
import fairq
app = fairq.App(broker="amqp://guest:guest@127.0.0.1:1/")

@app.task(queue="images")
def resize(path: str, width: int) -> str:
    return path.replace(".png", f"-{width}.png")
"""

TEST = """
from tasks import resize

def test_resize(fairq_queue):
    resize.send("cat.png", 640)
    fairq_queue.run_until_idle()
    assert fairq_queue.results(resize) == ["cat-640.png"]
"""


@pytest.mark.parametrize("listed", [False, True], ids=["entry point", "pytest_plugins"])
def test_the_readme_example_passes(pytester: pytest.Pytester, listed: bool) -> None:
    plugins = 'pytest_plugins = ["fairq.testing.pytest_plugin"]\n' if listed else ""
    pytester.makepyfile(tasks=TASKS, test_resize=TEST)
    pytester.makeconftest(plugins + "import pytest, tasks\n\n@pytest.fixture\ndef fairq_app():\n    return tasks.app\n")
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_without_a_fairq_app_fixture_it_says_what_to_define(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x(fairq_queue):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*define one in conftest.py that returns your fairq.App*"])
