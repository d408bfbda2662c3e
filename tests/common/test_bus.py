"""The bus contract (zc_common.bus.base), run against both implementations through the
``bus`` fixture; what only a broker can show (restarts, durability, dropped
connections) runs against RabbitMQ alone."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timezone
from typing import Any, Literal

import aio_pika
import pytest
from aio_pika.exceptions import ChannelPreconditionFailed
from yarl import URL

from zc_common.bus import Bus, DependencyDown, PermanentFailure, Queue, Subscription
from zc_common.bus.base import MAX_CONCURRENCY, DeadLetter, run_handler
from zc_common.bus.rabbit import RabbitBus
from zc_common.messages import LeaseChange, LeaseChanged, LeaseSnapshot, LeaseStatus, Message, decode

from tests.support.waiting import eventually


class Ping(Message):
    type: Literal["zc-test.Ping"] = "zc-test.Ping"
    n: int


class Pong(Message):
    type: Literal["zc-test.Pong"] = "zc-test.Pong"
    n: int


class Recorder:
    """A handler that keeps every batch it completed; ``fail`` may raise to refuse one."""

    def __init__(self, fail: Callable[[Sequence[Message]], None] | None = None) -> None:
        self.fail = fail
        self.calls: list[list[Message]] = []  # every call, failed or not
        self.batches: list[list[Message]] = []  # the calls that succeeded

    async def __call__(self, messages: Sequence[Message]) -> None:
        self.calls.append(list(messages))
        if self.fail is not None:
            self.fail(messages)
        self.batches.append(list(messages))

    @property
    def messages(self) -> list[Message]:
        return [message for batch in self.batches for message in batch]


async def publish_raw(bus: Bus, body: bytes, type_name: str) -> None:
    """Put a body on the wire as-is (sync on the in-process bus, async on RabbitMQ)."""
    result = bus.publish_raw(body, type_name)  # type: ignore[attr-defined]
    if inspect.isawaitable(result):
        await result


async def dead_letters_eventually(bus: Bus, queue: str, count: int) -> list[DeadLetter]:
    found: list[DeadLetter] = []

    async def enough() -> bool:
        nonlocal found
        found = await bus.dead_letters(queue)
        return len(found) >= count

    await eventually(enough)
    return found


FAST = {"retry_delay": 0.05, "max_wait": 0.05}


# --- both implementations -------------------------------------------------------------


async def test_published_messages_reach_the_handler_unchanged(bus: Bus) -> None:
    handler = Recorder()
    bus.subscribe(Queue("alpha", (Ping,)), handler)
    await bus.start()
    sent = [Ping(n=n) for n in range(3)]

    await bus.publish(*sent)

    await eventually(lambda: len(handler.messages) == 3)
    assert sorted(handler.messages, key=lambda m: m.n) == sent  # type: ignore[attr-defined]
    assert await bus.dead_letters("alpha") == []


async def test_batches_never_exceed_batch_size(bus: Bus) -> None:
    handler = Recorder()
    bus.subscribe(Queue("alpha", (Ping,)), handler, batch_size=4, max_wait=0.3)
    await bus.start()

    await bus.publish(*(Ping(n=n) for n in range(10)))

    await eventually(lambda: len(handler.messages) == 10)
    sizes = [len(batch) for batch in handler.batches]
    assert max(sizes) <= 4, sizes
    assert max(sizes) > 1, f"messages were never batched: {sizes}"
    assert sorted(m.n for m in handler.messages) == list(range(10))  # type: ignore[attr-defined]


async def test_a_quiet_batch_closes_when_the_burst_is_over_not_at_max_wait(bus: Bus) -> None:
    handler = Recorder()
    bus.subscribe(Queue("alpha", (Ping,)), handler, batch_size=100, max_wait=30, quiet=0.3)
    await bus.start()
    loop = asyncio.get_running_loop()

    started = loop.time()
    await bus.publish(*(Ping(n=n) for n in range(5)))
    await eventually(lambda: len(handler.messages) == 5, timeout=15)  # max_wait alone: 30 s

    assert loop.time() - started < 15
    assert [len(batch) for batch in handler.batches] == [5]


async def test_messages_closer_than_quiet_keep_one_batch_open(bus: Bus) -> None:
    handler = Recorder()
    bus.subscribe(Queue("alpha", (Ping,)), handler, batch_size=100, max_wait=30, quiet=1.5)
    await bus.start()

    for n in range(6):  # 0.4 s apart, 2 s in all: each well inside the quiet window of the one before
        await bus.publish(Ping(n=n))
        await asyncio.sleep(0.4)
    await eventually(lambda: len(handler.messages) == 6, timeout=15)

    assert [len(batch) for batch in handler.batches] == [6]


def test_a_batch_waits_for_the_sooner_of_max_wait_and_quiet() -> None:
    quiet = Subscription(queue="q", message_types=(Ping,), handler=Recorder(), max_wait=2.0, quiet=0.5)
    assert quiet.wait_for_next(since_first=0.0, since_last=0.0) == 0.5
    assert quiet.wait_for_next(since_first=1.8, since_last=0.1) == pytest.approx(0.2)  # max_wait nearer
    assert quiet.wait_for_next(since_first=1.0, since_last=0.6) <= 0  # quiet for 0.6 s: closes
    plain = Subscription(queue="q", message_types=(Ping,), handler=Recorder(), max_wait=2.0)
    assert plain.wait_for_next(since_first=1.0, since_last=1.0) == 1.0


async def test_failing_handler_is_retried_until_it_succeeds(bus: Bus) -> None:
    def fail_twice(messages: Sequence[Message]) -> None:
        if len(handler.calls) <= 2:
            raise ConnectionError("database not reachable yet")

    handler = Recorder(fail_twice)
    bus.subscribe(Queue("alpha", (Ping,)), handler, max_attempts=5, **FAST)
    await bus.start()
    sent = Ping(n=1)

    await bus.publish(sent)

    await eventually(lambda: len(handler.messages) == 1)
    assert handler.messages == [sent]
    assert len(handler.calls) == 3
    await asyncio.sleep(0.3)
    assert len(handler.calls) == 3, "a message that succeeded was handled again"
    assert await bus.dead_letters("alpha") == []


async def test_an_outage_longer_than_the_retry_budget_loses_nothing_and_keeps_the_batch_whole(bus: Bus) -> None:
    outage = 6  # calls refused, past max_attempts=2

    def database_away(messages: Sequence[Message]) -> None:
        if len(handler.calls) <= outage:
            raise DependencyDown("the database cannot be reached")

    handler = Recorder(database_away)
    bus.subscribe(Queue("alpha", (Ping,)), handler, batch_size=10, max_attempts=2, retry_delay=0.01, max_wait=0.2)
    await bus.start()
    sent = [Ping(n=n) for n in range(3)]

    await bus.publish(*sent)

    await eventually(lambda: len(handler.messages) == 3, timeout=30)
    assert sorted(m.n for m in handler.messages) == [0, 1, 2]  # type: ignore[attr-defined]
    assert len(handler.calls) > outage
    assert await bus.dead_letters("alpha") == []


async def test_a_batch_waiting_for_its_database_is_retried_whole_not_asked_once_per_message() -> None:
    handler = Recorder(lambda messages: (_ for _ in ()).throw(DependencyDown("the database cannot be reached")))
    sub = Subscription(queue="alpha", message_types=(Ping,), handler=handler, max_attempts=1)
    outcome = await run_handler(sub, [Ping(n=n) for n in range(3)], [5, 5, 5])
    assert len(handler.calls) == 1
    assert [index for index, _ in outcome.retry] == [0, 1, 2] and outcome.dead == []


async def test_message_failing_every_attempt_is_dead_lettered_with_the_error(bus: Bus) -> None:
    def always(messages: Sequence[Message]) -> None:
        raise ValueError("lease 42 has no owner")

    handler = Recorder(always)
    bus.subscribe(Queue("alpha", (Ping,)), handler, max_attempts=3, **FAST)
    await bus.start()
    sent = Ping(n=1)

    await bus.publish(sent)

    [dead] = await dead_letters_eventually(bus, "alpha", 1)
    assert dead.queue == "alpha"
    assert dead.attempts == 3
    assert "gave up after 3 attempts" in dead.reason
    assert "ValueError: lease 42 has no owner" in dead.reason
    assert decode(dead.body) == sent
    assert len(handler.calls) == 3
    await asyncio.sleep(0.3)
    assert len(handler.calls) == 3, "a dead-lettered message was retried"


async def test_permanent_failure_is_dead_lettered_at_once(bus: Bus) -> None:
    def refuse(messages: Sequence[Message]) -> None:
        raise PermanentFailure("instance i-0123456789abcdef0 is in no managed account")

    handler = Recorder(refuse)
    bus.subscribe(Queue("alpha", (Ping,)), handler, max_attempts=5, **FAST)
    await bus.start()

    await bus.publish(Ping(n=1))

    [dead] = await dead_letters_eventually(bus, "alpha", 1)
    assert "PermanentFailure: instance i-0123456789abcdef0 is in no managed account" in dead.reason
    assert dead.attempts == 1
    await asyncio.sleep(0.3)
    assert len(handler.calls) == 1


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\x00this is not json", r"not JSON"),
        (b'["a", "list"]', r"not a JSON object"),
        (json.dumps({"type": "zc-test.Nope", "n": 1}).encode(), r"unknown message type 'zc-test.Nope'"),
        (json.dumps({"type": "zc-test.Ping", "n": "seven"}).encode(), r"zc-test.Ping failed validation at n"),
        (json.dumps({"type": "zc-test.Ping"}).encode(), r"zc-test.Ping failed validation at n: Field required"),
        (b"[" * 100_000, r"nested too deeply"),
    ],
    ids=["not-json", "not-an-object", "unknown-type", "invalid-field", "missing-field", "too-deep"],
)
async def test_unusable_body_is_dead_lettered_and_does_not_block_the_queue(
    bus: Bus, body: bytes, why: str
) -> None:
    handler = Recorder()
    bus.subscribe(Queue("alpha", (Ping,)), handler, **FAST)
    await bus.start()

    await publish_raw(bus, body, Ping.type_name())
    await bus.publish(Ping(n=2))

    await eventually(lambda: len(handler.messages) == 1)
    assert handler.messages[0].n == 2  # type: ignore[attr-defined]
    assert all(isinstance(m, Ping) for call in handler.calls for m in call)
    [dead] = await dead_letters_eventually(bus, "alpha", 1)
    assert re.search(why, dead.reason), dead.reason
    assert dead.body == body


async def test_one_poison_message_does_not_hold_back_the_rest_of_its_batch(bus: Bus) -> None:
    def poison(messages: Sequence[Message]) -> None:
        if any(m.n == 3 for m in messages):  # type: ignore[attr-defined]
            raise ValueError("cannot handle 3")

    handler = Recorder(poison)
    bus.subscribe(Queue("alpha", (Ping,)), handler, batch_size=10, max_wait=0.3, max_attempts=2, retry_delay=0.05)
    await bus.start()

    await bus.publish(*(Ping(n=n) for n in range(6)))

    [dead] = await dead_letters_eventually(bus, "alpha", 1)
    assert decode(dead.body).n == 3  # type: ignore[attr-defined]
    assert "cannot handle 3" in dead.reason
    await eventually(lambda: sorted(m.n for m in handler.messages) == [0, 1, 2, 4, 5])  # type: ignore[attr-defined]
    assert max(len(call) for call in handler.calls) > 1, "the poison message was never in a batch"


class Note(Message):
    type: Literal["zc-test.Note"] = "zc-test.Note"
    text: str


async def test_a_message_carrying_nul_is_dead_lettered_alone_at_once(bus: Bus) -> None:
    handler = Recorder()
    bus.subscribe(Queue("alpha", (Note,)), handler, batch_size=10, max_wait=0.3, retry_delay=0.05)
    await bus.start()
    poisoned = json.dumps({"type": "zc-test.Note", "text": "evt-\u0000"}).encode()

    await bus.publish(Note(text="one"))
    await publish_raw(bus, poisoned, Note.type_name())
    await bus.publish(Note(text="two"))

    [dead] = await dead_letters_eventually(bus, "alpha", 1)
    assert "text contains U+0000" in dead.reason, dead.reason
    assert dead.attempts == 1
    await eventually(lambda: sorted(m.text for m in handler.messages) == ["one", "two"])  # type: ignore[attr-defined]


async def test_fields_added_by_a_newer_version_are_ignored(bus: Bus) -> None:
    handler = Recorder()
    bus.subscribe(Queue("alpha", (Ping,)), handler, **FAST)
    await bus.start()
    sent = Ping(n=7)
    newer = {**json.loads(sent.encode()), "schema_version": 2, "added_in_v2": {"nested": [1, 2]}}

    await publish_raw(bus, json.dumps(newer).encode(), Ping.type_name())

    await eventually(lambda: len(handler.messages) == 1)
    [received] = handler.messages
    assert isinstance(received, Ping)
    assert (received.n, received.message_id, received.occurred_at) == (7, sent.message_id, sent.occurred_at)
    assert await bus.dead_letters("alpha") == []


async def test_a_queue_receives_only_the_types_it_subscribed_to(bus: Bus) -> None:
    pings, pongs, both = Recorder(), Recorder(), Recorder()
    bus.subscribe(Queue("alpha", (Ping,)), pings, **FAST)
    bus.subscribe(Queue("beta", (Pong,)), pongs, **FAST)
    bus.subscribe(Queue("gamma", (Ping, Pong,)), both, **FAST)
    await bus.start()

    ping, pong = Ping(n=2), Pong(n=1)
    await bus.publish(pong, ping)

    await eventually(lambda: len(pings.messages) == 1 and len(pongs.messages) == 1 and len(both.messages) == 2)
    await asyncio.sleep(0.3)  # anything misrouted would have arrived by now
    assert pings.messages == [ping]
    assert pongs.messages == [pong]
    assert sorted(both.messages, key=lambda m: m.type) == [ping, pong]


async def test_each_subscribed_queue_gets_its_own_copy(bus: Bus) -> None:
    first, second = Recorder(), Recorder()
    bus.subscribe(Queue("alpha", (Ping,)), first, **FAST)
    bus.subscribe(Queue("beta", (Ping,)), second, **FAST)
    await bus.start()
    sent = Ping(n=5)

    await bus.publish(sent)

    await eventually(lambda: first.messages == [sent] and second.messages == [sent])


async def test_stopping_finishes_the_batch_in_hand_and_takes_no_more(bus: Bus) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def slow_first(messages: Sequence[Message]) -> None:
        entered.set()
        if not release.is_set():
            await release.wait()

    handler = Recorder()

    async def handle(messages: Sequence[Message]) -> None:
        await slow_first(messages)
        await handler(messages)

    bus.subscribe(Queue("alpha", (Ping,)), handle, batch_size=1, max_wait=0.01)
    await bus.start()
    sent = [Ping(n=n) for n in range(5)]
    await bus.publish(*sent)
    await asyncio.wait_for(entered.wait(), timeout=10)

    stopping = asyncio.create_task(bus.stop_consuming())
    await asyncio.sleep(0.3)
    assert not stopping.done(), "stopping did not wait for the batch in hand"
    release.set()
    await asyncio.wait_for(stopping, timeout=10)

    assert handler.messages == [sent[0]], "a message was taken after stopping began"
    await bus.start()  # consuming again: the rest is still there, the finished one is not
    await eventually(lambda: len(handler.messages) == 5)
    assert sorted(m.n for m in handler.messages) == [0, 1, 2, 3, 4]  # type: ignore[attr-defined]


class Gate:
    """A handler that holds each batch until released, counting how many it holds at once."""

    def __init__(self) -> None:
        self.held = 0
        self.most_held = 0
        self.entered: list[list[int]] = []
        self.done: list[list[int]] = []
        self.release: dict[int, asyncio.Event] = {}

    def opening(self, n: int) -> asyncio.Event:
        return self.release.setdefault(n, asyncio.Event())

    async def __call__(self, messages: Sequence[Message]) -> None:
        numbers = [m.n for m in messages]  # type: ignore[attr-defined]
        self.entered.append(numbers)
        self.held += 1
        self.most_held = max(self.most_held, self.held)
        try:
            await asyncio.gather(*(self.opening(n).wait() for n in numbers))
        finally:
            self.held -= 1
        self.done.append(numbers)


async def test_a_subscription_handles_up_to_concurrency_batches_at_once(bus: Bus) -> None:
    gate = Gate()
    bus.subscribe(Queue("alpha", (Ping,)), gate, batch_size=1, max_wait=0.01, concurrency=3)
    await bus.start()

    await bus.publish(*(Ping(n=n) for n in range(5)))

    await eventually(lambda: gate.held == 3)
    await asyncio.sleep(0.2)
    assert gate.most_held == 3 and len(gate.entered) == 3  # never a fourth while three are held
    for n in range(5):
        gate.opening(n).set()
    await eventually(lambda: len(gate.done) == 5)
    assert gate.most_held == 3
    assert sorted(n for batch in gate.done for n in batch) == [0, 1, 2, 3, 4]
    assert await bus.dead_letters("alpha") == []


async def test_a_slow_batch_does_not_hold_back_the_next_ones(bus: Bus) -> None:
    gate = Gate()
    bus.subscribe(Queue("alpha", (Ping,)), gate, batch_size=1, max_wait=0.01, concurrency=2)
    await bus.start()
    for n in range(1, 4):
        gate.opening(n).set()  # only the first is slow

    await bus.publish(Ping(n=0))
    await eventually(lambda: gate.held == 1)
    await bus.publish(*(Ping(n=n) for n in range(1, 4)))

    await eventually(lambda: sorted(n for batch in gate.done for n in batch) == [1, 2, 3])
    assert gate.held == 1  # the slow one is still in hand
    gate.opening(0).set()
    await eventually(lambda: len(gate.done) == 4)


async def test_concurrent_batches_are_retried_and_dead_lettered_alone(bus: Bus) -> None:
    def refuse_odd(messages: Sequence[Message]) -> None:
        if any(m.n % 2 for m in messages):  # type: ignore[attr-defined]
            raise PermanentFailure("odd")

    handler = Recorder(refuse_odd)
    bus.subscribe(Queue("alpha", (Ping,)), handler, batch_size=2, concurrency=3, **FAST)
    await bus.start()

    await bus.publish(*(Ping(n=n) for n in range(8)))

    dead = await dead_letters_eventually(bus, "alpha", 4)
    await eventually(lambda: len(handler.messages) == 4)
    assert sorted(m.n for m in handler.messages) == [0, 2, 4, 6]  # type: ignore[attr-defined]
    assert sorted(json.loads(d.body)["n"] for d in dead) == [1, 3, 5, 7]


async def test_stopping_waits_for_every_batch_in_hand(bus: Bus) -> None:
    gate = Gate()
    bus.subscribe(Queue("alpha", (Ping,)), gate, batch_size=1, max_wait=0.01, concurrency=2)
    await bus.start()
    await bus.publish(*(Ping(n=n) for n in range(4)))
    await eventually(lambda: gate.held == 2)

    stopping = asyncio.create_task(bus.stop_consuming())
    gate.opening(gate.entered[0][0]).set()
    await asyncio.sleep(0.3)
    assert not stopping.done(), "stopping did not wait for the second batch in hand"
    gate.opening(gate.entered[1][0]).set()
    await asyncio.wait_for(stopping, timeout=10)

    assert len(gate.entered) == 2, "a message was taken after stopping began"


def test_concurrency_is_bounded(bus: Bus) -> None:
    for wrong in (0, MAX_CONCURRENCY + 1):
        with pytest.raises(ValueError, match="concurrency"):
            bus.subscribe(Queue("alpha", (Ping,)), Recorder(), concurrency=wrong)


# --- RabbitMQ only --------------------------------------------------------------------


class BrokerProxy:
    """A TCP proxy in front of RabbitMQ whose ``cut`` makes the broker unreachable."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.server: asyncio.Server | None = None
        self.links: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.links |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        assert self.server is not None
        self.server.close()
        for writer in self.links:
            writer.transport.abort()
        self.links.clear()


