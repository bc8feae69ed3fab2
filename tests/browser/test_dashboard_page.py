"""The dashboard in a real browser, on every backend: workers run, the page draws a bar per busy slot within
2 s of its task starting, and the dead-letter panel's button replays a dead letter, which then runs.

The amqp run saves the page as docs/dashboard.png (the README shows it).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fairq.dashboard.server import DashboardServer
from tests.support.backends import Harness, unique_queue
from tests.support.dashboard_fixtures import backend, served  # noqa: F401  (fixtures)
from tests.support.workers import Journal, wait_for

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
SLOTS = 4  # 2 processes × 2 threads


def _bars(driver: Any, name: str) -> list[dict[str, Any]]:
    bars = driver.execute_script("return window.fairq.timeline.visibleBars()")
    return [b for b in bars if str(b["worker"]).startswith(name)]


def _click(driver: Any, css: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, css).click()


def test_the_page_draws_a_bar_per_busy_slot_and_replays_a_dead_letter(browser: Any, backend: Harness,
                                                                      served: DashboardServer, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser
    queue, name = unique_queue("browser"), f"page-{uuid.uuid4().hex[:6]}"
    journal = Journal(tmp_path / "journal.txt")
    driver.get(served.url)
    wait_for(lambda: driver.find_element(By.ID, "link").text == "live", what="the page to be live")
    try:
        with backend.workers(queue, journal, processes=2, threads=2, name=name):
            wait_for(lambda: len({(l["worker"], l["slot"]) for l in driver.execute_script(
                "return [...window.fairq.timeline.lanes.values()]") if str(l["worker"]).startswith(name)}) == SLOTS,
                what="a lane per slot")
            ids = [backend.send(queue, "record", f"busy{i}", 3.0) for i in range(SLOTS)]
            running = wait_for(lambda: len(b := [b for b in _bars(driver, name) if b["messageId"] in ids
                                                 and b["outcome"] == "running"]) == SLOTS and b,
                               timeout=30, what="a running bar on every slot")
            assert len({(b["worker"], b["process"], b["slot"]) for b in running}) == SLOTS, running
            started = {row[1]: float(row[4]) for row in journal.entries("start")}
            tags = {message_id: f"busy{i}" for i, message_id in enumerate(ids)}
            # Each bar appeared (the page's clock) within 2 s of its task starting (the task's clock; same host).
            late = {tags[b["messageId"]]: b["seen"] - started[tags[b["messageId"]]] for b in running}
            assert all(delay <= 2.0 for delay in late.values()), late

            if backend.kind == "amqp":  # something for the screenshot: uneven work of three tasks
                for i in range(16):
                    backend.send(queue, "record" if i % 3 else "arecord", f"mix{i}", 0.3 + (i * 7 % 5) * 0.25)
            dead_id = backend.send(queue, "explode", "no such image: cat.png")
            wait_for(lambda: any(o.get_attribute("value") == queue for o in
                                 driver.find_elements(By.CSS_SELECTOR, "#dlq-queue option")),
                     timeout=30, what="the queue in the dead-letter panel")
            Select(driver.find_element(By.ID, "dlq-queue")).select_by_value(queue)
            row_css = f'#dlq-table tbody tr[data-message-id="{dead_id}"]'
            wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, row_css), timeout=30, what="the dead letter's row")
            _click(driver, row_css)
            traceback = driver.find_element(By.ID, "dlq-detail-traceback").text
            assert "ValueError: no such image: cat.png" in traceback
            assert "no such image: cat.png" in driver.find_element(By.ID, "dlq-detail-args").text
            if backend.kind == "amqp":
                wait_for(lambda: len(journal.tags("done")) >= SLOTS + 16, timeout=60, what="the mixed tasks")
                Select(driver.find_element(By.ID, "span")).select_by_value("30")
                SCREENSHOT.parent.mkdir(exist_ok=True)
                driver.save_screenshot(str(SCREENSHOT))

            _click(driver, row_css + " button.replay")
            wait_for(lambda: "replayed 1 dead letter" in driver.find_element(By.ID, "dlq-message").text,
                     timeout=30, what="the replay's answer")
            # The replayed task runs again: a second bar for the same message.
            wait_for(lambda: len([b for b in _bars(driver, name) if b["messageId"] == dead_id]) == 2,
                     timeout=30, what="the replayed task's bar")
            driver.save_screenshot(str(tmp_path / f"dashboard-{backend.kind}.png"))
    finally:
        backend.delete_with_dead_letters(queue)
