#!/usr/bin/env python
"""Compare AMQP clients on this machine (issue 2: which client fairq builds on).

fairq means to use aiormq as its one asyncio core. Before that is settled we
measure the two hot paths the product has, with each candidate client:

* publishing persistent ~100-byte messages to a durable queue with publisher
  confirms (plus unconfirmed pika as a reference), and
* consuming a pre-filled queue with manual acks, on classic and quorum queues.

Every run gets a fresh queue ``bench.clients.<scenario>.<random>`` that is
deleted afterwards. A round runs every scenario once, in a freshly shuffled
order, so the noise of a shared machine falls on all clients alike; the
median over rounds is reported, and every figure is also given as a ratio to
a pika BlockingConnection baseline of the same run.

Run: ``.venv/bin/python benchmarks/clients.py [--count N] [--repeat R] [--json PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any

import aio_pika
import aiormq
import pika
import pika.channel
import pika.frame
import pika.spec
from aio_pika.abc import AbstractIncomingMessage
from aiormq.abc import DeliveredMessage
from pamqp import commands as amqp

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
QUEUE_PREFIX = "bench.clients."
BODY = b"fairq-benchmark-payload:" + b"x" * 76  # 100 bytes, like a small task
PERSISTENT = 2  # AMQP delivery_mode for messages written to disk
SHUFFLE_SEED = 2  # fixed, so a rerun uses the same interleaving


def _timeout(count: int) -> float:
    """Give up on a stuck run well after any plausible duration."""
    return 60.0 + count / 100.0


@dataclass(frozen=True)
class Target:
    """What one timed run works on: a broker, a fresh queue, a message count."""

    url: str
    queue: str
    count: int


Runner = Callable[[Target], float]
"""Runs one scenario against a prepared queue and returns the timed seconds."""


@dataclass(frozen=True)
class Scenario:
    """One line of the result table."""

    key: str
    test: str  # "publish" or "consume"
    client: str
    setting: str
    queue_type: str
    meaning: str
    baseline: str
    runner: Runner = field(compare=False, repr=False)


def _params(url: str, **overrides: Any) -> pika.URLParameters:
    """Parse the broker URL once per connection, as each client would."""
    params = pika.URLParameters(url)
    for name, value in overrides.items():
        setattr(params, name, value)
    return params


# --------------------------------------------------------------------------
# Publishing. The clock runs from the first publish to the last confirm
# (or, unconfirmed, to a round trip after the last publish).


def publish_pika_unconfirmed(t: Target) -> float:
    """Reference without confirms: the broker has only read the frames."""
    props = pika.BasicProperties(delivery_mode=PERSISTENT)
    with pika.BlockingConnection(_params(t.url)) as conn:
        channel = conn.channel()
        start = time.perf_counter()
        for _ in range(t.count):
            channel.basic_publish("", t.queue, BODY, props, mandatory=True)
        channel.queue_declare(t.queue, passive=True)  # broker read them all
        return time.perf_counter() - start


def publish_pika_blocking(t: Target) -> float:
    """pika's blocking adapter waits for each confirm: one in flight."""
    props = pika.BasicProperties(delivery_mode=PERSISTENT)
    with pika.BlockingConnection(_params(t.url)) as conn:
        channel = conn.channel()
        channel.confirm_delivery()
        start = time.perf_counter()
        for _ in range(t.count):
            # Raises NackError / UnroutableError instead of returning.
            channel.basic_publish("", t.queue, BODY, props, mandatory=True)
        return time.perf_counter() - start


