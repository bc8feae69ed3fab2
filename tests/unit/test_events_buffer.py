"""The bounded buffer between a worker's hooks and its event channel: it drops and counts, never waits."""

from __future__ import annotations

import pytest

from fairq.events import EventBuffer


def test_a_full_buffer_drops_new_items_and_counts_them_keeping_the_oldest_in_order() -> None:
    buffer: EventBuffer[int] = EventBuffer(3)
    assert [buffer.add(i) for i in range(5)] == [True, True, True, False, False]
    assert buffer.dropped == 2 and len(buffer) == 3
    assert buffer.take() == [0, 1, 2]
    assert len(buffer) == 0 and buffer.add(9) and buffer.take() == [9]
    assert buffer.dropped == 2  # taking makes room; it does not reset the count


def test_always_keeps_an_item_even_when_full() -> None:
    buffer: EventBuffer[str] = EventBuffer(1)
    buffer.add("task")
    assert buffer.add("heartbeat", always=True)
    assert not buffer.add("another task")
    assert buffer.take() == ["task", "heartbeat"] and buffer.dropped == 1


def test_take_with_a_limit_takes_the_oldest_first() -> None:
    buffer: EventBuffer[int] = EventBuffer(10)
    for i in range(6):
        buffer.add(i)
    assert buffer.take(4) == [0, 1, 2, 3]
    assert buffer.take(4) == [4, 5]
    assert buffer.take(4) == []


def test_items_taken_but_not_sent_count_as_dropped() -> None:
    buffer: EventBuffer[int] = EventBuffer(10)
    buffer.add(1)
    buffer.take()
    buffer.lost(7)
    assert buffer.dropped == 7


def test_a_buffer_holds_at_least_one() -> None:
    with pytest.raises(ValueError):
        EventBuffer(0)
