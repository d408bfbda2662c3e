"""Alembic environment of the scheduler's tables. They may share a database with the
api: the scheduler's revisions are recorded in their own version table and touch only
tables named ``scheduler_*``. Revisions are written by hand (the runtime uses plain SQL
over asyncpg, so there is no model metadata to compare against)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from zc_scheduler.database import VERSION_TABLE


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return type_ != "table" or bool(name and name.startswith("scheduler_"))


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=None, version_table=VERSION_TABLE, include_name=include_name
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_async_engine(context.config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_async_migrations())
