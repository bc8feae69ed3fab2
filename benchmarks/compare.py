#!/usr/bin/env python
"""fairq against Celery and Dramatiq on one RabbitMQ (issue 4).

Drives the real ``fairq worker`` CLI, ``celery worker`` and the ``dramatiq`` CLI
on the same broker in one invocation, each on its own uniquely named queues
(deleted after every run), and writes JSON, Markdown and PNG charts to
``benchmarks/results/``. Every figure comes with a baseline measured in the
same invocation. ``make bench`` runs it in full (about 22 minutes on a 2-core machine).

Run: ``.venv/bin/python benchmarks/compare.py [--quick] [--only drain,w1] [--prefetch 1,fair]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness import broker, report, scenarios
from harness.runner import Context
from harness.table import Table

SCENARIOS = ("enqueue", "drain", "latency", "w1", "w2", "mixed", "memory")
DEFAULT_POLICIES = "1,10,100,1000,fair,adaptive"
#: Rounds of the mixed scenario at most (each takes about 100 s for all systems).
MIXED_ROUNDS = 3
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fairq", "aiormq", "pika", "celery", "kombu", "amqp", "billiard", "dramatiq")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", metavar="SCENARIO[,...]",
                        help=f"run only these scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true", help="small counts and short tasks, for iterating")
    parser.add_argument("--prefetch", default=DEFAULT_POLICIES, metavar="POLICY[,...]",
                        help="fairq --prefetch policies to run; one the CLI refuses is noted and skipped "
                             f"(default {DEFAULT_POLICIES})")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds of enqueue, drain, latency (median) and, up to "
                             f"{MIXED_ROUNDS}, of mixed (mean)")
    parser.add_argument("--memory-prefetch", default="100", help="fairq policy of the memory scenario")
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_URL),
                        help="RabbitMQ URL (default $BENCH_BROKER_URL or the local guest broker)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--worktree", action="store_true",
                        help="run fairq from the working tree (uncommitted edits included) instead of a snapshot of HEAD")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.scenarios = only or list(SCENARIOS)
    args.policies = [p.strip() for p in args.prefetch.split(",") if p.strip()]
    return args


def git(*cmd: str) -> str:
    return subprocess.run(["git", *cmd], capture_output=True, text=True, check=True,
                          cwd=ROOT).stdout.strip()


def fairq_revision() -> str:
    """The last commit that changed src/, flagged when src/ has uncommitted changes (the install is editable)."""
    return git("log", "-1", "--format=%h", "--", "src") + (" (src/ modified)" if git("status", "--porcelain", "src") else "")


def snapshot_fairq(into: Path) -> tuple[Path, str]:
    """Extract src/fairq of the commit HEAD names now into ``into``; returns (import path, commit).

    Workers and senders import fairq from there, so commits or edits made while the
    benchmark runs do not mix two versions of fairq in one table."""
    commit = git("rev-parse", "HEAD")
    archive = subprocess.run(["git", "archive", commit, "src/fairq"], capture_output=True, check=True,
                             cwd=ROOT).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src", commit[:7]


def meta(args: argparse.Namespace, started: float) -> dict[str, Any]:
    return {
        "command": " ".join(shlex.quote(a) for a in [_relative(sys.executable), _relative(sys.argv[0]), *sys.argv[1:]]),
        "started_utc": datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "quick": args.quick,
        "scenarios": args.scenarios,
        "fairq_policies": args.policies,
        "git": fairq_revision() if args.worktree else "",
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "rabbitmq": broker.server_version(args.broker),
        "versions": {p: version(p) for p in PACKAGES},
    }


def _relative(path: str) -> str:
    """``path`` relative to the repository root when it lies inside it (the venv's python is not resolved)."""
    absolute = Path(os.path.abspath(path))
    return str(absolute.relative_to(ROOT)) if absolute.is_relative_to(ROOT) else path


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run_scenarios(ctx: Context, args: argparse.Namespace) -> list[Table]:
    """Run the chosen scenarios in order; a scenario that fails leaves a table saying so."""
    rounds = 1 if args.quick else args.rounds
    runs: dict[str, Callable[[], Table]] = {
        "enqueue": lambda: scenarios.enqueue(ctx, rounds),
        "drain": lambda: scenarios.drain(ctx, args.policies, rounds),
        "latency": lambda: scenarios.latency(ctx, args.policies, rounds),
        "w1": lambda: scenarios.w1(ctx, args.policies),
        "w2": lambda: scenarios.w2(ctx, args.policies),
        "mixed": lambda: scenarios.mixed(ctx, args.policies, min(rounds, MIXED_ROUNDS)),
        "memory": lambda: scenarios.memory(ctx, args.memory_prefetch),
    }
    tables: list[Table] = []
    for key in args.scenarios:
        began = time.monotonic()
        try:
            table = runs[key]()
        except Exception as exc:  # noqa: BLE001 - keep the other scenarios' results
            ctx.log(f"{key}: failed: {type(exc).__name__}: {exc}")
            table = Table(key, f"{key}: failed", f"The scenario failed: {type(exc).__name__}: {exc}", [])
        table.seconds = time.monotonic() - began
        tables.append(table)
        ctx.log(f"{key}: done in {table.seconds:.0f} s")
    return tables


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    info = meta(args, started)
    info["load_before"] = load()
    celery_exchanges_before = broker.existing_exchanges(args.broker, broker.CELERY_SHARED_EXCHANGES)
    tmp = Path(tempfile.mkdtemp(prefix="fairq-bench-"))
    ctx = Context(url=args.broker, tmp=tmp, quick=args.quick)
    try:
        if not args.worktree:
            ctx.fairq_path, commit = snapshot_fairq(tmp / "fairq-snapshot")
            info["git"] = f"{commit} (snapshot of HEAD's src/fairq)"
        tables = run_scenarios(ctx, args)
    finally:
        created = broker.existing_exchanges(args.broker, broker.CELERY_SHARED_EXCHANGES) - celery_exchanges_before
        broker.delete_unused_exchanges(args.broker, created)
        shutil.rmtree(tmp, ignore_errors=True)
    info["load_after"] = load()
    if args.worktree and (revision := fairq_revision()) != info["git"]:
        info["git_at_end"] = revision  # fairq changed under the run: its rows may mix two versions
    info["wall_seconds"] = round(time.time() - started, 1)
    if ctx.refused:
        info["refused_policies"] = ctx.refused
    name = report.PREFIX + ("-quick" if args.quick else "") + ("-" + "-".join(args.scenarios) if argv_only(args) else "")
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / f"{name}.json", info, tables)
    report.write_markdown(args.out / f"{name}.md", info, tables)
    pngs = report.charts(args.out, tables, name)
    print(f"wrote {args.out / name}.json, .md and {len(pngs)} chart(s) in {info['wall_seconds'] / 60:.1f} min")
    return 0


def argv_only(args: argparse.Namespace) -> bool:
    return list(args.scenarios) != list(SCENARIOS)


if __name__ == "__main__":
    sys.exit(main())