@pytest.fixture
async def broker_proxy(amqp_url: str) -> AsyncIterator[tuple[BrokerProxy, str]]:
    url = URL(amqp_url)
    proxy = BrokerProxy(url.host or "127.0.0.1", url.port or 5672)
    port = await proxy.start()
    yield proxy, str(url.with_host("127.0.0.1").with_port(port))
    await proxy.cut()


async def test_messages_published_while_no_consumer_runs_wait_for_it(
    rabbit_bus: Callable[..., RabbitBus],
) -> None:
    first = rabbit_bus()
    first.subscribe(Queue("alpha", (Ping,)), Recorder())
    await first.start()  # declares the queue
    await first.close()
    publisher = rabbit_bus()
    await publisher.start()
    sent = [Ping(n=n) for n in range(5)]
    await publisher.publish(*sent)
    await publisher.close()

    handler = Recorder()
    restarted = rabbit_bus()
    restarted.subscribe(Queue("alpha", (Ping,)), handler)
    await restarted.start()

    await eventually(lambda: len(handler.messages) == 5)
    assert sorted(handler.messages, key=lambda m: m.n) == sent  # type: ignore[attr-defined]


async def test_a_message_published_before_its_consumer_ever_ran_is_kept_for_it(
    rabbit_bus: Callable[..., RabbitBus],
) -> None:
    """A fresh deployment where the api publishes before the scheduler has ever started."""
    publisher = rabbit_bus()
    await publisher.start()
    change = LeaseChanged(
        change=LeaseChange.created, actor="test",
        lease=LeaseSnapshot(
            lease_id=1, version=1, status=LeaseStatus.active, owner_email="a@b.c",
            expires_at=datetime.now(timezone.utc), account_id=1, cloud_account_id=1,
            upstream_account_id="111111111111", region="us-east-1", instance_id="i-0123456789abcdef0",
        ),
    )
    await publisher.publish(change)

    handler = Recorder()
    scheduler = rabbit_bus()
    scheduler.subscribe(Queue("scheduler", (LeaseChanged,)), handler)
    await scheduler.start()

    await eventually(lambda: len(handler.messages) == 1)
    assert handler.messages[0].message_id == change.message_id


