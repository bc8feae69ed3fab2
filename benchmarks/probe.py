"""One scenario, repeated, for fairq policies only: for tuning ``adaptive``.

A mixed run takes seconds and a drain run about two, but their figures move by
±0.04 (mixed, ÷ ideal greedy) and ±10 % (drain, tasks/s) from run to run on a
shared machine, so a change is judged on many runs, with the policies
interleaved. For mixed runs above ``--show-above`` it prints when each long task
started and on which process, with the workers' window changes and parkings.

    .venv/bin/python benchmarks/probe.py mixed --prefetch adaptive,100 --runs 6
    .venv/bin/python benchmarks/probe.py drain --prefetch adaptive,100 --runs 6
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
from pathlib import Path

from harness import metrics, scenarios, systems
from harness.runner import Context, Run


def mixed_once(run: Run, show_above: float) -> float:
    """Makespan ÷ ideal greedy of one mixed run on 4 single-slot workers."""
    run.start(4)
    run.wait_ready(4)
    tasks = scenarios.mixed_work(5000, 20, 1.0)
    run.send(tasks)
    events = run.wait_events(len(tasks), 200)
    figures = metrics.dispatch(events, 4)
    ratio = float(figures["vs_ideal_greedy"])  # type: ignore[arg-type]
    twice = sum(n - 1 for n in collections.Counter(e.i for e in events).values() if n > 1)
    print(f"{run.system.policy:>9}: {ratio:.3f}× ideal greedy, makespan {figures['makespan_s']:.2f} s, "
          f"run twice: {twice}", flush=True)
    if ratio > show_above:
        t0 = min(e.start for e in events)
        longs = sorted((e for e in events if e.seconds > 0.5), key=lambda e: e.i)
        print("    long tasks (index@start s/pid):", " ".join(f"{e.i}@{e.start - t0:.2f}/{e.pid}" for e in longs))
        log = (run.dir / "workers.log").read_text().splitlines()
        print("\n".join("    " + line for line in log if "prefetch →" in line or "parking" in line))
    return ratio


def drain_once(run: Run) -> float:
    """Tasks/s of 2 single-slot workers emptying a queue of 20,000 no-ops (the drain scenario's run)."""
    rate = scenarios.drain_once(run, 20_000)
    print(f"{run.system.label:>40}: {rate:,.0f} tasks/s", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=("mixed", "drain"))
    parser.add_argument("--prefetch", default="adaptive",
                        help="fairq policies, comma-separated, run in turn; POLICY/no-events runs it with --no-events")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--show-above", type=float, default=1.12, help="mixed: print timelines of runs above this ratio")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    ctx = Context(url=args.broker, tmp=Path(tempfile.mkdtemp(prefix="fairq-probe-")), quick=False, verbose=False)
    figures: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(args.runs):
        for policy in args.prefetch.split(","):
            name, _, flag = policy.partition("/")
            with Run(ctx, args.scenario, systems.fairq(name, events=flag != "no-events")) as run:
                figures[policy].append(mixed_once(run, args.show_above) if args.scenario == "mixed" else drain_once(run))
    show = "{:.3f}×".format if args.scenario == "mixed" else "{:,.0f}/s".format
    for policy, values in figures.items():
        print(f"{policy}: median {show(statistics.median(values))}, range {show(min(values))}–{show(max(values))} "
              f"over {len(values)} runs")


if __name__ == "__main__":
    main()
