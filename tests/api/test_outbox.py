"""The outbox relay: what was committed reaches the bus once, what was rolled back never
does, and nothing is lost while the bus is down. Real PostgreSQL, both bus transports."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from zc_common.aws import AwsAccess
from zc_common.bus import Bus, Queue
from zc_common.bus.memory import InProcessBus
from zc_common.messages import LeaseChange, LeaseChanged, LeaseSnapshot, LeaseStatus, Message
from zc_common.settings import ApiSettings

from tests.support.credentials import API_CREDENTIALS
from tests.support.waiting import eventually
from zc_api.database import create_engine, session_maker, transaction
from zc_api.models import OutboxMessage
from zc_api.outbox import relay
from zc_api.outbox.service import enqueue
from zc_api.runtime import ApiRuntime

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def engine(clean_database: str) -> AsyncIterator[AsyncEngine]:
    built = create_engine(clean_database, pool_size=4)
    yield built
    await built.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_maker(engine)


def lease_message(n: int = 1) -> LeaseChanged:
    now = datetime.now(timezone.utc)
    return LeaseChanged(
        change=LeaseChange.created,
        lease=LeaseSnapshot(
            lease_id=n, version=1, status=LeaseStatus.active, owner_email="dev@bigdb.com",
            expires_at=now + timedelta(days=3), account_id=1, cloud_account_id=1,
            upstream_account_id="123456789012", region="us-east-1", instance_id=f"i-{n:017x}",
        ),
        actor="service:test",
    )


class Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, batch: Sequence[Message]) -> None:
        self.messages.extend(batch)

    @property
    def ids(self) -> list[Any]:
        return [m.message_id for m in self.messages]


class FlakyBus(Bus):
    """A bus whose publish fails while ``failing`` is set, like a broker that is down."""

    def __init__(self, inner: Bus) -> None:
        super().__init__()
        self.inner = inner
        self.failing = False
        self.attempts = 0

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def publish(self, *messages: Message) -> None:
        self.attempts += 1
        if self.failing:
            raise ConnectionError("the broker is down")
        await self.inner.publish(*messages)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[Any]:
        return await self.inner.dead_letters(queue, limit)


def runtime_for(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], bus: Bus) -> ApiRuntime:
    settings = ApiSettings(
        amqp_url="amqp://guest:guest@127.0.0.1:5672/", database_url=str(engine.url),
        **API_CREDENTIALS, bus="memory",
    )
    return ApiRuntime(settings=settings, engine=engine, sessions=sessions, bus=bus, aws=AwsAccess())


@contextlib.asynccontextmanager
async def running_relay(runtime: ApiRuntime) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.run_relay(runtime, poll_seconds=0.2))
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def unpublished(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(OutboxMessage).where(col(OutboxMessage.published_at).is_(None))
        return int(await session.scalar(query) or 0)


def all_published(sessions: async_sessionmaker[AsyncSession]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await unpublished(sessions) == 0

    return check


async def rows(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def observe(bus: Bus) -> Collector:
    collector = Collector()
    bus.subscribe(Queue("observer", (LeaseChanged,)), collector, batch_size=100)
    await bus.start()
    return collector


async def test_committed_rows_are_published_on_the_bus_and_marked(
    engine: AsyncEngine, sessions: Sessions, bus: Bus
) -> None:
    collector = await observe(bus)
    runtime = runtime_for(engine, sessions, bus)
    sent = [lease_message(n) for n in range(3)]

    async with running_relay(runtime):
        async with transaction(sessions) as session:
            await enqueue(session, sent)
        runtime.wake_outbox()
        await eventually(lambda: len(collector.messages) == 3)
        await eventually(all_published(sessions))

    assert sorted(collector.ids) == sorted(m.message_id for m in sent)
    assert collector.messages[0] == sent[0]


async def test_rows_committed_elsewhere_are_published_without_a_wakeup(
    engine: AsyncEngine, sessions: Sessions, bus: Bus
) -> None:
    collector = await observe(bus)
    runtime = runtime_for(engine, sessions, bus)

    async with running_relay(runtime):
        await asyncio.sleep(0.05)  # the relay is waiting now
        async with transaction(sessions) as session:  # another replica's commit: nobody wakes us
            await enqueue(session, [lease_message()])
        await eventually(lambda: len(collector.messages) == 1)


async def test_rolled_back_transaction_leaves_no_row_and_publishes_nothing(
    engine: AsyncEngine, sessions: Sessions, bus: Bus
) -> None:
    collector = await observe(bus)

    with pytest.raises(RuntimeError):
        async with transaction(sessions) as session:
            await enqueue(session, [lease_message()])
            raise RuntimeError("the change failed after its message was written")

    assert await rows(sessions) == 0
    assert await relay.publish_pending(sessions, bus) == 0
    await asyncio.sleep(0.2)
    assert collector.messages == []


async def test_rows_stay_unpublished_while_the_bus_fails_and_go_out_once_it_works(
    engine: AsyncEngine, sessions: Sessions, bus: Bus
) -> None:
    collector = await observe(bus)
    flaky = FlakyBus(bus)
    flaky.failing = True
    runtime = runtime_for(engine, sessions, flaky)
    sent = [lease_message(n) for n in range(5)]

    async with running_relay(runtime):
        async with transaction(sessions) as session:
            await enqueue(session, sent)
        runtime.wake_outbox()
        await eventually(lambda: flaky.attempts >= 2)
        assert await unpublished(sessions) == 5
        assert collector.messages == []

        flaky.failing = False
        await eventually(lambda: len(collector.messages) == 5)
        await eventually(all_published(sessions))

    assert sorted(collector.ids) == sorted(m.message_id for m in sent)


class RecordingBus(InProcessBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[Message] = []

    async def publish(self, *messages: Message) -> None:
        await asyncio.sleep(0.01)  # a broker takes a moment to confirm: let the replicas overlap
        self.published.extend(messages)


async def test_two_relays_publish_each_row_once(sessions: Sessions) -> None:
    bus = RecordingBus()
    sent = [lease_message(n) for n in range(1200)]
    async with transaction(sessions) as session:
        await enqueue(session, sent)

    async def replica() -> int:
        taken = 0
        while n := await relay.publish_pending(sessions, bus, limit=100):
            taken += n
        return taken

    taken = await asyncio.gather(replica(), replica())

    assert sorted(m.message_id for m in bus.published) == sorted(m.message_id for m in sent)
    assert all(taken)  # both replicas did part of the work
    assert await unpublished(sessions) == 0


async def test_published_rows_older_than_a_day_are_pruned(sessions: Sessions) -> None:
    old, recent, pending = lease_message(1), lease_message(2), lease_message(3)
    async with transaction(sessions) as session:
        await enqueue(session, [old, recent, pending])
        now = datetime.now(timezone.utc)
        for message, published_at in ((old, now - timedelta(days=2)), (recent, now - timedelta(hours=1))):
            await session.execute(
                update(OutboxMessage).where(col(OutboxMessage.message_id) == message.message_id)
                .values(published_at=published_at)
            )

    assert await relay.prune(sessions) == 1

    async with sessions() as session:
        left = set((await session.scalars(select(col(OutboxMessage.message_id)))).all())
    assert left == {recent.message_id, pending.message_id}