async def test_handled_messages_are_acknowledged_and_not_delivered_again(
    rabbit_bus: Callable[..., RabbitBus],
) -> None:
    handler = Recorder()
    first = rabbit_bus()
    first.subscribe(Queue("alpha", (Ping,)), handler, batch_size=3)
    await first.start()
    await first.publish(*(Ping(n=n) for n in range(5)))
    await eventually(lambda: len(handler.messages) == 5)
    await first.close()

    again = Recorder()
    restarted = rabbit_bus()
    restarted.subscribe(Queue("alpha", (Ping,)), again)
    await restarted.start()
    await asyncio.sleep(0.5)

    assert again.calls == []


async def test_a_message_whose_handler_did_not_finish_is_delivered_again(
    rabbit_bus: Callable[..., RabbitBus],
) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    async def crashes_midway(messages: Sequence[Message]) -> None:
        entered.set()
        await release.wait()

    crashing = rabbit_bus()
    crashing.subscribe(Queue("alpha", (Ping,)), crashes_midway)
    await crashing.start()
    sent = Ping(n=1)
    await crashing.publish(sent)
    await asyncio.wait_for(entered.wait(), timeout=10)
    assert crashing._connection is not None
    await crashing._connection.close()  # the process dies while the work is in progress
    release.set()

    handler = Recorder()
    successor = rabbit_bus()
    successor.subscribe(Queue("alpha", (Ping,)), handler)
    await successor.start()

    await eventually(lambda: handler.messages == [sent])


