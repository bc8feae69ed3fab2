"""Send one run's tasks with one system's own client, in a process of its own.

``python sender.py SYSTEM PLAN.json`` where SYSTEM is ``fairq_tasks``,
``celery_app``, ``dramatiq_tasks`` or ``raw_tasks`` and the plan is
``{"tasks": [[i, seconds], ...], "interval": 0 | s, "warmup": bool, "chunk": n}``.
Interval 0: timed batches of ``chunk`` tasks (default: all in one), after an untimed
warm-up send of task -1 when asked.
Interval > 0: one send every ``interval`` seconds, each task carrying its send time.
Prints ``{"seconds": timed seconds, "sent": n}`` as JSON.
"""

from __future__ import annotations

import importlib
import json
import sys
import time


def main() -> None:
    system = importlib.import_module(sys.argv[1])
    with open(sys.argv[2]) as f:
        plan = json.load(f)
    items = [(int(i), float(s)) for i, s in plan["tasks"]]
    interval = float(plan.get("interval", 0))
    try:
        if plan.get("warmup"):
            system.send_one(-1, 0.0, time.time())  # connection and queue declaration, untimed
        began = time.perf_counter()
        if interval <= 0:
            chunk = int(plan.get("chunk") or len(items) or 1)
            for first in range(0, len(items), chunk):
                system.send_batch(items[first:first + chunk], time.time())
        else:
            origin = time.perf_counter()
            for n, (i, seconds) in enumerate(items):
                pause = origin + n * interval - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                system.send_one(i, seconds, time.time())
        took = time.perf_counter() - began
    finally:
        system.close()
    print(json.dumps({"seconds": took, "sent": len(items)}))


if __name__ == "__main__":
    main()
