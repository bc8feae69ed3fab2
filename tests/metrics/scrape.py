"""Reading a ``fairq worker --metrics-port`` endpoint as Prometheus would: over HTTP, with prometheus_client's parser."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from tests.support.workers import WorkerProcess, wait_for


@dataclass(frozen=True)
class Scrape:
    """One scrape: the samples by name and labels, and each family's type."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float | None:
        """The one sample with exactly these labels (None if there is none)."""
        return self.samples.get((name, frozenset(labels.items())))

    def total(self, name: str, **labels: str) -> float:
        """The sum over every sample of ``name`` whose labels include these."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and want <= ls)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(ls)[label] for (n, ls), _ in self.samples.items() if n == name and label in dict(ls)}


def scrape(port: int) -> Scrape:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples, types)


def metrics_port(worker: WorkerProcess) -> int:
    """The port the worker's banner says it serves ``/metrics`` on (it was started with port 0)."""
    line = wait_for(lambda: next((l for l in list(worker.lines) if " metrics on http://" in l), None), 30,
                    what="the metrics line of the banner")
    found = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", line)
    assert found, line
    return int(found.group(1))


def until_scraped(port: int, condition: Callable[[Scrape], bool], what: str, timeout: float = 30.0) -> Scrape:
    """Scrape until ``condition`` holds; that scrape."""
    def attempt() -> Scrape | None:
        got = scrape(port)
        return got if condition(got) else None

    return wait_for(attempt, timeout, interval=0.1, what=what)