async def test_queues_are_durable_and_messages_persistent(
    rabbit_bus: Callable[..., RabbitBus], amqp_url: str, exchange: str
) -> None:
    consumer = rabbit_bus()
    consumer.subscribe(Queue("alpha", (Ping,)), Recorder())
    await consumer.start()
    await consumer.close()
    publisher = rabbit_bus()
    await publisher.start()
    await publisher.publish(Ping(n=1))

    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(f"{exchange}.alpha", ensure=True)
        message = await queue.get(timeout=5)
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        await message.nack(requeue=True)
        await channel.close()

        # Re-declaring with durable=False must be refused: the broker holds them durable.
        arguments: dict[str, Any] = {"x-dead-letter-exchange": f"{exchange}.dead", "x-dead-letter-routing-key": "alpha"}
        for name, args in [
            (f"{exchange}.alpha", arguments),
            (f"{exchange}.alpha.dead", None),
        ]:
            channel = await connection.channel()
            with pytest.raises(ChannelPreconditionFailed, match="durable"):
                await channel.declare_queue(name, durable=False, arguments=args)
        for name in (exchange, f"{exchange}.dead"):
            channel = await connection.channel()
            with pytest.raises(ChannelPreconditionFailed, match="durable"):
                await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=False)
    finally:
        await connection.close()


