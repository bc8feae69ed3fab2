#!/usr/bin/env python
"""fairq against Celery and Dramatiq on one RabbitMQ (issue 4).

Drives the real ``fairq worker`` CLI, ``celery worker`` and the ``dramatiq`` CLI
on the same broker in one invocation, each on its own uniquely named queues
(deleted after every run), and writes JSON, Markdown and PNG charts to
``benchmarks/results/``. Every figure comes with a baseline measured in the
same invocation. ``make bench`` runs it in full (about 20 minutes).

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
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
PACKAGES = ("fairq", "aiormq", "pika", "celery", "kombu", "amqp", "billiard", "dramatiq")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", metavar="SCENARIO[,...]",
                        help=f"run only these scenarios: {', '.join(SCENARIOS)}")
    parser.add_argument("--quick", action="store_true", help="small counts and short tasks, for iterating")
    parser.add_argument("--prefetch", default=DEFAULT_POLICIES, metavar="POLICY[,...]",
                        help="fairq --prefetch policies to run; one the CLI refuses is noted and skipped "
                             f"(default {DEFAULT_POLICIES})")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of enqueue, drain, latency (median)")
    parser.add_argument("--memory-prefetch", default="100", help="fairq policy of the memory scenario")
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_URL),
                        help="RabbitMQ URL (default $BENCH_BROKER_URL or the local guest broker)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.scenarios = only or list(SCENARIOS)
    args.policies = [p.strip() for p in args.prefetch.split(",") if p.strip()]
    return args


def meta(args: argparse.Namespace, started: float) -> dict[str, Any]:
    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=Path(__file__).parent).stdout.strip()

    return {
        "command": " ".join(shlex.quote(a) for a in [_relative(sys.executable), _relative(sys.argv[0]), *sys.argv[1:]]),
        "started_utc": datetime.fromtimestamp(started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "quick": args.quick,
        "scenarios": args.scenarios,
        "fairq_policies": args.policies,
        "git": git("rev-parse", "--short", "HEAD") + (" (src/ modified)" if git("status", "--porcelain", "src") else ""),
        "machine": f"{os.cpu_count()} CPUs, {platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "rabbitmq": broker.server_version(args.broker),
        "versions": {p: version(p) for p in PACKAGES},
    }


def _relative(path: str) -> str:
    """``path`` relative to the repository root when it lies inside it (the venv's python is not resolved)."""
    absolute = Path(os.path.abspath(path))
    root = Path(__file__).resolve().parent.parent
    return str(absolute.relative_to(root)) if absolute.is_relative_to(root) else path


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.time()
    info = meta(args, started)
    info["load_before"] = load()
    tmp = Path(tempfile.mkdtemp(prefix="fairq-bench-"))
    ctx = Context(url=args.broker, tmp=tmp, quick=args.quick)
    celery_exchanges_before = broker.existing_exchanges(args.broker, broker.CELERY_SHARED_EXCHANGES)
    rounds = 1 if args.quick else args.rounds
    runs: dict[str, Callable[[], Table]] = {
        "enqueue": lambda: scenarios.enqueue(ctx, rounds),
        "drain": lambda: scenarios.drain(ctx, args.policies, rounds),
        "latency": lambda: scenarios.latency(ctx, args.policies, rounds),
        "w1": lambda: scenarios.w1(ctx, args.policies),
        "w2": lambda: scenarios.w2(ctx, args.policies),
        "mixed": lambda: scenarios.mixed(ctx, args.policies),
        "memory": lambda: scenarios.memory(ctx, args.memory_prefetch),
    }
    tables: list[Table] = []
    try:
        for key in args.scenarios:
            began = time.monotonic()
            table = runs[key]()
            table.seconds = time.monotonic() - began
            tables.append(table)
            ctx.log(f"{key}: done in {table.seconds:.0f} s")
    finally:
        created = broker.existing_exchanges(args.broker, broker.CELERY_SHARED_EXCHANGES) - celery_exchanges_before
        broker.delete_unused_exchanges(args.broker, created)
        shutil.rmtree(tmp, ignore_errors=True)
    info["load_after"] = load()
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
