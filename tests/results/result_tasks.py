"""Tasks for the results tests, run by real `fairq worker` processes (and in-process workers on memory).

The broker comes from $FAIRQ_BROKER_URL; $FAIRQ_TEST_RESULT_STORE, when set, is the app's result
store (App(results=URL)), as a deployment's workers and callers would both configure it.
"""

from __future__ import annotations

import os

import fairq

app = fairq.App(results=os.environ.get("FAIRQ_TEST_RESULT_STORE") or None)


@app.task(name="results.add", queue="results", result=True, max_retries=0)
def add(a: int, b: int) -> int:
    return a + b


@app.task(name="results.fail", queue="results", result=True, max_retries=0)
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(name="results.flaky", queue="results", result=True, max_retries=1, retry_backoff=0.01)
def flaky(path: str) -> str:
    """Fails its first run (the file does not exist yet), succeeds on the retry: one result, the value."""
    if not os.path.exists(path):
        open(path, "w").close()
        raise RuntimeError("first run")
    return "second run"


@app.task(name="results.opaque", queue="results", result=True, max_retries=0)
def opaque() -> object:
    return {1, 2}  # a set is no JSON value


@app.task(name="results.silent", queue="results", max_retries=0)
def silent() -> int:
    return 1