class _SelectRun:
    """Drive one pika SelectConnection (callback adapter) to completion."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.start: float | None = None
        self.end: float | None = None
        self.error: BaseException | None = None
        self.channel: pika.channel.Channel | None = None
        self.conn = pika.SelectConnection(
            _params(target.url),
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_open_error,
            on_close_callback=self._on_close,
        )

    def run(self) -> float:
        """Run the ioloop until the scenario finishes or fails."""
        timer = self.conn.ioloop.call_later(
            _timeout(self.target.count),
            lambda: self._fail(TimeoutError(f"{type(self).__name__} timed out")),
        )
        self.conn.ioloop.start()
        self.conn.ioloop.remove_timeout(timer)
        if self.error is not None:
            raise self.error
        if self.start is None or self.end is None:
            raise RuntimeError("SelectConnection closed before the run ended")
        return self.end - self.start

    def begin(self, channel: pika.channel.Channel) -> None:
        """Start the scenario on an open channel."""
        raise NotImplementedError

    def finish(self) -> None:
        """Stop the clock and close the connection."""
        self.end = time.perf_counter()
        self.conn.close()

    def _on_open(self, conn: pika.BaseConnection) -> None:
        conn.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: pika.channel.Channel) -> None:
        self.channel = channel
        channel.add_on_close_callback(self._on_channel_closed)
        self.begin(channel)

    def _on_open_error(self, conn: pika.BaseConnection, err: BaseException) -> None:
        self.error = err
        conn.ioloop.stop()

    def _on_channel_closed(
        self, _channel: pika.channel.Channel, reason: BaseException
    ) -> None:
        if self.end is None:
            self._fail(reason)

    def _on_close(self, conn: pika.BaseConnection, _reason: BaseException) -> None:
        conn.ioloop.stop()

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        if self.conn.is_open:
            self.conn.close()
        elif not self.conn.is_closing:
            self.conn.ioloop.stop()


class _SelectPublisher(_SelectRun):
    """Keep up to ``window`` unconfirmed publishes in flight."""

    def __init__(self, target: Target, window: int) -> None:
        super().__init__(target)
        self.window = window
        self.props = pika.BasicProperties(delivery_mode=PERSISTENT)
        self.published = 0
        self.confirmed = 0
        self.unconfirmed: set[int] = set()
        self.multiple_floor = 0  # every tag <= this was confirmed by a multiple ack

    def begin(self, channel: pika.channel.Channel) -> None:
        channel.add_on_return_callback(
            lambda *_: self._fail(RuntimeError("message returned unroutable"))
        )
        channel.confirm_delivery(
            ack_nack_callback=self._on_confirm, callback=self._on_confirm_mode
        )

    def _on_confirm_mode(self, _frame: pika.frame.Method) -> None:
        self.start = time.perf_counter()
        self._top_up()

    def _top_up(self) -> None:
        assert self.channel is not None
        while (
            self.published < self.target.count
            and self.published - self.confirmed < self.window
        ):
            self.channel.basic_publish(
                "", self.target.queue, BODY, self.props, mandatory=True
            )
            self.published += 1
            self.unconfirmed.add(self.published)  # pika tags count from 1

    def _on_confirm(self, frame: pika.frame.Method) -> None:
        method = frame.method
        if not isinstance(method, pika.spec.Basic.Ack):
            self._fail(RuntimeError(f"broker refused a publish: {method}"))
            return
        tag = int(method.delivery_tag)
        if method.multiple:
            # Each tag falls in at most one multiple range: linear overall.
            for each in range(self.multiple_floor + 1, tag + 1):
                if each in self.unconfirmed:
                    self.unconfirmed.remove(each)
                    self.confirmed += 1
            self.multiple_floor = max(self.multiple_floor, tag)
        elif tag in self.unconfirmed:
            self.unconfirmed.remove(tag)
            self.confirmed += 1
        if self.confirmed == self.target.count:
            self.finish()
        else:
            self._top_up()


def publish_pika_select(t: Target, window: int) -> float:
    """pika's callback adapter can pipeline confirms, unlike the blocking one."""
    return _SelectPublisher(t, window).run()


def _check_ack(result: object) -> None:
    """A confirmed publish must come back as Basic.Ack, nothing else."""
    if not isinstance(result, amqp.Basic.Ack):
        raise RuntimeError(f"publish not acked: {result!r}")


