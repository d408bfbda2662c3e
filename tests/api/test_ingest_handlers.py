"""The ingest subscription end to end: ResourceChange on the bus → lease committed →
LeaseChanged published by the outbox relay, over both bus transports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from zc_common.bus import Bus, Queue
from zc_common.bus.memory import InProcessBus
from zc_common.messages import InstanceState, LeaseChanged, ResourceChange

from tests.api.test_ingest import NOW, change, make_tenant, new_instance_id
from tests.api.test_outbox import Collector, running_relay, runtime_for
from tests.support.waiting import eventually
from zc_api.database import create_engine, session_maker
from zc_api.ingest import handlers, service
from zc_api.ingest.handlers import ingest, subscribe
from zc_api.models import Lease

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def engine(clean_database: str) -> AsyncIterator[AsyncEngine]:
    built = create_engine(clean_database, pool_size=4)
    yield built
    await built.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_maker(engine)


async def live_leases(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        query = select(func.count()).select_from(Lease).where(col(Lease.status) == "active")
        return int(await session.scalar(query) or 0)


async def test_resource_changes_on_the_bus_become_leases_announced_on_the_bus(
    engine: AsyncEngine, sessions: Sessions, bus: Bus
) -> None:
    tenant = await make_tenant(sessions)
    runtime = runtime_for(engine, sessions, bus)
    subscribe(runtime.bus, runtime)
    announced = Collector()
    bus.subscribe(Queue("observer", (LeaseChanged,)), announced, batch_size=100)
    await bus.start()
    changes = [change(tenant, tags={"owner": "dev@bigdb.com"}) for _ in range(20)]

    async with running_relay(runtime):
        await bus.publish(*changes, *changes[:5])  # some delivered twice

        async def all_leased() -> bool:
            return await live_leases(sessions) == 20

        await eventually(all_leased)
        await eventually(lambda: len(announced.messages) == 20)

    assert all(isinstance(m, LeaseChanged) for m in announced.messages)
    assert {m.lease.instance_id for m in announced.messages if isinstance(m, LeaseChanged)} == {
        c.instance_id for c in changes
    }
    assert await bus.dead_letters("api") == []


async def test_ingest_wakes_the_relay_only_when_it_wrote_messages(
    engine: AsyncEngine, sessions: Sessions
) -> None:
    tenant = await make_tenant(sessions)
    runtime = runtime_for(engine, sessions, InProcessBus())
    instance_id = new_instance_id()

    await ingest(runtime, [change(tenant, instance_id, state=InstanceState.stopped, observed_at=NOW)])
    assert not runtime.outbox_wakeup.is_set()

    await ingest(runtime, [change(tenant, instance_id, observed_at=NOW + timedelta(minutes=1))])
    assert runtime.outbox_wakeup.is_set()


class _Deadlock(Exception):
    sqlstate = "40P01"


async def test_a_batch_that_hit_a_deadlock_is_retried_at_once(
    engine: AsyncEngine, sessions: Sessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = await make_tenant(sessions)
    runtime = runtime_for(engine, sessions, InProcessBus())
    attempts = 0

    async def deadlocking_once(session: AsyncSession, changes: Sequence[ResourceChange], *, now: datetime) -> Any:
        nonlocal attempts
        attempts += 1
        result = await service.apply_changes(session, changes, now=now)
        if attempts == 1:  # what was written is rolled back with the transaction
            raise DBAPIError("INSERT INTO lease ...", None, _Deadlock("deadlock detected"))
        return result

    monkeypatch.setattr(handlers, "apply_changes", deadlocking_once)

    await handlers.ingest(runtime, [change(tenant, tags={"owner": "dev@bigdb.com"})])

    assert attempts == 2
    assert await live_leases(sessions) == 1


async def test_an_unstorable_change_is_dead_lettered_alone_at_once_and_its_batch_is_applied(
    engine: AsyncEngine, sessions: Sessions, bus: Bus
) -> None:
    tenant = await make_tenant(sessions)
    runtime = runtime_for(engine, sessions, bus)
    subscribe(runtime.bus, runtime)
    await bus.start()
    good = [change(tenant, tags={"owner": "dev@bigdb.com"}) for _ in range(3)]
    bad = change(tenant)
    assert bad.instance is not None
    # An instance type longer than its column: valid as a message, refused by the database.
    bad = bad.model_copy(update={"instance": bad.instance.model_copy(update={"instance_type": "x" * 100})})

    await bus.publish(good[0], bad, *good[1:])

    async def all_leased() -> bool:
        return await live_leases(sessions) == 3

    await eventually(all_leased)

    async def dead_lettered() -> bool:
        return len(await bus.dead_letters("api")) == 1

    await eventually(dead_lettered)
    [dead] = await bus.dead_letters("api")
    assert dead.attempts == 1, dead
    assert "cannot be stored" in dead.reason, dead.reason
