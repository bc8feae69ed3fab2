"""`fairq demo --json`: fair dispatch comes close to the ideal; round-robin does not."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_cli


def test_demo_json_fair_is_near_ideal_and_unlimited_is_clearly_worse(broker_url: str, tmp_path: Path) -> None:
    chart = tmp_path / "chart.png"
    result = run_cli("demo", "--json", "--chart", str(chart), env={"FAIRQ_BROKER_URL": broker_url}, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["article"]["counts"] == {"worker1": 2, "worker2": 2, "worker3": 2}
    runs = {run["policy"]: run for run in report["runs"]}
    assert set(runs) == {"unlimited", "fair", "adaptive"}
    fair, unlimited = runs["fair"], runs["unlimited"]
    for run in runs.values():
        assert set(run) >= {"policy", "makespan_s", "lower_bound_s", "ideal_greedy_s", "per_worker"}
        assert run["makespan_s"] >= run["lower_bound_s"] * 0.99
        assert len(run["per_worker"]) == 3
    assert fair["makespan_s"] <= 1.10 * fair["ideal_greedy_s"]
    assert runs["adaptive"]["makespan_s"] <= 1.10 * runs["adaptive"]["ideal_greedy_s"]  # long tasks: stays fair
    assert unlimited["makespan_s"] >= 1.5 * fair["makespan_s"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
