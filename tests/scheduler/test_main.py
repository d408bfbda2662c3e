"""The process: the app's lifespan wires a working scheduler with health and timer
routes; `zerocloud-scheduler` serves (bare, as docker-compose runs it) and refuses a
database whose scheduler tables are not migrated; `zerocloud-scheduler migrate`
creates them beside the api's tables without touching the api's migrations."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from tests.scheduler.factories import lease_changed, seconds_from_now, settings
from tests.support.ports import free_port
from tests.support.waiting import eventually
from zc_scheduler.database import SCHEMA_REVISION, DatabaseNotMigrated, head_revision
from zc_scheduler.main import create_app

SCHEDULER = str(Path(sys.executable).with_name("zerocloud-scheduler"))


def probe(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://scheduler")


@pytest.fixture
async def empty_database(postgres_server_url: str) -> AsyncIterator[str]:
    """A database of its own with nothing in it."""
    name = f"zc_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield postgres_server_url.rsplit("/", 1)[0] + "/" + name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def command_env(database_url: str, **more: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ZC_")}
    return {**env, "ZC_DATABASE_URL": database_url, "ZC_AMQP_URL": "memory://", "ZC_BUS": "memory", **more}


async def test_pending_timers_are_listed_soonest_first_with_their_count(scheduler_db: str) -> None:
    app = create_app(settings(scheduler_db))
    soon = seconds_from_now(600)

    async with app.router.lifespan_context(app), probe(app) as http:
        await app.state.scheduler.schedule([
            lease_changed(1, 2, expire_at=soon + timedelta(minutes=30), warn_at=[soon]),
            lease_changed(2, 1, expire_at=soon + timedelta(minutes=10)),
            lease_changed(3, 5, expire_at=soon + timedelta(minutes=20)),
        ])
        page = await http.get("/timers", params={"limit": 2})
        one_lease = await http.get("/timers", params={"lease_id": 1})
        too_many = await http.get("/timers", params={"limit": 100_000})

    assert page.status_code == 200
    assert page.json()["count"] == 4
    assert page.json()["limit"] == 2
    assert [(t["kind"], t["lease_id"], t["lease_version"]) for t in page.json()["data"]] == [
        ("warning", 1, 2), ("expiry", 2, 1),
    ]
    assert [t["kind"] for t in one_lease.json()["data"]] == ["warning", "expiry"]
    assert one_lease.json()["count"] == 2
    assert too_many.status_code == 422


async def test_ready_when_database_and_bus_answer_and_not_once_the_database_is_gone(scheduler_db: str) -> None:
    app = create_app(settings(scheduler_db))

    async with app.router.lifespan_context(app), probe(app) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        app.state.scheduler.pool.terminate()
        gone = await http.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": True, "bus": True}
    assert gone.status_code == 503
    assert gone.json()["checks"]["database"] is False


async def test_app_refuses_to_start_on_a_database_without_the_scheduler_tables(empty_database: str) -> None:
    app = create_app(settings(empty_database))

    with pytest.raises(DatabaseNotMigrated, match="zerocloud-scheduler migrate"):
        async with app.router.lifespan_context(app):
            pass


def test_the_revision_checked_at_start_is_the_migrations_head() -> None:
    assert SCHEMA_REVISION == head_revision()


async def test_serving_refuses_an_unmigrated_database_with_one_line(empty_database: str) -> None:
    done = await asyncio.to_thread(
        subprocess.run, [SCHEDULER], env=command_env(empty_database), capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("zerocloud-scheduler: ")
    assert "migration none" in line and "zerocloud-scheduler migrate" in line


async def test_migrate_then_the_bare_command_serves(empty_database: str) -> None:
    migrated = await asyncio.to_thread(
        subprocess.run, [SCHEDULER, "migrate"], env=command_env(empty_database),
        capture_output=True, text=True, timeout=120,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert f"migration {SCHEMA_REVISION}" in migrated.stdout
    connection = await asyncpg.connect(empty_database)
    try:
        tables = {r["tablename"] for r in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        revision = await connection.fetchval("SELECT version_num FROM scheduler_alembic_version")
    finally:
        await connection.close()
    # Its own version table: the api's `alembic_version` is not created (nor, elsewhere, moved).
    assert tables == {"scheduler_lease", "scheduler_timer", "scheduler_alembic_version"}
    assert revision == SCHEMA_REVISION

    port = free_port()
    server = await asyncio.to_thread(
        subprocess.Popen, [SCHEDULER],
        env=command_env(empty_database, ZC_HTTP_PORT=str(port), ZC_SWEEP_INTERVAL="30"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def answers() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(answers, timeout=30, interval=0.2)
            timers = (await http.get("/timers")).json()
        assert [t["kind"] for t in timers["data"]] == ["sweep"]
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(server.communicate, timeout=30)
    # uvicorn drains, then re-raises the SIGTERM it caught.
    assert server.returncode in (0, -signal.SIGTERM), stderr[-2000:]
    assert b"Application shutdown complete" in stderr
