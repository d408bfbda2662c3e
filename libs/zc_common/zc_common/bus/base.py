"""The bus contract every service codes against, whichever transport it got.

Semantics, the same for both implementations:

- ``publish`` returns only once the broker has taken every message (publisher
  confirms); it raises if that cannot happen, so a caller never deletes its source
  (an SQS message, an outbox row) for a message that was not accepted.
- A subscription receives batches of up to ``batch_size`` decoded messages. When the
  handler returns, the whole batch is acknowledged: handlers return only after their
  work is committed.
- A subscription runs up to ``concurrency`` batches at once (default 1: one after the
  other). Each batch is acknowledged, retried or dead-lettered on its own when its
  handler returns, whatever the others still do; above 1 batches may finish out of order,
  and a handler must be safe to run alongside itself.
- A body that cannot be decoded or validated is dead-lettered at once with the reason.
- A handler raising ``PermanentFailure`` dead-letters; ``DependencyDown`` (the database
  or another service cannot be reached) retries the whole batch with backoff for as long
  as the outage lasts, never dead-lettering for it; any other exception retries.
  A failing batch is first split and each message handled alone, so one bad message
  never holds back the others. A single message is retried with backoff up to
  ``max_attempts`` and then dead-lettered with the last error as the reason.
- Delivery is at least once: handlers must be idempotent (``message_id``, versions).
- Stopping (``stop_consuming``, and ``close`` which starts with it) takes no new
  message and lets the batch in hand finish for up to ``SHUTDOWN_GRACE`` seconds; past
  that it is abandoned unacknowledged and RabbitMQ delivers it again (the in-process
  bus keeps nothing beyond its process anyway). Publishing keeps working until ``close``.
- Every settled message, publish and dead letter is counted (zc_common.metrics), here
  for what the handlers decide and by each transport for what they see alone.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from zc_common import metrics
from zc_common.logging import log_context
from zc_common.messages import Message

log = logging.getLogger("zc.bus")

M = TypeVar("M", bound=Message)

Handler = Callable[[Sequence[M]], Awaitable[object]]
"""What consumes a queue: a batch of its messages, returning once their work is committed
(what it returns, a report for tests say, is ignored)."""

ATTEMPT_HEADER = "x-zc-attempt"
REASON_HEADER = "x-zc-dead-reason"

# How long a stopping service gives the work in hand (a bus batch, a poll of the event
# queue, a batch of timers) before abandoning it for another instance to redo. The same
# as uvicorn's timeout_graceful_shutdown for HTTP requests (zc_common.service.serve).
SHUTDOWN_GRACE = 20.0

# Batches one subscription may have in flight: each holds up to batch_size messages in
# memory (and RabbitMQ prefetches that many more per batch).
MAX_CONCURRENCY = 32


class PermanentFailure(Exception):
    """Raised by a handler for a message that can never succeed: dead-letter it now."""


class DependencyDown(Exception):
    """Raised by a handler when what the work needs (its database, the api) cannot be
    reached now: nothing is wrong with the messages, so the batch is retried whole, with
    backoff (capped at a minute), until the outage ends; it never counts towards
    ``max_attempts``, so an outage longer than the retry budget loses nothing."""


@dataclass(frozen=True)
class Queue(Generic[M]):
    """A consuming service's durable queue and the message types bound to it.

    ``M`` is the union of those types: ``Bus.subscribe`` takes only a handler of
    ``Sequence[M]``, so mypy checks every handler against what its queue carries. The
    queues of the product are declared once, in ``zc_common.bus.topology``."""

    name: str
    message_types: tuple[type[M], ...]

    def __post_init__(self) -> None:
        if not self.message_types:
            raise ValueError(f"queue {self.name!r} needs at least one message type")
        if len(set(self.message_types)) != len(self.message_types):
            raise ValueError(f"queue {self.name!r} names a message type twice")

    @property
    def routing_keys(self) -> list[str]:
        return [model.type_name() for model in self.message_types]


@dataclass(frozen=True)
class Route(Generic[M]):
    """The handler of one message type on a queue that carries several."""

    message_type: type[M]
    handler: Handler[M]


class Routes:
    """Handlers by message type, for a queue that carries several types: each batch is
    split by type and each part handed to its own handler, in the order the routes are
    given (a failure in one part fails the batch, which the bus then splits as usual).
    ``Bus.subscribe`` refuses routes that do not cover exactly the queue's types."""

    def __init__(self, *routes: Route[Any]) -> None:
        types = [route.message_type for route in routes]
        if not types:
            raise ValueError("Routes needs at least one route")
        if len(set(types)) != len(types):
            raise ValueError("Routes names a message type twice")
        self.routes = routes

    @property
    def message_types(self) -> frozenset[type[Message]]:
        return frozenset(route.message_type for route in self.routes)

    async def __call__(self, messages: Sequence[Message]) -> None:
        for route in self.routes:
            part = [message for message in messages if type(message) is route.message_type]
            if part:
                await route.handler(part)


