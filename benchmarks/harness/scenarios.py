"""The issue-4 scenarios. Each returns a :class:`~harness.table.Table`; every figure has a same-run baseline."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import metrics, systems
from .procs import rss_kib
from .runner import Context, Refused, Run, Task
from .systems import System
from .table import Table

SHUFFLE_SEED = 4  #: fixed, so reruns interleave systems the same way
MEMORY_CHUNK = 10_000  #: tasks per App.send_many call in the memory scenario


# -- shared machinery ---------------------------------------------------------------------


def _skip(ctx: Context, system: System) -> str | None:
    if system.family == "fairq" and system.policy in ctx.refused:
        return "not available yet (the CLI refuses it)"
    return None


def _measure_rounds(ctx: Context, table: Table, candidates: Sequence[System], rounds: int,
                    measure: Callable[[System], Any]) -> dict[System, list[Any]]:
    """Run ``measure`` on each system ``rounds`` times, interleaved in a shuffled order per round.

    A refusal (fairq policy not accepted by the CLI) or a failure is noted and the system dropped."""
    results: dict[System, list[Any]] = {s: [] for s in candidates}
    dropped: dict[System, str] = {s: reason for s in candidates if (reason := _skip(ctx, s))}
    shuffle = random.Random(SHUFFLE_SEED)
    for round_no in range(rounds):
        order = list(candidates)
        if rounds > 1:
            shuffle.shuffle(order)
        for system in order:
            if system in dropped:
                continue
            ctx.log(f"{table.key}: {system.label} (round {round_no + 1}/{rounds})")
            for attempt in (1, 2):  # a shared machine has hiccups: one retry before giving up
                try:
                    results[system].append(measure(system))
                    break
                except Refused as exc:
                    ctx.refused[system.policy] = str(exc)
                    dropped[system] = "not available yet (the CLI refuses it)"
                    table.notes.append(f"`fairq worker --prefetch {system.policy}` was refused: {exc}")
                    break
                except Exception as exc:  # noqa: BLE001 - one broken system must not end the benchmark
                    ctx.log(f"  attempt {attempt} failed: {type(exc).__name__}: {exc}")
                    if attempt == 2:
                        dropped[system] = f"failed: {type(exc).__name__}: {exc}"
                        table.notes.append(f"{system.label} failed twice in round {round_no + 1}: {exc}")
    for system, reason in dropped.items():
        results[system] = [reason]
    return results


def _failed(values: list[Any]) -> str | None:
    return values[0] if values and isinstance(values[0], str) else None


def _spread(values: list[float]) -> str:
    return f"{min(values):,.0f}–{max(values):,.0f}" if len(values) > 1 else ""


def _noop(count: int) -> list[Task]:
    return [(i, 0.0) for i in range(count)]


# -- enqueue --------------------------------------------------------------------------------


def enqueue(ctx: Context, rounds: int) -> Table:
    count = 2_000 if ctx.quick else 20_000
    table = Table("enqueue", "Enqueue: publish rate",
                  f"{count:,} no-op tasks sent by one process with each system's own client, after one untimed "
                  "warm-up send (connection, queue declaration). The clock runs from the first send call to the "
                  "return of the last one; with confirms that is the broker's last confirm, without confirms only "
                  "the last socket write. Baseline: raw aiormq pipelined confirmed publishing (window 1000, "
                  "fairq's own window) to a queue of the same type. Median of the rounds.",
                  [("System", "text"), ("Queue", "text"), ("Waits for confirms", "text"), ("Tasks/s", "int"),
                   ("Min–max", "text"), ("vs baseline", "ratio"), ("Baseline", "text")])
    baselines = {k: systems.raw_publisher(k) for k in ("quorum", "classic")}
    candidates = [baselines["quorum"], baselines["classic"], systems.fairq_sender(), systems.celery("default"),
                  systems.celery("confirm"), systems.dramatiq("default"), systems.dramatiq("confirm")]

    def measure(system: System) -> float:
        with Run(ctx, "enqueue", system) as run:
            return count / run.send(_noop(count), warmup=True)

    results = _measure_rounds(ctx, table, candidates, rounds, measure)
    medians = {s: statistics.median(v) for s, v in results.items() if not _failed(v)}
    for system in candidates:
        values = results[system]
        base = baselines[system.queue_kind]
        row = dict(System=system.name, Queue=system.queue_kind, **{"Waits for confirms": system.confirms})
        if (reason := _failed(values)) is not None:
            table.add(**row, Baseline=reason)
            continue
        ratio = medians[system] / medians[base] if base in medians else None
        table.add(**row, **{"Tasks/s": medians[system], "Min–max": _spread(values), "vs baseline": ratio,
                            "Baseline": "baseline" if system is base else f"{base.name}, {base.queue_kind}", "runs": values})
    table.notes.append("Celery fair sends exactly as Celery default (its settings change only the workers), so it has "
                       "no row here.")
    return table


# -- drain and the raw ceiling ------------------------------------------------------------------


def drain_once(run: Run, count: int) -> float:
    """Queue ``count`` no-ops, then start 2 single-slot processes; tasks/s from first start to last end."""
    run.send(_noop(count))
    run.start(2)
    return metrics.throughput(run.wait_events(count, 60 + count / 100))


def drain(ctx: Context, policies: Sequence[str], rounds: int) -> Table:
    count = 2_000 if ctx.quick else 20_000
    table = Table("drain", "Drain: 2 worker processes empty a pre-filled queue (with the raw client ceiling)",
                  f"{count:,} no-op tasks are queued first (untimed, each system's own sender), then 2 single-slot "
                  "worker processes start. The figure is tasks ÷ (first task start → last task end), from the tasks' "
                  "own timestamps, so worker start-up is not counted. The raw ceiling rows are 2 processes of the "
                  "bare client consuming and acking the same number of messages (at prefetch 100, and at 1 for "
                  "reference) and writing the same event line per message. Baseline: raw aiormq at prefetch 100 on "
                  "a queue of the same type.",
                  [("System", "text"), ("Queue", "text"), ("Tasks/s", "int"), ("Min–max", "text"),
                   ("vs baseline", "ratio"), ("Baseline", "text")])
    baselines = {k: systems.raw("aiormq", 100, k) for k in ("quorum", "classic")}
    candidates = [baselines["quorum"], baselines["classic"], systems.raw("pika", 100, "classic"),
                  systems.raw("aiormq", 1, "quorum"), systems.raw("aiormq", 1, "classic"),
                  *[systems.fairq(p) for p in policies], systems.fairq("fair", "classic"), systems.fairq("100", "classic"),
                  *[systems.fairq(p, events=False) for p in EVENT_COST_POLICIES if p in policies],
                  systems.celery("default", 2), systems.celery("fair", 2), systems.dramatiq("default", 2)]

    def measure(system: System) -> float:
        with Run(ctx, "drain", system) as run:
            return drain_once(run, count)

    results = _measure_rounds(ctx, table, candidates, rounds, measure)
    medians = {s: statistics.median(v) for s, v in results.items() if not _failed(v)}
    for system in candidates:
        values = results[system]
        base = baselines[system.queue_kind]
        row = dict(System=system.label, Queue=system.queue_kind)
        if (reason := _failed(values)) is not None:
            table.add(**row, Baseline=reason)
            continue
        ratio = medians[system] / medians[base] if base in medians else None
        table.add(**row, **{"Tasks/s": medians[system], "Min–max": _spread(values), "vs baseline": ratio,
                            "Baseline": "baseline (raw ceiling)" if system is base else f"{base.label}, {base.queue_kind}",
                            "runs": values})
    return table


# -- latency ----------------------------------------------------------------------------------


def latency(ctx: Context, policies: Sequence[str], rounds: int) -> Table:
    count = 100 if ctx.quick else 500
    table = Table("latency", "Latency: send → start on one idle worker",
                  f"One worker process with one slot, started and consuming before anything is sent; {count} no-op "
                  "tasks are then sent 10 ms apart, one send call each. Each task carries the sender's time.time() "
                  "taken just before its send call, and records time.time() when it starts; the figures are the "
                  "percentiles of start − sent (fairq's send waits for the confirm, so it is included; Celery and "
                  "Dramatiq send without confirms). Baseline: raw aiormq, one confirmed publish at a time, consumed "
                  "at prefetch 1 from a queue of the same type.",
                  [("System", "text"), ("Queue", "text"), ("p50 ms", "f2"), ("p99 ms", "f2"),
                   ("p50 vs baseline", "ratio"), ("p99 vs baseline", "ratio"), ("Baseline", "text")])
    baselines = {k: systems.raw("aiormq", 1, k) for k in ("quorum", "classic")}
    candidates = [baselines["quorum"], baselines["classic"], *[systems.fairq(p) for p in policies],
                  *[systems.fairq(p, "classic") for p in ("fair", "adaptive") if p in policies],
                  systems.celery("default", 1), systems.celery("fair", 1), systems.dramatiq("default", 1)]

    def measure(system: System) -> tuple[float, float]:
        with Run(ctx, "latency", system) as run:
            run.start(1)
            run.wait_ready(1)
            run.send(_noop(count), interval=0.010)
            lat = metrics.latencies_ms(run.wait_events(count, 60))
            return metrics.percentile(lat, 50), metrics.percentile(lat, 99)

    results = _measure_rounds(ctx, table, candidates, rounds, measure)
    p50 = {s: statistics.median(v[0] for v in vs) for s, vs in results.items() if not _failed(vs)}
    p99 = {s: statistics.median(v[1] for v in vs) for s, vs in results.items() if not _failed(vs)}
    for system in candidates:
        base = baselines[system.queue_kind]
        row = dict(System=system.label, Queue=system.queue_kind)
        if (reason := _failed(results[system])) is not None:
            table.add(**row, Baseline=reason)
            continue
        table.add(**row, **{"p50 ms": p50[system], "p99 ms": p99[system],
                            "p50 vs baseline": p50[system] / p50[base] if base in p50 else None,
                            "p99 vs baseline": p99[system] / p99[base] if base in p99 else None,
                            "Baseline": "baseline" if system is base else f"{base.label}, {base.queue_kind}",
                            "runs": results[system]})
    return table


# -- dispatch: W1, W2, mixed --------------------------------------------------------------------


#: fairq policies whose drain also runs with --no-events, for what the worker events cost (issue 14).
EVENT_COST_POLICIES = ("100", "adaptive")

#: fairq policies whose balance is also measured on the embedded SQLite broker (issue 13).
SQLITE_DISPATCH_POLICIES = ("fair", "adaptive")


def _dispatch_systems(policies: Sequence[str], slots: int) -> list[System]:
    return [*[systems.fairq(p) for p in policies],
            *[systems.fairq(p, backend="sqlite") for p in policies if p in SQLITE_DISPATCH_POLICIES],
            systems.celery("default", slots, one_node=False),
            systems.celery("fair", slots, one_node=False), systems.celery("default", slots, one_node=True),
            systems.dramatiq("default", slots)]


def _dispatch(ctx: Context, table: Table, candidates: Sequence[System], slots: int,
              workloads: Sequence[list[Task]], rounds: int = 1) -> None:
    """Per system and round: start ``slots`` single-slot processes, wait for every consumer, then send
    each workload in one batch and wait for it to finish; one row per system, the mean over workloads
    and rounds (each round with fresh workers, the systems interleaved as in the other scenarios)."""

    def measure(system: System) -> list[dict[str, Any]]:
        outcomes = []
        with Run(ctx, table.key, system) as run:
            run.start(slots)
            run.wait_ready(slots)
            done = 0
            for tasks in workloads:
                budget = 60 + 10 * sum(s for _, s in tasks) + len(tasks) / 50
                run.send(tasks)
                done += len(tasks)
                mine = {i for i, _ in tasks}
                events = [e for e in run.wait_events(done, budget) if e.i in mine]
                outcomes.append(metrics.dispatch(events, slots))
        return outcomes

    results = _measure_rounds(ctx, table, candidates, rounds, measure)
    for system in candidates:
        row = dict(System=system.label)
        if (reason := _failed(results[system])) is not None:
            table.add(**row, Note=reason)
            continue
        runs = [outcome for outcomes in results[system] for outcome in outcomes]
        greedy = [r["vs_ideal_greedy"] for r in runs]
        bound = [r["vs_lower_bound"] for r in runs]
        table.add(**row, **{"Makespan s": statistics.mean(r["makespan_s"] for r in runs),
                            "Ideal greedy s": statistics.mean(r["ideal_greedy_s"] for r in runs),
                            "Lower bound s": statistics.mean(r["lower_bound_s"] for r in runs),
                            "÷ ideal greedy": statistics.mean(greedy), "÷ lower bound": statistics.mean(bound),
                            "Range ÷ greedy": f"{min(greedy):.2f}–{max(greedy):.2f}" if len(runs) > 1 else "",
                            "runs": runs})


_DISPATCH_COLUMNS = [("System", "text"), ("Makespan s", "f2"), ("Ideal greedy s", "f2"), ("Lower bound s", "f2"),
                     ("÷ ideal greedy", "ratio"), ("÷ lower bound", "ratio")]


def w1(ctx: Context, policies: Sequence[str]) -> Table:
    long, short = (1.0, 0.1) if ctx.quick else (3.0, 0.2)
    tasks = [(i, d) for i, d in enumerate([long, short, short] * 3)]
    table = Table("w1", "Balance W1: [long, short, short] × 3 on 3 single-slot workers",
                  f"Long tasks of {long:g} s and short ones of {short:g} s ({'scaled down for --quick' if ctx.quick else 'not scaled'}), sent in one batch in that "
                  "order once all 3 single-slot worker processes consume the queue. Makespan is first task start → "
                  "last task end; the yardsticks (PRODUCT.md) are computed from the measured task durations in "
                  "send order: the ideal greedy schedule (a perfect fair dispatcher with zero overhead) and the "
                  "lower bound max(work ÷ slots, longest task).",
                  _DISPATCH_COLUMNS + [("Note", "text")])
    _dispatch(ctx, table, _dispatch_systems(policies, 3), 3, [tasks])
    return table


def lognormal_work(seed: int, count: int, total: float, offset: int) -> list[Task]:
    """``count`` lognormal(0, 1) durations from ``seed``, scaled to sum to ``total`` seconds."""
    rng = random.Random(seed)
    raw = [rng.lognormvariate(0.0, 1.0) for _ in range(count)]
    scale = total / sum(raw)
    return [(offset + i, round(d * scale, 4)) for i, d in enumerate(raw)]


def w2(ctx: Context, policies: Sequence[str]) -> Table:
    seeds = [1] if ctx.quick else [1, 2, 3]
    total = 10.0 if ctx.quick else 30.0
    workloads = [lognormal_work(seed, 60, total, 1000 * n) for n, seed in enumerate(seeds)]
    table = Table("w2", "Balance W2: 60 lognormal tasks on 4 single-slot workers",
                  f"60 tasks with durations drawn from lognormal(μ=0, σ=1) by Python's random.Random(seed), scaled "
                  f"to {total:g} s of work in all; seeds {', '.join(map(str, seeds))}. Each seed's batch is sent "
                  "once all 4 single-slot worker processes consume the queue (the same workers serve every seed, "
                  "one after the other). Figures are the mean over seeds; yardsticks as in W1.",
                  _DISPATCH_COLUMNS + [("Range ÷ greedy", "text"), ("Note", "text")])
    _dispatch(ctx, table, _dispatch_systems(policies, 4), 4, workloads)
    return table


def mixed_work(tiny: int, long: int, seconds: float) -> list[Task]:
    """``tiny`` no-op tasks with ``long`` tasks of ``seconds`` spread evenly among them."""
    total = tiny + long
    positions = {round((k + 0.5) * total / long) for k in range(long)}
    return [(i, seconds if i in positions else 0.0) for i in range(total)]


def mixed(ctx: Context, policies: Sequence[str], rounds: int) -> Table:
    tiny, long, seconds = (1_000, 8, 0.5) if ctx.quick else (5_000, 20, 1.0)
    table = Table("mixed", "Mixed: tiny tasks with long ones among them, 4 slots",
                  f"{tiny:,} no-op tasks with {long} tasks of {seconds:g} s spread evenly among them, sent in one "
                  "batch once all 4 single-slot worker processes consume the queue. The workers may start on the "
                  "first tasks while the rest are still being sent, so a slow sender shows here too. One figure "
                  "moves by about ±0.04 from run to run, so each system runs "
                  f"{rounds} time{'s' if rounds > 1 else ''} with fresh workers, interleaved; figures are the mean. "
                  "Yardsticks as in W1.", _DISPATCH_COLUMNS + [("Range ÷ greedy", "text"), ("Note", "text")])
    _dispatch(ctx, table, _dispatch_systems(policies, 4), 4, [mixed_work(tiny, long, seconds)], rounds)
    return table


# -- memory ----------------------------------------------------------------------------------------


def memory(ctx: Context, policy: str) -> Table:
    count = 20_000 if ctx.quick else 200_000
    table = Table("memory", f"Memory: fairq worker RSS before and after {count:,} tasks",
                  f"`fairq worker -p 2 --prefetch {policy}`, started and consuming, then {count:,} no-op tasks sent "
                  f"with App.send_many in batches of {MEMORY_CHUNK:,} while it works. VmRSS of each worker process (the supervisor's "
                  "children, `pgrep -P`) from /proc/PID/status: before any task, at its highest (sampled every "
                  "0.5 s), and once all tasks are done. Baseline: each process's own RSS before.",
                  [("Process", "text"), ("Before MiB", "f1"), ("Peak MiB", "f1"), ("After MiB", "f1"),
                   ("After ÷ before", "ratio"), ("Note", "text")])
    system = systems.fairq(policy)
    if (reason := _skip(ctx, system)) is not None:
        table.add(Process=system.label, Note=reason)
        return table
    ctx.log(f"memory: {system.label}, {count:,} tasks")
    with Run(ctx, "memory", system) as run:
        workers = run.start(2)
        run.wait_ready(2)
        time.sleep(1.0)
        pids = workers.children()
        before = {p: rss_kib(p) for p in pids}
        peak = dict(before)
        trace: list[tuple[int, float]] = []
        failures: list[BaseException] = []

        def send() -> None:
            try:
                run.send(_noop(count), chunk=MEMORY_CHUNK)
            except BaseException as exc:  # noqa: BLE001 - reported by the waiting loop
                failures.append(exc)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        deadline = time.monotonic() + 120 + count / 200
        while (done := run.events.count()) < count:
            run.check()
            if failures:
                raise failures[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"memory: {done} of {count} tasks")
            now = {p: rss_kib(p) for p in pids}
            peak = {p: max(peak[p], now[p]) for p in pids}
            trace.append((done, sum(now.values()) / 1024))
            time.sleep(0.5)
        sender.join()
        time.sleep(1.0)
        if workers.children() != pids:
            table.notes.append("a worker process was replaced during the run; its figures are of the original")
        after = {p: rss_kib(p) for p in pids}
        trace.append((count, sum(after.values()) / 1024))
    for n, pid in enumerate(pids):
        table.add(Process=f"worker process {n + 1}", **{"Before MiB": before[pid] / 1024, "Peak MiB": peak[pid] / 1024,
                  "After MiB": after[pid] / 1024, "After ÷ before": after[pid] / before[pid]})
    table.add(Process="both", **{"Before MiB": sum(before.values()) / 1024, "Peak MiB": sum(peak.values()) / 1024,
              "After MiB": sum(after.values()) / 1024, "After ÷ before": sum(after.values()) / sum(before.values()),
              "trace": trace})
    return table
