"""In-process bus: asyncio queues with the RabbitMQ bus's semantics, for the embedded
default (all services in one process) and for tests."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from zc_common.bus.base import (
    SHUTDOWN_GRACE,
    Bus,
    DeadLetter,
    Subscription,
    count_published,
    count_undecodable,
    run_handler,
)
from zc_common.messages import Message, UndecodableMessage, decode

log = logging.getLogger("zc.bus.memory")


@dataclass
class _Envelope:
    body: bytes
    type_name: str
    attempt: int = 1


class InProcessBus(Bus):
    def __init__(self, *, shutdown_grace: float = SHUTDOWN_GRACE) -> None:
        super().__init__()
        self.shutdown_grace = shutdown_grace
        self._queues: dict[str, asyncio.Queue[_Envelope]] = {}
        self._dead: dict[str, list[DeadLetter]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._started: set[int] = set()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        if not self._workers:
            self._stopping.clear()
        for sub in self.subscriptions:
            self._queues.setdefault(sub.queue, asyncio.Queue())
            self._dead.setdefault(sub.queue, [])
        for sub in self.subscriptions:
            if id(sub) not in self._started:
                self._started.add(id(sub))
                self._workers.append(asyncio.create_task(self._consume(sub), name=f"bus:{sub.queue}"))

    async def stop_consuming(self) -> None:
        """Workers finish the batch in hand (up to the grace period, then are cancelled);
        what is still queued, and pending retries, stay in memory and end with the process."""
        self._stopping.set()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        workers, self._workers = self._workers, []
        if workers:
            _, late = await asyncio.wait(workers, timeout=self.shutdown_grace)
            for worker in late:
                log.warning(
                    "%s: the batch in hand did not finish in %.0fs; cancelled", worker.get_name(), self.shutdown_grace
                )
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        self._started.clear()

    async def close(self) -> None:
        await self.stop_consuming()

    async def publish(self, *messages: Message) -> None:
        for message in messages:
            self.publish_raw(message.encode(), message.type)
        count_published(messages)
        await asyncio.sleep(0)

    def publish_raw(self, body: bytes, type_name: str) -> None:
        """Route a body as it would arrive from the wire (tests use it for bad input)."""
        # Like a queue bound to the exchange: one copy per queue, shared by its consumers.
        queues = {sub.queue for sub in self.subscriptions if type_name in sub.routing_keys}
        for queue in queues:
            self._queues.setdefault(queue, asyncio.Queue()).put_nowait(_Envelope(body, type_name))

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        return list(self._dead.get(queue, []))[:limit]

    async def _consume(self, sub: Subscription) -> None:
        queue = self._queues[sub.queue]
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(sub.concurrency)
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not self._stopping.is_set():
                # A batch is taken only when there is a slot for it: what waits stays queued.
                await slots.acquire()
                batch = await self._take_batch(sub, queue, loop)
                if batch is None:
                    slots.release()
                    break
                task = asyncio.create_task(self._handle(sub, batch), name=f"bus:{sub.queue}:batch")
                in_flight.add(task)
                task.add_done_callback(lambda done: _finished(done, in_flight, slots))
            # Stopping: the batches in hand finish (stop_consuming bounds how long).
            await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _take_batch(
        self, sub: Subscription, queue: asyncio.Queue[_Envelope], loop: asyncio.AbstractEventLoop
    ) -> list[_Envelope] | None:
        """Up to ``batch_size`` envelopes, waiting for more as the subscription says
        (``Subscription.wait_for_next``); None when the bus stops before a first one arrives."""
        first = await self._take(queue, None)
        if first is None:
            return None
        batch = [first]
        started = latest = loop.time()
        while len(batch) < sub.batch_size and not self._stopping.is_set():
            try:
                batch.append(queue.get_nowait())
            except asyncio.QueueEmpty:
                now = loop.time()
                remaining = sub.wait_for_next(now - started, now - latest)
                if remaining <= 0:
                    break
                item = await self._take(queue, remaining)
                if item is None:
                    break
                batch.append(item)
            latest = loop.time()
        return batch

    async def _take(self, queue: asyncio.Queue[_Envelope], timeout: float | None) -> _Envelope | None:
        """The next envelope; None when ``timeout`` passed or the bus is stopping first
        (an envelope is never lost: one not taken stays queued)."""
        if self._stopping.is_set():
            return None
        try:
            return queue.get_nowait()
        except asyncio.QueueEmpty:
            pass
        getting = asyncio.ensure_future(queue.get())
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({getting, stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not getting.done():
                getting.cancel()
        if getting.done() and not getting.cancelled():
            return getting.result()
        return None

    async def _handle(self, sub: Subscription, batch: list[_Envelope]) -> None:
        decoded: list[tuple[_Envelope, Message]] = []
        for envelope in batch:
            try:
                decoded.append((envelope, decode(envelope.body, envelope.type_name)))
            except UndecodableMessage as error:
                count_undecodable(sub.queue, envelope.type_name)
                self._dead_letter(sub, envelope, str(error))
        if not decoded:
            return
        outcome = await run_handler(sub, [m for _, m in decoded], [e.attempt for e, _ in decoded])
        for index, reason in outcome.dead:
            self._dead_letter(sub, decoded[index][0], reason)
        for index, _reason in outcome.retry:
            envelope = decoded[index][0]
            self._retry_later(sub, _Envelope(envelope.body, envelope.type_name, envelope.attempt + 1))

    def _retry_later(self, sub: Subscription, envelope: _Envelope) -> None:
        def requeue() -> None:
            self._timers.discard(handle)
            self._queues[sub.queue].put_nowait(envelope)

        handle = asyncio.get_running_loop().call_later(sub.backoff(envelope.attempt - 1), requeue)
        self._timers.add(handle)

    def _dead_letter(self, sub: Subscription, envelope: _Envelope, reason: str) -> None:
        log.error("dead-lettered on %s: %s", sub.queue, reason)
        self._dead[sub.queue].append(
            DeadLetter(
                queue=sub.queue,
                reason=reason,
                body=envelope.body,
                attempts=envelope.attempt,
                dead_at=datetime.now(timezone.utc),
            )
        )


def _finished(task: asyncio.Task[None], in_flight: set[asyncio.Task[None]], slots: asyncio.Semaphore) -> None:
    in_flight.discard(task)
    slots.release()
    if not task.cancelled() and task.exception() is not None:
        log.error("a batch was not settled", exc_info=task.exception())