@dataclass(frozen=True)
class Subscription:
    queue: str
    message_types: tuple[type[Message], ...]
    handler: Handler[Any]
    batch_size: int = 1
    max_wait: float = 0.02
    max_attempts: int = 5
    retry_delay: float = 0.5
    concurrency: int = 1
    quiet: float | None = None

    def wait_for_next(self, since_first: float, since_last: float) -> float:
        """How long a batch still waits for its next message, ``since_first`` seconds after
        its first and ``since_last`` after its latest; 0 or less: the batch closes."""
        left = self.max_wait - since_first
        return left if self.quiet is None else min(left, self.quiet - since_last)

    def backoff(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1``: exponential, capped at a minute."""
        return float(min(60.0, self.retry_delay * 2 ** max(0, attempt - 1)))

    @property
    def routing_keys(self) -> list[str]:
        return [model.type_name() for model in self.message_types]


@dataclass(frozen=True)
class DeadLetter:
    """A message that will not be retried, and why."""

    queue: str
    reason: str
    body: bytes
    attempts: int
    headers: dict[str, Any] = field(default_factory=dict)
    dead_at: datetime | None = None


@dataclass
class Outcome:
    """How a batch went: which entries to ack, retry or dead-letter."""

    done: list[int] = field(default_factory=list)
    retry: list[tuple[int, str]] = field(default_factory=list)
    dead: list[tuple[int, str]] = field(default_factory=list)
    # Why each dead entry is dead, for the metrics: "permanent" or "exhausted".
    dead_kinds: dict[int, str] = field(default_factory=dict)


async def run_handler(
    sub: Subscription, messages: Sequence[Message], attempts: Sequence[int]
) -> Outcome:
    """Run the handler on a batch; on failure split it and run each message alone.

    Returns the indices to ack, to retry (with the error) and to dead-letter (with the
    reason). Shared by both bus implementations so their semantics (and their metrics)
    cannot drift.
    """
    outcome = await _run_handler(sub, messages, attempts)
    _count_outcome(sub.queue, messages, outcome)
    return outcome


async def _run_handler(
    sub: Subscription, messages: Sequence[Message], attempts: Sequence[int]
) -> Outcome:
    outcome = Outcome()
    if not messages:
        return outcome
    try:
        with log_context(message_id=str(messages[0].message_id) if len(messages) == 1 else None):
            await sub.handler(list(messages))
        outcome.done.extend(range(len(messages)))
        return outcome
    except asyncio.CancelledError:
        raise
    except DependencyDown as error:
        # Splitting would only ask the missing dependency once per message.
        log.warning("%d on %s wait: %s", len(messages), sub.queue, error)
        outcome.retry.extend((index, f"DependencyDown: {error}") for index in range(len(messages)))
        return outcome
    except Exception as error:  # noqa: BLE001 - the bus decides what a failure means
        if len(messages) > 1:
            log.warning(
                "batch of %d on %s failed (%s: %s); handling each alone",
                len(messages), sub.queue, type(error).__name__, error,
            )
        else:
            return _single_failure(sub, messages[0], attempts[0], error)
    for index, message in enumerate(messages):
        try:
            with log_context(message_id=str(message.message_id)):
                await sub.handler([message])
            outcome.done.append(index)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001
            single = _single_failure(sub, message, attempts[index], error)
            outcome.retry.extend((index, reason) for _, reason in single.retry)
            outcome.dead.extend((index, reason) for _, reason in single.dead)
            outcome.dead_kinds.update((index, kind) for kind in single.dead_kinds.values())
    return outcome


def _count_outcome(queue: str, messages: Sequence[Message], outcome: Outcome) -> None:
    settled: Counter[tuple[str, str]] = Counter()
    settled.update((messages[index].type, "ok") for index in outcome.done)
    settled.update((messages[index].type, "retried") for index, _ in outcome.retry)
    settled.update((messages[index].type, "dead_lettered") for index, _ in outcome.dead)
    for (type_name, result), count in settled.items():
        metrics.MESSAGES_CONSUMED.labels(queue, type_name, result).inc(count)
    for index, _ in outcome.dead:
        metrics.DEAD_LETTERS.labels(queue, outcome.dead_kinds.get(index, "permanent")).inc()


def count_undecodable(queue: str, type_name: str | None) -> None:
    """Count a body the transport dead-lettered before any handler saw it. Only known type
    names become a label: what arrives on the wire must not grow the metric without bound."""
    known = type_name if type_name in Message.registry else "unknown"
    metrics.MESSAGES_CONSUMED.labels(queue, known, "dead_lettered").inc()
    metrics.DEAD_LETTERS.labels(queue, "undecodable").inc()


def count_published(messages: Sequence[Message]) -> None:
    """Count messages the transport has seen accepted (confirmed by the broker)."""
    for type_name, count in Counter(message.type for message in messages).items():
        metrics.MESSAGES_PUBLISHED.labels(type_name).inc(count)


def _single_failure(sub: Subscription, message: Message, attempt: int, error: Exception) -> Outcome:
    reason = f"{type(error).__name__}: {error}"
    outcome = Outcome()
    if isinstance(error, PermanentFailure):
        log.error("%s %s dead-lettered: %s", sub.queue, message.message_id, reason)
        outcome.dead.append((0, reason))
        outcome.dead_kinds[0] = "permanent"
    elif isinstance(error, DependencyDown):
        log.warning("%s %s waits (attempt %d): %s", sub.queue, message.message_id, attempt, reason)
        outcome.retry.append((0, reason))
    elif attempt >= sub.max_attempts:
        log.error(
            "%s %s dead-lettered after %d attempts: %s", sub.queue, message.message_id, attempt, reason,
            exc_info=error,
        )
        outcome.dead.append((0, f"gave up after {attempt} attempts: {reason}"))
        outcome.dead_kinds[0] = "exhausted"
    else:
        log.warning(
            "%s %s failed (attempt %d of %d), retrying: %s",
            sub.queue, message.message_id, attempt, sub.max_attempts, reason,
        )
        outcome.retry.append((0, reason))
    return outcome


class Bus(abc.ABC):
    """Publish messages; subscribe a service's queue to message types with a handler."""

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []

    def subscribe(
        self,
        queue: Queue[M],
        handler: Handler[M] | Routes,
        *,
        batch_size: int = 1,
        max_wait: float = 0.02,
        max_attempts: int = 5,
        retry_delay: float = 0.5,
        concurrency: int = 1,
        quiet: float | None = None,
    ) -> None:
        """Register the handler of ``queue``; it starts consuming at the next ``start``.
        Replicas of one service share the queue (and compete for its messages). Up to
        ``concurrency`` batches (1 to MAX_CONCURRENCY) are handled at once.

        A batch closes when it holds ``batch_size`` messages, ``max_wait`` seconds after its
        first, or (with ``quiet``) once no message came for ``quiet`` seconds: a burst is
        handled as soon as it is over, a steady stream in batches of up to ``max_wait``."""
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency of {queue.name!r} must be 1 to {MAX_CONCURRENCY}, not {concurrency}")
        if isinstance(handler, Routes) and handler.message_types != set(queue.message_types):
            routed = sorted(t.type_name() for t in handler.message_types)
            raise ValueError(f"routes for {routed} do not match queue {queue.name!r}: {sorted(queue.routing_keys)}")
        self.subscriptions.append(
            Subscription(
                queue=queue.name,
                message_types=queue.message_types,
                handler=handler,
                batch_size=batch_size,
                max_wait=max_wait,
                max_attempts=max_attempts,
                retry_delay=retry_delay,
                concurrency=concurrency,
                quiet=quiet,
            )
        )

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect if needed, then declare and start consuming every subscription not
        started yet. Idempotent: in the embedded default several services share one bus
        and each calls start after subscribing."""

    async def stop_consuming(self) -> None:  # noqa: B027 - a bus without consumers has nothing to stop
        """Take no new message; let the batches in hand finish (for up to SHUTDOWN_GRACE
        seconds, then abandon them unacknowledged for redelivery). Publishing still works:
        a service can flush what its last batches produced before ``close``."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop consuming as ``stop_consuming`` does, then disconnect."""

    @abc.abstractmethod
    async def publish(self, *messages: Message) -> None:
        """Return once the broker has accepted every message; raise otherwise."""

    @abc.abstractmethod
    async def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """Look at (without removing) what was dead-lettered on a service's queue."""

    async def ping(self) -> bool:
        """Whether the transport is reachable now (for /readyz)."""
        return True

    async def __aenter__(self) -> Bus:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
