"""The demo's Gantt chart: a row per worker, a panel per dispatch policy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .experiment import PolicyRun


def write_chart(runs: Sequence[PolicyRun], path: str | Path) -> Path:
    """Draw every run's task spans on a shared time axis and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workers = sorted({s.worker for run in runs for s in run.spans})
    longest = max(s.seconds for run in runs for s in run.spans)
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 1.2 + 1.1 * len(workers) * len(runs)), sharex=True,
                             squeeze=False)
    for ax, run in zip(axes[:, 0], runs):
        origin = min(s.start for s in run.spans)
        for row, worker in enumerate(workers):
            for span in (s for s in run.spans if s.worker == worker):
                colour = "#c0392b" if span.seconds > longest / 2 else "#2e86c1"
                ax.broken_barh([(span.start - origin, span.seconds)], (row - 0.4, 0.8), facecolors=colour,
                               edgecolor="white")
        ax.axvline(run.ideal_greedy, color="black", linestyle="--", linewidth=1)
        ax.text(run.ideal_greedy, len(workers) - 0.45, " ideal greedy", fontsize=8, va="bottom")
        ax.set_yticks(range(len(workers)), workers)
        ax.invert_yaxis()
        ax.set_title(f"{run.policy}: makespan {run.makespan:.2f} s = {run.makespan / run.ideal_greedy:.2f} × ideal greedy",
                     fontsize=10, loc="left")
    axes[-1, 0].set_xlabel("seconds since the first task started (red: long tasks, blue: short)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
