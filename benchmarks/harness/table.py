"""A scenario's result: rows for the Markdown table, raw data for the JSON file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Column formats: text, int (thousands separators), f1/f2/f3 (decimals), ratio (2 decimals and ×).
Column = tuple[str, str]


@dataclass
class Table:
    key: str
    title: str
    what: str  #: what the scenario measures, one paragraph of Markdown
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  #: wall time the scenario took

    def add(self, **values: Any) -> dict[str, Any]:
        self.rows.append(values)
        return values

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "what": self.what, "columns": [c for c, _ in self.columns],
                "rows": self.rows, "notes": self.notes, "wall_seconds": round(self.seconds, 1)}


def fmt(value: Any, kind: str) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        return value
    if kind == "int":
        return f"{value:,.0f}"
    if kind == "ratio":
        return f"{value:.2f}×"
    if kind.startswith("f"):
        return f"{value:.{int(kind[1:])}f}"
    return str(value)


def markdown(table: Table) -> str:
    if not table.columns:
        return ""
    names = [c for c, _ in table.columns]
    lines = ["| " + " | ".join(names) + " |",
             "|" + "|".join("---" if kind == "text" else "---:" for _, kind in table.columns) + "|"]
    for row in table.rows:
        lines.append("| " + " | ".join(fmt(row.get(name), kind) for name, kind in table.columns) + " |")
    return "\n".join(lines)
