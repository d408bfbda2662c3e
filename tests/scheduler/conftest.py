"""Fixtures for the scheduler's tests: the run's database with the scheduler's tables
migrated and emptied per test, buses of both transports, an observer of what the
scheduler publishes, and replicas (Scheduler objects, each with its own pool and bus)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from zc_common.bus import Bus
from zc_common.bus.memory import InProcessBus
from zc_common.messages import Message

from tests.scheduler.factories import Observer, settings
from zc_scheduler.database import migrate
from zc_scheduler.main import wired
from zc_scheduler.timers.service import Scheduler


@pytest.fixture(scope="session")
async def scheduler_tables(database_url: str) -> str:
    """The run's database (the api's) with the scheduler's own tables beside the api's."""
    await migrate(database_url)
    return database_url


@pytest.fixture
async def scheduler_db(scheduler_tables: str) -> str:
    """The scheduler's tables, empty."""
    connection = await asyncpg.connect(scheduler_tables)
    try:
        await connection.execute("TRUNCATE scheduler_timer, scheduler_lease RESTART IDENTITY")
    finally:
        await connection.close()
    return scheduler_tables


@pytest.fixture(params=["memory", "rabbitmq"])
def new_bus(request: pytest.FixtureRequest) -> Callable[[], Bus]:
    """Builds this test's buses. RabbitMQ: a connection each, on the test's own exchange,
    as separate processes would have. In process: one InProcessBus shared by everyone,
    standing for the broker (two in-process buses would not reach each other)."""
    if request.param == "rabbitmq":
        factory: Callable[..., Bus] = request.getfixturevalue("rabbit_bus")
        return lambda: factory()
    shared = InProcessBus()  # closed by ``observer``, which every test using it has
    return lambda: shared


@pytest.fixture
async def observer(new_bus: Callable[[], Bus]) -> AsyncIterator[Observer]:
    """Subscribed and started before any scheduler, so nothing published is missed."""
    watching = Observer(new_bus())
    watching.subscribe()
    await watching.bus.start()
    yield watching
    if isinstance(watching.bus, InProcessBus):
        await watching.bus.close()


class Replicas:
    """Scheduler replicas as separate processes would run them: each its own pool and
    (over RabbitMQ) its own bus connection, wired exactly as the service wires itself."""

    def __init__(
        self, database_url: str, new_bus: Callable[[], Bus], publisher: Bus, stack: contextlib.AsyncExitStack
    ) -> None:
        self.database_url = database_url
        self.new_bus = new_bus
        self.publisher = publisher
        self.stack = stack

    async def start(self, **overrides: Any) -> Scheduler:
        return await self.stack.enter_async_context(
            wired(settings(self.database_url, **overrides), bus=self.new_bus())
        )

    async def kill(self, scheduler: Scheduler) -> None:
        """Stop it with no grace, as a killed process: the firing loop is cancelled where
        it stands and the database connections are dropped (the server rolls back)."""
        await scheduler.stop(grace=False)
        scheduler.pool.terminate()
        if not isinstance(scheduler.bus, InProcessBus):
            await scheduler.bus.close()

    async def publish(self, *messages: Message) -> None:
        """Publish as the api's outbox relay would (start a replica first: its queue
        must exist to receive them)."""
        await self.publisher.publish(*messages)


@pytest.fixture
async def replicas(scheduler_db: str, new_bus: Callable[[], Bus], observer: Observer) -> AsyncIterator[Replicas]:
    async with contextlib.AsyncExitStack() as stack:
        yield Replicas(scheduler_db, new_bus, observer.bus, stack)
