"""RabbitMQ bus over aio-pika: a durable topic exchange, a durable queue per consuming
service, persistent messages, publisher confirms, prefetch, ack after the handler's
work is committed, a retry queue with backoff, a dead-letter exchange and queue with
the reason in a header, and a robust connection that survives broker restarts."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import Any

import aio_pika
import aio_pika.abc
from aio_pika.exceptions import AMQPError

from zc_common.bus.base import (
    ATTEMPT_HEADER,
    REASON_HEADER,
    SHUTDOWN_GRACE,
    Bus,
    DeadLetter,
    Subscription,
    count_published,
    count_undecodable,
    run_handler,
)
from zc_common.bus.topology import QUEUES
from zc_common.messages import Message, UndecodableMessage, decode

log = logging.getLogger("zc.bus.rabbit")

_Incoming = aio_pika.abc.AbstractIncomingMessage


class RabbitBus(Bus):
    def __init__(
        self,
        url: str,
        exchange: str = "zerocloud",
        *,
        prefetch: int = 500,
        publish_timeout: float = 60.0,
        connect_timeout: float = 60.0,
        declare_topology: bool = True,
        shutdown_grace: float = SHUTDOWN_GRACE,
    ) -> None:
        super().__init__()
        self.declare_topology = declare_topology
        self.shutdown_grace = shutdown_grace
        self.url = url
        self.exchange_name = exchange
        self.dead_exchange_name = f"{exchange}.dead"
        self.prefetch = prefetch
        self.publish_timeout = publish_timeout
        self.connect_timeout = connect_timeout
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._dead_exchange: aio_pika.abc.AbstractExchange | None = None
        self._consumers: list[_Consumer] = []

    def queue_name(self, queue: str) -> str:
        return f"{self.exchange_name}.{queue}"

    async def start(self) -> None:
        if self._connection is None:
            self._connection = await self._connect()
            self._channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await self._channel.declare_exchange(
                self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            self._dead_exchange = await self._channel.declare_exchange(
                self.dead_exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
            )
            if self.declare_topology:
                for queue in QUEUES:
                    await declare_queue(self._channel, self, queue.name, queue.routing_keys)
        started = {id(consumer.sub) for consumer in self._consumers}
        for sub in self.subscriptions:
            if id(sub) not in started:
                consumer = _Consumer(self, sub)
                await consumer.start(self._connection)
                self._consumers.append(consumer)

    async def _connect(self) -> aio_pika.abc.AbstractRobustConnection:
        deadline = asyncio.get_running_loop().time() + self.connect_timeout
        delay = 0.5
        while True:
            try:
                return await aio_pika.connect_robust(self.url, timeout=10)
            except (AMQPError, OSError, TimeoutError) as error:
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise ConnectionError(f"RabbitMQ at {_safe(self.url)} unreachable: {error}") from error
                log.warning("RabbitMQ not reachable (%s); retrying in %.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop_consuming(self) -> None:
        """Every consumer at once: cancel it at the broker, let its batch in hand finish
        (or abandon it after the grace period), close its channel so the messages it had
        prefetched go back to the queue for another replica now, not at disconnect."""
        consumers, self._consumers = self._consumers, []
        await asyncio.gather(*(consumer.stop(self.shutdown_grace) for consumer in consumers))

    async def close(self) -> None:
        await self.stop_consuming()
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                await asyncio.wait_for(connection.close(), timeout=10)
            except (AMQPError, OSError, TimeoutError) as error:
                log.warning("closing the RabbitMQ connection: %s", error)

    async def ping(self) -> bool:
        connection = self._connection
        return connection is not None and not connection.is_closed and connection.connected.is_set()

    async def publish(self, *messages: Message) -> None:
        pending = [(m.type, _to_amqp(m.encode(), m.type, str(m.message_id))) for m in messages]
        await self._publish_confirmed(pending, exchange="main")
        count_published(messages)

    async def publish_raw(self, body: bytes, type_name: str) -> None:
        """Publish a body as-is (tests use it to put bad input on the wire)."""
        await self._publish_confirmed([(type_name, _to_amqp(body, type_name, None))], exchange="main")

    async def _publish_confirmed(
        self, pending: list[tuple[str, aio_pika.Message]], *, exchange: str
    ) -> None:
        """Publish each (routing key, message) until confirmed; retry what failed while the
        connection recovers, up to ``publish_timeout``. A retry after a lost confirm can
        duplicate a message: consumers are idempotent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.publish_timeout
        delay = 0.2
        while pending:
            target = self._target(exchange)
            results = await asyncio.gather(
                *(target.publish(message, routing_key=key) for key, message in pending),
                return_exceptions=True,
            )
            failed = [item for item, result in zip(pending, results) if isinstance(result, BaseException)]
            if not failed:
                return
            errors = {type(r).__name__ for r in results if isinstance(r, BaseException)}
            if loop.time() + delay > deadline:
                raise ConnectionError(f"{len(failed)} messages not confirmed by RabbitMQ: {errors}")
            log.warning("%d messages not confirmed (%s); retrying in %.1fs", len(failed), errors, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
            pending = failed

    def _target(self, exchange: str) -> aio_pika.abc.AbstractExchange:
        if self._channel is None or self._exchange is None or self._dead_exchange is None:
            raise RuntimeError("bus not started")
        if exchange == "main":
            return self._exchange
        if exchange == "dead":
            return self._dead_exchange
        return self._channel.default_exchange

    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        if self._connection is None:
            raise RuntimeError("bus not started")
        found: list[DeadLetter] = []
        async with self._connection.channel() as channel:
            dead_queue = await channel.declare_queue(f"{self.queue_name(queue)}.dead", passive=True)
            held: list[_Incoming] = []
            while len(found) < limit:
                message = await dead_queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                held.append(message)
                headers = dict(message.headers or {})
                found.append(
                    DeadLetter(
                        queue=queue,
                        reason=str(headers.get(REASON_HEADER, "")),
                        body=message.body,
                        attempts=int(str(headers.get(ATTEMPT_HEADER, 1))),
                        headers=headers,
                        dead_at=message.timestamp,
                    )
                )
            for message in held:
                await message.nack(requeue=True)
        return found


def _to_amqp(body: bytes, type_name: str, message_id: str | None, **headers: Any) -> aio_pika.Message:
    return aio_pika.Message(
        body=body,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        type=type_name,
        message_id=message_id,
        timestamp=datetime.now(timezone.utc),
        headers=headers or None,
    )


def _safe(url: str) -> str:
    """The URL without its password, for log lines."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


async def declare_queue(
    channel: aio_pika.abc.AbstractChannel, bus: RabbitBus, queue: str, routing_keys: list[str]
) -> aio_pika.abc.AbstractQueue:
    """A service's durable queue bound to its message types, with its retry queue (which
    dead-letters back into it after the backoff) and its dead-letter queue."""
    name = bus.queue_name(queue)
    exchange = await channel.declare_exchange(bus.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    dead_exchange = await channel.declare_exchange(bus.dead_exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
    declared = await channel.declare_queue(
        name,
        durable=True,
        arguments={"x-dead-letter-exchange": bus.dead_exchange_name, "x-dead-letter-routing-key": queue},
    )
    for key in routing_keys:
        await declared.bind(exchange, routing_key=key)
    await channel.declare_queue(
        f"{name}.retry",
        durable=True,
        arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": name},
    )
    dead_queue = await channel.declare_queue(f"{name}.dead", durable=True)
    await dead_queue.bind(dead_exchange, routing_key=queue)
    return declared


class _Consumer:
    """One subscription: its queues, a consuming channel, and a worker handling up to
    ``concurrency`` batches at once."""

    def __init__(self, bus: RabbitBus, sub: Subscription) -> None:
        self.bus = bus
        self.sub = sub
        self.name = bus.queue_name(sub.queue)
        self.buffer: asyncio.Queue[_Incoming] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self.queue: aio_pika.abc.AbstractQueue | None = None
        self.consumer_tag: str | None = None
        self.stopping = False

    async def start(self, connection: aio_pika.abc.AbstractRobustConnection) -> None:
        self.channel = channel = await connection.channel()
        # Enough for every batch in hand and the next one filling up.
        await channel.set_qos(
            prefetch_count=max(self.bus.prefetch, self.sub.batch_size * (self.sub.concurrency + 1))
        )
        self.queue = await declare_queue(channel, self.bus, self.sub.queue, self.sub.routing_keys)
        self.worker = asyncio.create_task(self._work(), name=f"bus:{self.name}")
        self.consumer_tag = await self.queue.consume(self.buffer.put, no_ack=False)

    async def stop(self, grace: float) -> None:
        """Stop taking messages and finish the batches in hand within ``grace`` seconds, else
        abandon them. Whatever is not acknowledged (the abandoned batch, the prefetched rest)
        goes back to the queue when the channel closes, for this or another replica."""
        self.stopping = True
        if self.queue is not None and self.consumer_tag is not None:
            try:
                # Bounded: while the broker is unreachable a robust channel waits for it forever.
                await asyncio.wait_for(self.queue.cancel(self.consumer_tag), timeout=5)
            except (AMQPError, RuntimeError, TimeoutError) as error:
                log.warning("cancel consumer %s: %s", self.name, error)
        if self.worker is not None:
            self.buffer.put_nowait(_STOP)
            done, _ = await asyncio.wait([self.worker], timeout=grace)
            if not done:
                log.warning(
                    "%s: the batch in hand did not finish within %.0fs; abandoned for redelivery",
                    self.name, grace,
                )
                self.worker.cancel()
                await asyncio.gather(self.worker, return_exceptions=True)
        if self.channel is not None and not self.channel.is_closed:
            try:
                await asyncio.wait_for(self.channel.close(), timeout=5)
            except (AMQPError, RuntimeError, TimeoutError) as error:
                log.warning("close channel of %s: %s", self.name, error)

    async def _work(self) -> None:
        # Stopping ends the loop after the batches in hand: what is still buffered stays
        # unacknowledged and goes back to the queue.
        slots = asyncio.Semaphore(self.sub.concurrency)
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not self.stopping:
                await slots.acquire()
                batch = await self._take_batch()
                if batch is None:
                    slots.release()
                    break
                task = asyncio.create_task(self._settle(batch), name=f"bus:{self.name}:batch")
                in_flight.add(task)
                task.add_done_callback(lambda done: _finished(done, in_flight, slots))
            await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)

    async def _take_batch(self) -> list[_Incoming] | None:
        """Up to ``batch_size`` buffered messages, waiting for more as the subscription says
        (``Subscription.wait_for_next``); None when stopping."""
        first = await self.buffer.get()
        if first is _STOP or self.stopping:
            return None
        batch = [first]
        loop = asyncio.get_running_loop()
        started = latest = loop.time()
        while len(batch) < self.sub.batch_size and not self.stopping:
            try:
                item = self.buffer.get_nowait()
            except asyncio.QueueEmpty:
                now = loop.time()
                remaining = self.sub.wait_for_next(now - started, now - latest)
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.buffer.get(), remaining)
                except TimeoutError:
                    break
            if item is _STOP:
                self.buffer.put_nowait(item)
                break
            batch.append(item)
            latest = loop.time()
        return batch

    async def _settle(self, batch: list[_Incoming]) -> None:
        try:
            await self._handle(batch)
        except (AMQPError, ConnectionError, RuntimeError) as error:
            # The channel died under us: unacked messages return to the queue and are
            # redelivered after reconnect; handlers are idempotent.
            log.warning("batch on %s not settled (%s); the broker will redeliver", self.name, error)

    async def _handle(self, batch: list[_Incoming]) -> None:
        decoded: list[tuple[_Incoming, Message]] = []
        settle: list[tuple[_Incoming, str, str | None]] = []  # (message, action, reason)
        for incoming in batch:
            try:
                decoded.append((incoming, decode(incoming.body, incoming.type)))
            except UndecodableMessage as error:
                count_undecodable(self.sub.queue, incoming.type)
                settle.append((incoming, "dead", str(error)))
        if decoded:
            attempts = [_attempt(incoming) for incoming, _ in decoded]
            outcome = await run_handler(self.sub, [m for _, m in decoded], attempts)
            settle.extend((decoded[i][0], "dead", reason) for i, reason in outcome.dead)
            settle.extend((decoded[i][0], "retry", reason) for i, reason in outcome.retry)
        for incoming, action, reason in settle:
            attempt = _attempt(incoming)
            if action == "dead":
                log.error("dead-lettered on %s: %s", self.sub.queue, reason)
                dead = _to_amqp(
                    incoming.body, incoming.type or "", incoming.message_id,
                    **{REASON_HEADER: reason, ATTEMPT_HEADER: attempt, "x-zc-queue": self.sub.queue},
                )
                await self.bus._publish_confirmed([(self.sub.queue, dead)], exchange="dead")
            else:
                retry = _to_amqp(
                    incoming.body, incoming.type or "", incoming.message_id,
                    **{ATTEMPT_HEADER: attempt + 1, "x-zc-last-error": reason},
                )
                retry.expiration = self.sub.backoff(attempt)
                await self.bus._publish_confirmed([(f"{self.name}.retry", retry)], exchange="default")
        # Every message of the batch is settled now (done, retried or dead). One batch at a
        # time: ack them all at once (this worker is the channel's only consumer and takes
        # batches in order, so nothing older is still unacked). Several at once: an older
        # batch may still be in hand, so each message is acked alone.
        if self.sub.concurrency == 1:
            await batch[-1].ack(multiple=True)
        else:
            for incoming in batch:
                await incoming.ack()


_STOP: Any = object()


def _finished(task: asyncio.Task[None], in_flight: set[asyncio.Task[None]], slots: asyncio.Semaphore) -> None:
    in_flight.discard(task)
    slots.release()
    if not task.cancelled() and task.exception() is not None:
        # Unacknowledged, its messages go back to the queue when the channel closes.
        log.error("a batch was not settled", exc_info=task.exception())


def _attempt(incoming: _Incoming) -> int:
    value = (incoming.headers or {}).get(ATTEMPT_HEADER, 1)
    try:
        return max(1, int(str(value)))
    except ValueError:
        return 1
