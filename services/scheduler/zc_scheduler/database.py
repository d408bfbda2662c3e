"""PostgreSQL for the scheduler: an asyncpg pool over its own tables (``scheduler_*``,
which may live in the api's database), and Alembic migrations with their own version
table, applied by ``zerocloud-scheduler migrate`` and checked before serving."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "scheduler_alembic_version"

# The migration this code needs. Kept here (a test holds it equal to Alembic's head) so
# the serving process checks the schema without loading Alembic and SQLAlchemy (~20 MB).
SCHEMA_REVISION = "0001"


class DatabaseNotMigrated(RuntimeError):
    """The scheduler's tables are missing or at another migration than this code's."""


def plain_url(url: str) -> str:
    """Any postgresql URL, as asyncpg wants it."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    raise ValueError("not a postgresql:// URL")


async def create_pool(url: str, *, max_size: int = 8) -> asyncpg.Pool:
    """A small pool: batches in flight (up to 4), the firing loop, the LeaseChanged handler, HTTP."""
    return await asyncpg.create_pool(plain_url(url), min_size=1, max_size=max_size, command_timeout=60)


async def current_revision(connection: asyncpg.Connection | asyncpg.Pool) -> str | None:
    if not await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", VERSION_TABLE):
        return None
    revision = await connection.fetchval(f"SELECT version_num FROM {VERSION_TABLE}")
    return None if revision is None else str(revision)


async def ensure_migrated(connection: asyncpg.Connection | asyncpg.Pool) -> None:
    """Refuse to serve on a database whose scheduler tables are not this code's."""
    revision = await current_revision(connection)
    if revision != SCHEMA_REVISION:
        raise DatabaseNotMigrated(
            f"the database's scheduler tables are at migration {revision or 'none'} but this code needs "
            f"{SCHEMA_REVISION}: run `zerocloud-scheduler migrate` first"
        )


async def check_schema(url: str) -> None:
    """``ensure_migrated`` over a connection of its own (before the process serves)."""
    connection = await asyncpg.connect(plain_url(url), timeout=10)
    try:
        await ensure_migrated(connection)
    finally:
        await connection.close()


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", "postgresql+asyncpg://" + plain_url(url)[len("postgresql://"):])
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("postgresql://unused/unused")).get_current_head()
    assert head is not None
    return str(head)


async def migrate(url: str, revision: str = "head") -> str:
    """Bring the scheduler's tables to ``revision`` and return where they are. Alembic
    is synchronous (and runs its own event loop): it runs in a thread."""
    from alembic import command

    config = alembic_config(url)
    # '%' is ConfigParser's interpolation character; a password may contain it.
    config.set_main_option("sqlalchemy.url", str(config.get_main_option("sqlalchemy.url")).replace("%", "%%"))
    await asyncio.to_thread(command.upgrade, config, revision)
    connection = await asyncpg.connect(plain_url(url), timeout=10)
    try:
        return await current_revision(connection) or "none"
    finally:
        await connection.close()
