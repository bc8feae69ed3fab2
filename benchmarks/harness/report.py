"""Write a harness run's results: JSON, a Markdown table per scenario, and PNG charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend

from .systems import DEPLOYMENT  # noqa: E402
from .table import Table, markdown  # noqa: E402

PREFIX = "systems"


def write_json(path: Path, meta: dict[str, Any], tables: list[Table]) -> None:
    path.write_text(json.dumps({"meta": meta, "scenarios": [t.to_json() for t in tables]}, indent=1) + "\n")


def write_markdown(path: Path, meta: dict[str, Any], tables: list[Table]) -> None:
    parts = ["# fairq against Celery and Dramatiq (issue 4)", "",
             f"- Command: `{meta['command']}`",
             f"- Started {meta['started_utc']} UTC, took {meta['wall_seconds'] / 60:.1f} min; "
             f"load average {meta['load_before']} before, {meta['load_after']} after",
             f"- fairq at {meta['git']}" + (f", **{meta['git_at_end']} at the end: fairq changed during the run**"
                                           if "git_at_end" in meta else ""),
             f"- {meta['machine']}; RabbitMQ {meta['rabbitmq']}; Python {meta['python']}",
             "- " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())]
    for policy, reason in meta.get("refused_policies", {}).items():
        parts.append(f"- `fairq worker --prefetch {policy}` was refused by the CLI (rows marked "
                     f"\"not available yet\"): {reason}")
    parts += ["", "How each system runs:", ""] + [f"- {line}" for line in DEPLOYMENT] + [""]
    for table in tables:
        parts += [f"## {table.title}", "", table.what, "", markdown(table), ""]
        parts += [f"- {note}" for note in dict.fromkeys(table.notes)]
        parts += [f"- Wall time of this scenario: {table.seconds:.0f} s", ""]
    path.write_text("\n".join(parts))


def _hbar(ax: Any, labels: list[str], values: list[float], title: str, xlabel: str,
          baseline: list[bool], reference: float | None = None) -> None:
    y = list(range(len(labels)))[::-1]
    ax.barh(y, values, color=["#9e9e9e" if b else "#3b75af" for b in baseline])
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    if reference is not None:
        ax.axvline(reference, color="#c0392b", linewidth=1)


def _rows(table: Table, value: str) -> list[dict[str, Any]]:
    return [r for r in table.rows if isinstance(r.get(value), (int, float))]


def charts(out: Path, tables: list[Table], prefix: str = PREFIX) -> list[Path]:
    """One PNG per group of scenarios that ran; returns the paths written."""
    by_key = {t.key: t for t in tables}
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        path = out / f"{prefix}-{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    throughput = [by_key[k] for k in ("enqueue", "drain") if k in by_key]
    if throughput:
        fig, axes = plt.subplots(len(throughput), 1, figsize=(9, 3.2 * len(throughput)), squeeze=False)
        for ax, table in zip(axes[:, 0], throughput):
            rows = _rows(table, "Tasks/s")
            _hbar(ax, [f"{r['System']} ({r['Queue']})" for r in rows], [r["Tasks/s"] for r in rows], table.title,
                  "tasks/s (grey: baseline)", [str(r.get("Baseline", "")).startswith("baseline") for r in rows])
        save(fig, "throughput")
    if "latency" in by_key:
        rows = _rows(by_key["latency"], "p50 ms")
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
        for ax, col in zip(axes, ("p50 ms", "p99 ms")):
            _hbar(ax, [f"{r['System']} ({r['Queue']})" for r in rows], [r[col] for r in rows], f"send → start, {col}",
                  "ms (grey: baseline)", [str(r.get("Baseline", "")).startswith("baseline") for r in rows])
        save(fig, "latency")
    dispatch = [by_key[k] for k in ("w1", "w2", "mixed") if k in by_key]
    if dispatch:
        fig, axes = plt.subplots(len(dispatch), 1, figsize=(9, 2.8 * len(dispatch)), squeeze=False)
        for ax, table in zip(axes[:, 0], dispatch):
            rows = _rows(table, "÷ ideal greedy")
            _hbar(ax, [r["System"] for r in rows], [r["÷ ideal greedy"] for r in rows], table.title,
                  "makespan ÷ ideal greedy schedule (red line: 1 = ideal)", [False] * len(rows), reference=1.0)
        save(fig, "dispatch")
    if "memory" in by_key:
        traces = [r["trace"] for r in by_key["memory"].rows if "trace" in r]
        if traces:
            fig, ax = plt.subplots(figsize=(7, 3.2))
            ax.plot([n for n, _ in traces[0]], [mib for _, mib in traces[0]], marker=".")
            ax.set_xlabel("tasks done")
            ax.set_ylabel("RSS of both worker processes, MiB")
            ax.set_title(by_key["memory"].title, fontsize=9)
            ax.set_ylim(bottom=0)
            save(fig, "memory")
    return written
