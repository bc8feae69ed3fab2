"""How long fairq.testing takes to run 10,000 no-op tasks (issue 13's bar: <= 1 s on the project's machine).

    .venv/bin/python benchmarks/testing_speed.py [--tasks N] [--rounds R]

Times ``run_until_idle`` over tasks already queued with ``send_many`` (the send is reported apart),
for a sync and an async no-op task; prints the best of R rounds.
"""

from __future__ import annotations

import argparse
import time

import fairq
from fairq.testing import run_tasks

app = fairq.App()


@app.task(name="bench.noop")
def noop(i: int) -> None:
    return None


@app.task(name="bench.anoop")
async def anoop(i: int) -> None:
    return None


def one_round(task: fairq.Task[[int], None], count: int) -> tuple[float, float]:
    with run_tasks(app) as q:
        started = time.perf_counter()
        task.send_many([(i,) for i in range(count)])
        sent = time.perf_counter()
        q.run_until_idle(timeout=120)
        ran = time.perf_counter()
        assert len(q.runs) == count
    return sent - started, ran - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    for task in (noop, anoop):
        rounds = [one_round(task, options.tasks) for _ in range(options.rounds)]
        send = min(r[0] for r in rounds)
        run = min(r[1] for r in rounds)
        kind = "async" if task.is_async else "sync"
        print(f"{kind:5} {options.tasks:,} no-op tasks: run_until_idle {run:.3f} s ({options.tasks / run:,.0f}/s), "
              f"send_many {send:.3f} s; best of {options.rounds}")


if __name__ == "__main__":
    main()
