"""Sending a task's result to the caller that asked for it, where the task's outcome is settled.

Only messages with ``fairq-reply-to`` get one, and only for a final outcome: the value on
success, the error on a dead letter (a retry sends nothing yet). The result goes out before the
ack, so a crash in between runs the task again and the caller takes the first result, never
none. ``fairq-reply-to: store`` sends it to the result store of the task's app
(``App(results=URL)``) instead of the worker's broker. A caller that is gone (its RabbitMQ reply
queue went with its connection) loses the result; the worker says so once per caller.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from .. import message as wire
from ..broker import Backend, Broker, Delivery
from ..errors import BrokerError
from ..results import wire as results_wire
from ..results.wire import STORE

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("fairq.worker")

#: TTL when a message asks for a result without saying how long to keep it.
DEFAULT_TTL = 3600.0
#: Departed callers remembered so that each is logged once.
GONE_REMEMBERED = 1000


class Replies:
    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._stores: dict[str, Broker] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()

    async def send(self, delivery: Delivery, value: Any, dead_headers: dict[str, Any] | None) -> None:
        """Publish the result of ``delivery``: ``value``, or the failure in ``dead_headers``."""
        headers = delivery.envelope.headers
        address = str(headers.get(wire.H_REPLY_TO, ""))
        message_id = delivery.envelope.message_id or ""
        ttl = headers.get(wire.H_RESULT_TTL)
        ttl = float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else DEFAULT_TTL
        body = results_wire.encode_value(value) if dead_headers is None else results_wire.encode_dead(dead_headers)
        if address == STORE:
            await self._to_store(delivery, message_id, body, ttl)
            return
        if not await self._worker.broker.publish_result(address, message_id, body, ttl):
            self._dropped(address, message_id)

    async def _to_store(self, delivery: Delivery, message_id: str, body: bytes, ttl: float) -> None:
        task = self._worker.tasks.get(str(delivery.envelope.headers.get(wire.H_TASK, "")))
        backend: Backend | None = getattr(task.app, "result_store", None) if task is not None else None
        if backend is None:
            log.warning("%s: the result of %s asks for a result store, and the app of its task has none "
                        "(App(results=URL)): dropped", self._worker.name, message_id)
            return
        try:
            store = self._stores.get(backend.url)
            if store is None:
                store = backend.broker()
                await store.connect()
                self._stores[backend.url] = store
            await store.publish_result(STORE, message_id, body, ttl)
        except BrokerError as exc:  # the store is not the task's broker: its failure must not hold the ack
            self._stores.pop(backend.url, None)
            log.warning("%s: could not keep the result of %s in %s: %s", self._worker.name, message_id,
                        backend.display_url, exc)

    def _dropped(self, address: str, message_id: str) -> None:
        if address in self._gone:
            return
        self._gone[address] = None
        while len(self._gone) > GONE_REMEMBERED:
            self._gone.popitem(last=False)
        log.warning("%s: the caller waiting on %s is gone (its inbox %s no longer exists): its result is "
                    "dropped, and so will be any further result for it", self._worker.name, message_id, address)

    async def close(self) -> None:
        for store in self._stores.values():
            try:
                await store.close()
            except BrokerError:
                pass
        self._stores.clear()
