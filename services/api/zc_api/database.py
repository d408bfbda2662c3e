"""PostgreSQL access for the api: the engine, sessions that commit at the edge, and
Alembic migrations (applied by `zerocloud-api migrate`, checked at start)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def is_unstorable(error: BaseException) -> bool:
    """A value PostgreSQL or its driver refused as data (class 22: out of range, too
    long, U+0000, a bad time), not a broken connection or a bug in a statement."""
    seen: BaseException | None = error
    for _ in range(5):
        if seen is None:
            return False
        if isinstance(seen, (asyncpg.exceptions.DataError, asyncpg.exceptions._base.DataError)):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__
    return False


class DatabaseNotMigrated(RuntimeError):
    pass


def async_url(url: str) -> str:
    """Any postgresql URL, as SQLAlchemy's asyncpg dialect wants it."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise ValueError("not a postgresql:// URL")


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(async_url(url), pool_size=pool_size, max_overflow=10, pool_pre_ping=True)


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@contextlib.asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work outside a request: commit when the block ends, roll back on error."""
    async with sessions() as session:
        async with session.begin():
            yield session


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return config


async def migrate(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``. Alembic is synchronous: run it in a thread."""
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Refuse to serve on a database whose schema is not the code's."""
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()

    def current(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        revision = await connection.run_sync(current)
    if revision != head:
        raise DatabaseNotMigrated(
            f"the database is at migration {revision or 'none'} but this code needs {head}: "
            "run `zerocloud-api migrate` first"
        )
