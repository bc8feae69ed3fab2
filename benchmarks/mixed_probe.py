"""The mixed scenario alone, repeated, for fairq policies only: for tuning ``adaptive``.

One mixed run takes seconds, but its figure moves by ±0.04 from run to run on a
shared machine, so a change is judged on many runs. Per run it prints the
makespan against the ideal greedy schedule, tasks run more than once, and, for
runs above ``--show-above``, when each long task started and on which process,
with the workers' window changes and parkings.

    .venv/bin/python benchmarks/mixed_probe.py --prefetch adaptive,100 --runs 6
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
from pathlib import Path

from harness import metrics, systems
from harness.runner import Context, Run
from harness.scenarios import mixed_work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefetch", default="adaptive", help="fairq policies, comma-separated, run in turn")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--show-above", type=float, default=1.12, help="print timelines of runs above this ratio")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    ctx = Context(url=args.broker, tmp=Path(tempfile.mkdtemp(prefix="fairq-mixed-")), quick=False, verbose=False)
    ratios: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(args.runs):
        for policy in args.prefetch.split(","):
            with Run(ctx, "mixed", systems.fairq(policy)) as run:
                run.start(4)
                run.wait_ready(4)
                tasks = mixed_work(5000, 20, 1.0)
                run.send(tasks)
                events = run.wait_events(len(tasks), 200)
                figures = metrics.dispatch(events, 4)
                ratio = float(figures["vs_ideal_greedy"])  # type: ignore[arg-type]
                ratios[policy].append(ratio)
                twice = sum(n - 1 for n in collections.Counter(e.i for e in events).values() if n > 1)
                print(f"{policy:>9}: {ratio:.3f}× ideal greedy, makespan {figures['makespan_s']:.2f} s, "
                      f"run twice: {twice}", flush=True)
                if ratio > args.show_above:
                    t0 = min(e.start for e in events)
                    longs = sorted((e for e in events if e.seconds > 0.5), key=lambda e: e.i)
                    print("    long tasks (index@start s/pid):",
                          " ".join(f"{e.i}@{e.start - t0:.2f}/{e.pid}" for e in longs))
                    log = (run.dir / "workers.log").read_text().splitlines()
                    print("\n".join("    " + line for line in log if "prefetch →" in line or "parking" in line))
    for policy, values in ratios.items():
        print(f"{policy}: median {statistics.median(values):.3f}×, range {min(values):.3f}–{max(values):.3f}× "
              f"over {len(values)} runs")


if __name__ == "__main__":
    main()