async def _drop_connections(rabbitmqctl: str, connection_name: str) -> int:
    """Close, on the broker's side, every connection whose client named itself so."""
    listing = await asyncio.create_subprocess_exec(
        rabbitmqctl, "--quiet", "list_connections", "pid", "client_properties",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await listing.communicate()
    assert listing.returncode == 0, err.decode()
    pids = [
        line.split("\t", 1)[0]
        for line in out.decode().splitlines()
        if f'{{"connection_name","{connection_name}"}}' in line
    ]
    for pid in pids:
        closing = await asyncio.create_subprocess_exec(
            rabbitmqctl, "--quiet", "close_connection", pid, "test: dropping the connection",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        _, err = await closing.communicate()
        assert closing.returncode == 0, err.decode()
    return len(pids)


@pytest.mark.needs_rabbitmqctl
async def test_a_dropped_broker_connection_loses_no_message(
    rabbit_bus: Callable[..., RabbitBus], exchange: str, local_rabbitmqctl: str
) -> None:
    handler = Recorder()
    bus = rabbit_bus()
    bus.subscribe(Queue("alpha", (Ping,)), handler, batch_size=5, max_wait=0.05)
    await bus.start()
    sent = [Ping(n=n) for n in range(100)]

    async def publish_stream() -> None:
        for message in sent:
            await bus.publish(message)
            await asyncio.sleep(0.01)

    stream = asyncio.create_task(publish_stream())
    await eventually(lambda: len(handler.messages) >= 20)
    assert await _drop_connections(local_rabbitmqctl, exchange) >= 1
    await asyncio.wait_for(stream, timeout=90)

    wanted = {m.message_id for m in sent}
    await eventually(lambda: wanted <= {m.message_id for m in handler.messages}, timeout=60)
    after = Ping(n=1000)
    await bus.publish(after)
    await eventually(lambda: after in handler.messages)
    assert await bus.ping()
    assert await bus.dead_letters("alpha") == []


async def test_close_finishes_while_the_broker_is_unreachable(
    broker_proxy: tuple[BrokerProxy, str], rabbit_bus: Callable[..., RabbitBus]
) -> None:
    proxy, proxied_url = broker_proxy
    bus = rabbit_bus(proxied_url, connect_timeout=5)
    bus.subscribe(Queue("alpha", (Ping,)), Recorder())
    await bus.start()
    await proxy.cut()
    await asyncio.sleep(0.2)

    await asyncio.wait_for(bus.close(), timeout=20)  # a SIGTERM during an outage must not hang


async def test_a_batch_outlasting_the_grace_period_is_abandoned_for_redelivery(
    rabbit_bus: Callable[..., RabbitBus],
) -> None:
    entered = asyncio.Event()

    async def hangs(messages: Sequence[Message]) -> None:
        entered.set()
        await asyncio.Event().wait()

    stuck = rabbit_bus(shutdown_grace=0.5)
    stuck.subscribe(Queue("alpha", (Ping,)), hangs)
    await stuck.start()
    sent = Ping(n=1)
    await stuck.publish(sent)
    await asyncio.wait_for(entered.wait(), timeout=10)

    await asyncio.wait_for(stuck.close(), timeout=10)

    handler = Recorder()
    successor = rabbit_bus()
    successor.subscribe(Queue("alpha", (Ping,)), handler)
    await successor.start()
    await eventually(lambda: handler.messages == [sent])


async def test_a_batch_finishing_first_acknowledges_only_its_own_messages(
    rabbit_bus: Callable[..., RabbitBus],
) -> None:
    # Several batches at once: a later batch's ack must not take an older one still in
    # hand with it (as ack(multiple=True) would), or that one is lost if the process dies.
    gate = Gate()
    gate.opening(1).set()
    stuck = rabbit_bus(shutdown_grace=0.5)
    stuck.subscribe(Queue("alpha", (Ping,)), gate, batch_size=1, max_wait=0.01, concurrency=2)
    await stuck.start()
    await stuck.publish(Ping(n=0))
    await eventually(lambda: gate.held == 1)
    await stuck.publish(Ping(n=1))
    await eventually(lambda: gate.done == [[1]])

    await asyncio.wait_for(stuck.close(), timeout=10)  # abandons the one still in hand

    handler = Recorder()
    successor = rabbit_bus()
    successor.subscribe(Queue("alpha", (Ping,)), handler)
    await successor.start()
    await eventually(lambda: [m.n for m in handler.messages] == [0])  # type: ignore[attr-defined]
    await asyncio.sleep(0.3)
    assert [m.n for m in handler.messages] == [0]  # type: ignore[attr-defined]
