"""Wiring: the scheduler's process (FastAPI app with its lifespan, /healthz, /readyz and
/timers) and the ``zerocloud-scheduler [serve|migrate]`` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from typing import NoReturn

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI

from zc_common.bus import Bus, create_bus
from zc_common.logging import configure_logging
from zc_common.service import add_health_routes, serve
from zc_common.settings import SchedulerSettings, load_settings

from zc_scheduler import database
from zc_scheduler.timers import endpoints, handlers
from zc_scheduler.timers.service import Scheduler

__all__ = ["Scheduler", "create_app", "run", "wired"]

SERVICE = "scheduler"


@contextlib.asynccontextmanager
async def wired(settings: SchedulerSettings, *, bus: Bus | None = None) -> AsyncIterator[Scheduler]:
    """A running Scheduler: its pool (on a migrated database, else DatabaseNotMigrated),
    its LeaseChanged subscription on a started bus, and its firing loop. On exit the
    loop finishes the batch in hand, then the bus (unless it was given) and the pool close."""
    owns_bus = bus is None
    bus = bus or create_bus(settings)
    pool = await database.create_pool(settings.database_url)
    try:
        await database.ensure_migrated(pool)
        scheduler = Scheduler(settings, bus, pool)
        handlers.subscribe(bus, scheduler)
        await bus.start()
        try:
            await scheduler.start()
            try:
                yield scheduler
            finally:
                # Firing and the LeaseChanged consumer stop together, each finishing the
                # batch in hand (a batch of timers commits only after its publish).
                await asyncio.gather(scheduler.stop(), bus.stop_consuming() if owns_bus else asyncio.sleep(0))
        finally:
            if owns_bus:
                await bus.close()
    finally:
        await pool.close()


def create_app(settings: SchedulerSettings, *, bus: Bus | None = None) -> FastAPI:
    """The scheduler's process. Given a bus (the embedded default shares one) it
    subscribes to it but does not close it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with wired(settings, bus=bus) as scheduler:
            app.state.scheduler = scheduler
            yield

    app = FastAPI(title="ZeroCloud scheduler", lifespan=lifespan)
    add_health_routes(
        app,
        lambda: {"database": app.state.scheduler.database_answers, "bus": app.state.scheduler.bus.ping},
    )
    app.include_router(endpoints.router)
    return app


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"zerocloud-{SERVICE}",
        description="ZeroCloud scheduler: durable lease timers and sweep jobs. "
        "Settings come from ZC_* variables and config.yml (ZC_CONFIG).",
    )
    commands = parser.add_subparsers(dest="command", metavar="{serve,migrate}")
    commands.add_parser("serve", help="the service (the default): store lease schedules, fire timers, serve HTTP")
    commands.add_parser("migrate", help="create or upgrade the scheduler's tables (scheduler_*), then exit")
    return parser


def run(argv: Sequence[str] | None = None) -> None:
    """``zerocloud-scheduler``: serve in the foreground (SIGTERM drains it); refuses a
    database whose scheduler tables are not migrated. ``migrate`` migrates them."""
    command = _parser().parse_args(argv).command or "serve"
    settings = load_settings(SchedulerSettings, SERVICE)
    if command == "migrate":
        from sqlalchemy.exc import SQLAlchemyError

        configure_logging(SERVICE, settings.log_level)
        try:
            revision = asyncio.run(database.migrate(settings.database_url))
        except (OSError, asyncpg.PostgresError, SQLAlchemyError) as error:
            _stop(f"cannot migrate the database: {type(error).__name__}: {error}")
        print(f"zerocloud-{SERVICE}: the scheduler's tables are at migration {revision}")
        return
    try:
        asyncio.run(database.check_schema(settings.database_url))
    except database.DatabaseNotMigrated as error:
        _stop(str(error))
    except (OSError, asyncpg.PostgresError) as error:
        _stop(f"cannot reach the database: {type(error).__name__}: {error}")
    serve(create_app(settings), settings, SERVICE)


def _stop(line: str) -> NoReturn:
    print(f"zerocloud-{SERVICE}: {line}", file=sys.stderr)
    raise SystemExit(2)
