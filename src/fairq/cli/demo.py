"""``fairq demo``: the article's experiment, then round-robin against fair dispatch."""

from __future__ import annotations

import asyncio
import json

import click
from rich.console import Console
from rich.table import Table

from ..demo.chart import write_chart
from ..demo.experiment import ArticleRun, PolicyRun, run_all
from .common import broker_option, one_line_errors, resolve_broker


def render_article(article: ArticleRun) -> str:
    return "\n".join(f"  {worker}: {', '.join(bodies)}" for worker, bodies in article.assignments.items())


def render_runs(runs: list[PolicyRun]) -> Table:
    table = Table(title="uneven work on 3 single-slot workers")
    for column in ("policy", "makespan", "lower bound", "ideal greedy", "÷ ideal greedy", "busy per worker"):
        table.add_column(column, justify="left" if column in ("policy", "busy per worker") else "right", no_wrap=True)
    for run in runs:
        busy = " ".join(f"{s:.1f}" for s in run.per_worker().values()) + " s"
        table.add_row(run.policy, f"{run.makespan:.2f} s", f"{run.lower_bound:.2f} s", f"{run.ideal_greedy:.2f} s",
                      f"{run.makespan / run.ideal_greedy:.2f}", busy)
    return table


@click.command()
@click.option("--dot-seconds", type=click.FloatRange(min=0.001), default=0.1, show_default=True,
              help="seconds of work per '.' (the article uses 1.0)")
@click.option("--chart", "chart_path", default="fairq-demo.png", show_default=True, help="where to write the chart")
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON instead of tables")
@broker_option
@one_line_errors
def demo(dot_seconds: float, chart_path: str, as_json: bool, broker: str | None) -> None:
    """The article's experiment, then round-robin (unlimited) vs fair dispatch on uneven work."""
    url = resolve_broker(broker)
    console = Console(width=120) if not Console().is_terminal else Console()
    if not as_json:
        console.print("[bold]Part 1[/] — the article: six messages, three single-slot workers, prefetch 1\n")
    article, runs = asyncio.run(run_all(url, dot_seconds, quiet=as_json))
    chart = write_chart(runs, chart_path)
    if as_json:
        click.echo(json.dumps({"article": article.to_json(), "runs": [r.to_json() for r in runs],
                               "chart": str(chart)}, indent=2))
        return
    console.print("\nwho got what:")
    console.print(render_article(article))
    console.print("\n[bold]Part 2[/] — long and short tasks mixed: unlimited prefetch (round-robin), fair, adaptive\n")
    console.print(render_runs(runs))
    fair = next(r for r in runs if r.policy == "fair")
    worst = max(runs, key=lambda r: r.makespan)
    if worst is not fair:
        console.print(f"\n{worst.policy} took {worst.makespan / fair.makespan:.1f} × as long as fair: "
                      "one worker sat on the long tasks while the others idled.")
    console.print(f"chart: {chart}")
