"""Render fault-suite outcome files (JSON lines, one per run) as the Markdown table of RELIABILITY.md."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import datetime, timezone


def main(paths: list[str]) -> None:
    runs = [[json.loads(line) for line in open(p) if line.strip()] for p in paths]
    broker = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"], capture_output=True,
                            text=True).stdout or "?"
    print(f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `scripts/reliability` "
          f"(the fault suite, run {len(runs)} times), RabbitMQ {broker}, host {platform.node()}.\n")
    print("| scenario | what was done | run | tasks sent | completed | lost | extra runs | notes |")
    print("|---|---|---|---:|---:|---:|---:|---|")
    order = [o["scenario"] for o in runs[0]]
    for scenario in order:
        for number, run in enumerate(runs, start=1):
            for o in (o for o in run if o["scenario"] == scenario):
                print(f"| {o['scenario'] if number == 1 else ''} | {o['action'] if number == 1 else ''} | {number} "
                      f"| {o['sent']:,} | {o['completed']:,} | **{o['lost']}** | {o['duplicates']} | {o['note']} |")
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
