"""How `fairq dlq` shows dead letters: whole ids at any width, plain lines for pipes, one letter whole."""

from __future__ import annotations

import io
import uuid

import pytest
from rich.console import Console

from fairq.cli.dlq_view import PLAIN_COLUMNS, plain_lines, plural, render_table, whole
from fairq.deadletters import DeadLetter


def failed(**changes: object) -> DeadLetter:
    fields: dict[str, object] = dict(
        message_id=uuid.uuid4().hex, task="myapp.tasks.resize_the_image_to_width", reason="task failed",
        error_type="RuntimeError", error_message="bug while resizing cat.png\tto 640 px, which went on and on",
        attempts=4, worker="worker-host.example.com.12345", dead_at="2024-05-01T12:00:00.000+00:00", size=1234,
        args=["cat.png", 640], kwargs={"fast": True}, traceback="Traceback (most recent call last):\n  File "
        '"tasks.py", line 3, in resize\nRuntimeError: bug', sent_at="2024-05-01T11:59:58+00:00", queue="images")
    fields.update(changes)
    return DeadLetter(**fields)  # type: ignore[arg-type]


def rendered(letters: list[DeadLetter], width: int) -> str:
    table = render_table("images", letters, width)
    assert table is not None
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(table)
    return console.export_text()


@pytest.mark.parametrize("width", [72, 80, 100, 120, 200])
def test_the_table_keeps_every_message_id_whole_and_fits_the_width(width: int) -> None:
    letters = [failed(), failed(task="(plain)", reason="not a fairq message", error_type=None, error_message=None)]
    text = rendered(letters, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    for letter in letters:
        assert letter.message_id is not None
        assert any(letter.message_id in line for line in lines), text


def test_a_narrow_table_drops_the_least_useful_columns_first_and_a_wide_one_shows_all() -> None:
    letters = [failed()]
    narrow = render_table("images", letters, 80)
    wide = render_table("images", letters, 220)
    assert narrow is not None and wide is not None
    assert [c.header for c in narrow.columns] == ["message id", "task", "reason", "error"]
    assert [c.header for c in wide.columns] == [name for name, _ in PLAIN_COLUMNS]


def test_too_narrow_for_whole_ids_means_no_table() -> None:
    assert render_table("images", [failed()], 50) is None


def test_cells_are_not_read_as_markup() -> None:
    assert "[x] Received" in rendered([failed(error_message="[x] Received '...'")], 200)


def test_plain_lines_are_one_per_dead_letter_with_the_id_first() -> None:
    letters = [failed(), failed(attempts=None, worker=None)]
    lines = plain_lines(letters)
    assert len(lines) == 2
    cells = [line.split("\t") for line in lines]
    assert [row[0] for row in cells] == [d.message_id for d in letters]
    assert all(len(row) == len(PLAIN_COLUMNS) for row in cells)
    assert cells[0][3] == "RuntimeError: bug while resizing cat.png to 640 px, which went on and on"
    assert cells[1][4:6] == ["-", "-"]


def test_whole_shows_every_field_and_the_traceback() -> None:
    letter = failed()
    text = whole(letter)
    for expected in (letter.message_id, letter.task, '["cat.png", 640]', '{"fast": true}', "task failed",
                     "RuntimeError: bug while resizing", "4", letter.worker, "images", letter.sent_at,
                     letter.dead_at, '  File "tasks.py", line 3, in resize'):
        assert str(expected) in text
    plain = whole(failed(args=None, kwargs=None, body="Hello World!", traceback=None))
    assert "Hello World!" in plain and "args" not in plain


def test_counts_are_plural_only_when_they_should_be() -> None:
    assert plural(1, "dead letter") == "1 dead letter"
    assert plural(0, "dead letter") == "0 dead letters"
    assert plural(1200, "dead letter") == "1,200 dead letters"