async def _windowed(
    count: int, window: int, publish: Callable[[], Awaitable[object]]
) -> None:
    """Publish ``count`` times with at most ``window`` awaiting a confirm."""
    if window == 1:
        for _ in range(count):  # what one writes for one-at-a-time
            _check_ack(await publish())
        return
    slots = asyncio.Semaphore(window)
    tasks: list[asyncio.Future[object]] = []
    for _ in range(count):
        await slots.acquire()
        task = asyncio.ensure_future(publish())
        task.add_done_callback(lambda _: slots.release())
        tasks.append(task)
    for result in await asyncio.gather(*tasks):
        _check_ack(result)


async def _publish_aiormq(t: Target, window: int) -> float:
    props = amqp.Basic.Properties(delivery_mode=PERSISTENT)
    async with aiormq.connect(t.url) as conn:
        channel = await conn.channel(publisher_confirms=True)
        start = time.perf_counter()
        await _windowed(
            t.count,
            window,
            lambda: channel.basic_publish(
                BODY, routing_key=t.queue, properties=props, mandatory=True
            ),
        )
        return time.perf_counter() - start


def publish_aiormq(t: Target, window: int) -> float:
    """aiormq: basic_publish resolves to the broker's confirm."""
    return asyncio.run(asyncio.wait_for(_publish_aiormq(t, window), _timeout(t.count)))


async def _publish_aio_pika(t: Target, window: int) -> float:
    conn = await aio_pika.connect(t.url)
    try:
        channel = await conn.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        start = time.perf_counter()
        await _windowed(
            t.count,
            window,
            lambda: exchange.publish(
                aio_pika.Message(BODY, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=t.queue,
                mandatory=True,
            ),
        )
        return time.perf_counter() - start
    finally:
        await conn.close()


def publish_aio_pika(t: Target, window: int) -> float:
    """aio-pika: the high-level wrapper over aiormq, same confirm semantics."""
    return asyncio.run(
        asyncio.wait_for(_publish_aio_pika(t, window), _timeout(t.count))
    )


# --------------------------------------------------------------------------
# Consuming. The clock runs from the first delivery to the last ack plus a
# round trip on the same channel, so the broker has read every ack.


def consume_pika_blocking(t: Target, prefetch: int) -> float:
    """pika blocking adapter, basic_consume callback acking each message."""
    with pika.BlockingConnection(_params(t.url)) as conn:
        channel = conn.channel()
        channel.basic_qos(prefetch_count=prefetch)
        start: float | None = None
        acked = 0

        def on_message(
            ch: Any, method: pika.spec.Basic.Deliver, _p: Any, _b: bytes
        ) -> None:
            nonlocal start, acked
            if start is None:
                start = time.perf_counter()
            ch.basic_ack(method.delivery_tag)
            acked += 1
            if acked == t.count:
                ch.stop_consuming()

        channel.basic_consume(t.queue, on_message)
        conn.call_later(_timeout(t.count), channel.stop_consuming)
        channel.start_consuming()
        channel.queue_declare(t.queue, passive=True)
        end = time.perf_counter()
        if start is None or acked != t.count:
            raise TimeoutError(f"pika blocking consumed {acked}/{t.count}")
        return end - start


class _SelectConsumer(_SelectRun):
    """Ack each delivery from the callback, then sync once at the end."""

    def __init__(self, target: Target, prefetch: int) -> None:
        super().__init__(target)
        self.prefetch = prefetch
        self.acked = 0

    def begin(self, channel: pika.channel.Channel) -> None:
        channel.basic_qos(prefetch_count=self.prefetch, callback=self._on_qos)

    def _on_qos(self, _frame: pika.frame.Method) -> None:
        assert self.channel is not None
        self.channel.basic_consume(self.target.queue, self._on_message)

    def _on_message(
        self,
        channel: pika.channel.Channel,
        method: pika.spec.Basic.Deliver,
        _props: pika.BasicProperties,
        _body: bytes,
    ) -> None:
        if self.start is None:
            self.start = time.perf_counter()
        channel.basic_ack(method.delivery_tag)
        self.acked += 1
        if self.acked == self.target.count:
            channel.queue_declare(
                self.target.queue, passive=True, callback=lambda _: self.finish()
            )


def consume_pika_select(t: Target, prefetch: int) -> float:
    """pika SelectConnection: callbacks on pika's own ioloop."""
    return _SelectConsumer(t, prefetch).run()


async def _consume_aiormq(t: Target, prefetch: int, ack_wait: bool) -> float:
    async with aiormq.connect(t.url) as conn:
        channel = await conn.channel()
        await channel.basic_qos(prefetch_count=prefetch)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        start: float | None = None
        acked = 0

        async def on_message(message: DeliveredMessage) -> None:
            nonlocal start, acked
            if start is None:
                start = time.perf_counter()
            assert message.delivery_tag is not None
            await channel.basic_ack(message.delivery_tag, wait=ack_wait)
            acked += 1
            if acked == t.count:
                done.set_result(None)

        await channel.basic_consume(t.queue, on_message, no_ack=False)
        await asyncio.wait_for(done, _timeout(t.count))
        await channel.queue_declare(t.queue, passive=True)
        end = time.perf_counter()
        assert start is not None
        return end - start


def consume_aiormq(t: Target, prefetch: int, ack_wait: bool) -> float:
    """aiormq: one task per delivery; ``wait=False`` skips the per-ack drain."""
    return asyncio.run(_consume_aiormq(t, prefetch, ack_wait))


async def _consume_aio_pika(t: Target, prefetch: int) -> float:
    conn = await aio_pika.connect(t.url)
    try:
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=prefetch)
        queue = await channel.get_queue(t.queue)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        start: float | None = None
        acked = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal start, acked
            if start is None:
                start = time.perf_counter()
            await message.ack()
            acked += 1
            if acked == t.count:
                done.set_result(None)

        await queue.consume(on_message)
        await asyncio.wait_for(done, _timeout(t.count))
        await channel.get_queue(t.queue)  # passive declare: acks were read
        end = time.perf_counter()
        assert start is not None
        return end - start
    finally:
        await conn.close()


