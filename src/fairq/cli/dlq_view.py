"""How ``fairq dlq`` shows dead letters: a table on a terminal, plain lines through a pipe, one whole.

The message id is what ``dlq replay --id`` and ``dlq show --id`` need, so it is never
cut: a narrow table folds the other cells and drops the columns that matter least.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from rich.table import Table
from rich.text import Text

from ..broker.topology import dead_letter_queue
from ..deadletters import DeadLetter

#: Table cell padding and the border between columns, per column, plus the outer border.
_PER_COLUMN, _EDGES = 3, 1
#: Narrowest a folded task, reason or error cell may get before the table is not worth drawing.
_MIN_FOLDED = 8
#: Width task, reason and error may claim before an optional column gets room.
_WANTED = 24
_SPACES = re.compile(r"\s+")


def plural(count: int, one: str, many: str | None = None) -> str:
    """``1 dead letter``, ``2 dead letters``: every count fairq prints goes through here."""
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def error_of(letter: DeadLetter) -> str | None:
    """``Type: message`` of the error that killed it, if one was recorded."""
    return ": ".join(part for part in (letter.error_type, letter.error_message) if part) or None


def _one_line(value: object) -> str:
    """A cell of a plain line: no tabs or newlines inside it, so each dead letter stays on one line."""
    return _SPACES.sub(" ", _dash(value)).strip() or "-"


#: The plain columns, in order: what ``dlq list | cut -f`` sees (the id first).
PLAIN_COLUMNS: tuple[tuple[str, Callable[[DeadLetter], object]], ...] = (
    ("message id", lambda d: d.message_id),
    ("task", lambda d: d.task),
    ("reason", lambda d: d.reason),
    ("error", error_of),
    ("attempts", lambda d: d.attempts),
    ("worker", lambda d: d.worker),
    ("dead at", lambda d: d.dead_at),
    ("bytes", lambda d: d.size),
)


def plain_lines(letters: list[DeadLetter]) -> list[str]:
    """One tab-separated line per dead letter, columns as :data:`PLAIN_COLUMNS`, no header: for pipes."""
    return ["\t".join(_one_line(cell(d)) for _, cell in PLAIN_COLUMNS) for d in letters]


#: Columns a narrow table drops, first to go first; the id, task, reason and error always stay.
_OPTIONAL = ("bytes", "worker", "attempts", "dead at")


def table_columns(letters: list[DeadLetter], width: int) -> list[str] | None:
    """The columns that fit in ``width`` with the id whole, or None when not even the id, task, reason
    and error fit (the caller prints plain lines then).

    An optional column is kept only if task, reason and error still get their natural
    width (up to :data:`_WANTED`) beside it: they are what an operator reads.
    """
    cells = dict(PLAIN_COLUMNS)

    def natural(name: str) -> int:
        return max([len(name), *(len(_dash(cells[name](d))) for d in letters)])

    fixed = _EDGES + natural("message id") + _PER_COLUMN + 3 * _PER_COLUMN
    if fixed + 3 * _MIN_FOLDED > width:
        return None
    spare = width - fixed - sum(min(natural(n), _WANTED) for n in ("task", "reason", "error"))
    kept = set()
    for name in reversed(_OPTIONAL):
        need = natural(name) + _PER_COLUMN
        if need > spare:
            break  # a less useful column never takes the place of a more useful one
        kept.add(name)
        spare -= need
    return [name for name, _ in PLAIN_COLUMNS if name not in _OPTIONAL or name in kept]


def render_table(queue: str, letters: list[DeadLetter], width: int) -> Table | None:
    """A table for a terminal ``width`` wide, or None when it cannot keep the message ids whole."""
    columns = table_columns(letters, width)
    if columns is None:
        return None
    cells = dict(PLAIN_COLUMNS)
    id_width = max(len("message id"), *(len(_dash(d.message_id)) for d in letters))
    table = Table(title=f"{plural(len(letters), 'dead letter')} in {dead_letter_queue(queue)}")
    for name in columns:
        if name == "message id":
            table.add_column(name, no_wrap=True, min_width=id_width)
        else:
            table.add_column(name, overflow="fold", justify="right" if name in ("bytes", "attempts") else "left")
    for d in letters:
        # Text, not str: a cell is never read as rich markup ("[x] Received" would lose its "[x]").
        table.add_row(*(Text(f"{d.size:,}" if name == "bytes" else _dash(cells[name](d))) for name in columns))
    return table


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def whole(letter: DeadLetter) -> str:
    """Every field of one dead letter, one a line, then its traceback (``dlq show``)."""
    rows: list[tuple[str, object]] = [
        ("message id", letter.message_id),
        ("task", letter.task),
    ]
    if letter.args is not None:
        rows += [("args", _json(letter.args)), ("kwargs", _json(letter.kwargs))]
    rows += [
        ("reason", letter.reason),
        ("error", error_of(letter)),
        ("attempts", letter.attempts),
        ("worker", letter.worker),
        ("queue", letter.queue),
        ("sent at", letter.sent_at),
        ("dead at", letter.dead_at),
        ("bytes", f"{letter.size:,}"),
    ]
    label = max(len(name) for name, _ in rows) + 2
    lines = [f"{name:<{label}}{_dash(value)}" for name, value in rows]
    if letter.body is not None:
        lines += ["body:", *("  " + line for line in letter.body.splitlines() or [""])]
    lines += ["traceback:" if letter.traceback else "traceback: -"]
    if letter.traceback:
        lines += ["  " + line for line in letter.traceback.rstrip("\n").splitlines()]
    return "\n".join(lines)