def consume_aio_pika(t: Target, prefetch: int) -> float:
    """aio-pika: IncomingMessage.ack() waits for the socket drain."""
    return asyncio.run(_consume_aio_pika(t, prefetch))


# --------------------------------------------------------------------------
# Scenario table.

CONFIRMED = "confirmed: first publish to last broker confirm"
UNCONFIRMED = "unconfirmed: publishes + 1 round trip, nothing on disk promised"
ACKED = "first delivery to last ack + 1 round trip"


def build_scenarios() -> list[Scenario]:
    """The fixed list, in table order; baselines are pika BlockingConnection."""
    pub_base = "publish.pika-blocking.w1"
    out = [
        Scenario(
            "publish.pika-blocking.unconfirmed", "publish",
            "pika BlockingConnection, no confirms (reference)", "-", "classic",
            UNCONFIRMED, pub_base, publish_pika_unconfirmed,
        ),
        Scenario(
            pub_base, "publish", "pika BlockingConnection + confirm_delivery",
            "window 1", "classic", CONFIRMED, pub_base, publish_pika_blocking,
        ),
        Scenario(
            "publish.pika-select.w1000", "publish", "pika SelectConnection",
            "window 1000", "classic", CONFIRMED, pub_base,
            partial(publish_pika_select, window=1000),
        ),
    ]
    for window in (1, 100, 1000):
        out.append(Scenario(
            f"publish.aiormq.w{window}", "publish", "aiormq", f"window {window}",
            "classic", CONFIRMED, pub_base, partial(publish_aiormq, window=window),
        ))
    out.append(Scenario(
        "publish.aio-pika.w1000", "publish", "aio-pika", "window 1000", "classic",
        CONFIRMED, pub_base, partial(publish_aio_pika, window=1000),
    ))

    consumers: dict[str, tuple[str, Callable[[int], Runner]]] = {
        "pika-blocking": (
            "pika BlockingConnection",
            lambda p: partial(consume_pika_blocking, prefetch=p),
        ),
        "pika-select": (
            "pika SelectConnection",
            lambda p: partial(consume_pika_select, prefetch=p),
        ),
        "aiormq": (
            "aiormq, basic_ack(wait=False)",
            lambda p: partial(consume_aiormq, prefetch=p, ack_wait=False),
        ),
        "aiormq-ackwait": (
            "aiormq, basic_ack(wait=True) (its default)",
            lambda p: partial(consume_aiormq, prefetch=p, ack_wait=True),
        ),
        "aio-pika": (
            "aio-pika, message.ack()",
            lambda p: partial(consume_aio_pika, prefetch=p),
        ),
    }
    # aiormq's default waiting ack is measured at prefetch 1 only, where each
    # ack gates the next delivery; on quorum queues (the product default) the
    # two main contenders are measured, to stay within the time budget.
    plan: dict[tuple[str, int], tuple[str, ...]] = {
        ("classic", 1): (
            "pika-blocking", "pika-select", "aiormq", "aiormq-ackwait", "aio-pika",
        ),
        ("classic", 100): ("pika-blocking", "pika-select", "aiormq", "aio-pika"),
        ("quorum", 1): ("pika-blocking", "aiormq"),
        ("quorum", 100): ("pika-blocking", "aiormq"),
    }
    for (queue_type, prefetch), names in plan.items():
        base = f"consume.{queue_type}.pika-blocking.p{prefetch}"
        for name in names:
            label, make = consumers[name]
            out.append(Scenario(
                f"consume.{queue_type}.{name}.p{prefetch}", "consume", label,
                f"prefetch {prefetch}", queue_type, ACKED, base, make(prefetch),
            ))
    return out


# --------------------------------------------------------------------------
# Running (queue housekeeping is untimed) and reporting.


class Admin:
    """Declares, fills, inspects and deletes the benchmark queues.

    One connection for the whole benchmark keeps connection set-up out of the
    runtime; heartbeats are off because it sits idle while a scenario runs.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = pika.BlockingConnection(_params(url, heartbeat=0))
        self.channel = self.conn.channel()

    def close(self) -> None:
        self.conn.close()

    def broker_version(self) -> str:
        """RabbitMQ's version as it announces itself, for the record."""
        props = self.conn._impl.server_properties  # no public accessor in pika
        return str(props.get("version", "unknown"))

    def declare(self, queue: str, queue_type: str) -> None:
        """Create the durable queue a scenario runs on."""
        self.channel.queue_declare(
            queue, durable=True, arguments={"x-queue-type": queue_type}
        )

    def delete(self, queue: str) -> None:
        """Drop a scenario's queue so runs never see each other's messages."""
        self.channel.queue_delete(queue)

    def depth(self, queue: str) -> int:
        """Ready messages in the queue, from a passive declare."""
        ok = self.channel.queue_declare(queue, passive=True)
        return int(ok.method.message_count)

    def wait_for_depth(self, queue: str, expected: int, timeout: float) -> None:
        """Check the broker holds what a run claims; queues settle async."""
        deadline = time.monotonic() + timeout
        while (depth := self.depth(queue)) != expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{queue}: depth {depth}, expected {expected}")
            time.sleep(0.05)

    def prefill(self, queue: str, count: int) -> None:
        """Fill a queue for a consume run, confirmed, as fast as pika allows."""
        _SelectPublisher(Target(self.url, queue, count), window=count).run()
        self.wait_for_depth(queue, count, _timeout(count))


def run_once(scenario: Scenario, admin: Admin, count: int) -> float:
    """One timed run on a fresh queue; returns messages per second."""
    queue = f"{QUEUE_PREFIX}{scenario.key}.{uuid.uuid4().hex[:8]}"
    admin.declare(queue, scenario.queue_type)
    try:
        if scenario.test == "consume":
            admin.prefill(queue, count)
        seconds = scenario.runner(Target(admin.url, queue, count))
        expected = count if scenario.test == "publish" else 0
        admin.wait_for_depth(queue, expected, timeout=30.0)
    finally:
        admin.delete(queue)
    return count / seconds


@dataclass
class Summary:
    """Median and spread of one scenario, with its ratio to the baseline."""

    scenario: Scenario
    rates: list[float]
    ratio: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def to_json(self) -> dict[str, object]:
        s = self.scenario
        return {
            "key": s.key, "test": s.test, "client": s.client,
            "setting": s.setting, "queue_type": s.queue_type,
            "meaning": s.meaning, "baseline": s.baseline,
            "rates": [round(r, 1) for r in self.rates],
            "median": round(self.median, 1),
            "min": round(min(self.rates), 1), "max": round(max(self.rates), 1),
            "ratio_to_baseline": None if self.ratio is None else round(self.ratio, 3),
        }


def summarise(
    scenarios: Sequence[Scenario], rates: dict[str, list[float]]
) -> list[Summary]:
    """Medians, and each median divided by its baseline's median."""
    out = [Summary(s, rates[s.key]) for s in scenarios]
    medians = {x.scenario.key: x.median for x in out}
    for x in out:
        base = medians.get(x.scenario.baseline)
        x.ratio = None if base is None else x.median / base
    return out


def markdown_table(summaries: Sequence[Summary]) -> str:
    """The table BENCHMARKS.md carries, in scenario order."""
    lines = [
        "| Test | Client / mode | In flight | Queue | Median msg/s | Min-max msg/s "
        "| vs baseline |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for x in summaries:
        s = x.scenario
        ratio = "n/a" if x.ratio is None else f"{x.ratio:.2f}x"
        if s.key == s.baseline:
            ratio = "1.00x (baseline)"
        if s.test == "consume":
            test = "consume + ack"
        else:
            test = "publish, unconfirmed" if s.meaning == UNCONFIRMED else (
                "publish, confirmed")
        lines.append(
            f"| {test} | {s.client} | {s.setting} | {s.queue_type} "
            f"| {x.median:,.0f} | {min(x.rates):,.0f}-{max(x.rates):,.0f} | {ratio} |"
        )
    return "\n".join(lines)


def _cpus() -> int:
    """CPUs this process may use, which is what clients and broker share."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000,
                        help="messages per run (default 20000)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds; the median is reported (default 3)")
    parser.add_argument("--json", type=Path, metavar="PATH",
                        help="also write raw rates and metadata here")
    parser.add_argument("--url", default=DEFAULT_URL, help="broker URL")
    parser.add_argument("--only", metavar="TEXT",
                        help="run only scenarios whose key contains TEXT")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = [s for s in build_scenarios() if not args.only or args.only in s.key]
    if not scenarios:
        print(f"no scenario matches {args.only!r}", file=sys.stderr)
        return 2
    started = datetime.now(timezone.utc)
    rates: dict[str, list[float]] = {s.key: [] for s in scenarios}
    orders: list[list[str]] = []
    rng = random.Random(SHUFFLE_SEED)
    admin = Admin(args.url)
    clock = time.monotonic()
    try:
        for round_no in range(1, args.repeat + 1):
            order = list(scenarios)
            rng.shuffle(order)
            orders.append([s.key for s in order])
            for s in order:
                rate = run_once(s, admin, args.count)
                rates[s.key].append(rate)
                print(f"[round {round_no}/{args.repeat}] {s.key}: {rate:,.0f} msg/s",
                      file=sys.stderr, flush=True)
        elapsed = time.monotonic() - clock
        broker = admin.broker_version()
    finally:
        admin.close()

    summaries = summarise(scenarios, rates)
    print(markdown_table(summaries))
    print(f"{args.count} messages x {args.repeat} rounds, {elapsed:.0f} s total",
          file=sys.stderr)
    if args.json:
        meta: dict[str, Any] = {
            "command": " ".join([".venv/bin/python", "benchmarks/clients.py",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "started_utc": started.isoformat(timespec="seconds"),
            "elapsed_s": round(elapsed, 1),
            "count": args.count, "repeat": args.repeat,
            "body_bytes": len(BODY), "shuffle_seed": SHUFFLE_SEED,
            "python": platform.python_version(), "cpus": _cpus(),
            "broker": f"RabbitMQ {broker}",
            "clients": {n: version(n) for n in ("pika", "aiormq", "aio-pika")},
            "round_orders": orders,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(
            {"meta": meta, "results": [x.to_json() for x in summaries]}, indent=2
        ) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
