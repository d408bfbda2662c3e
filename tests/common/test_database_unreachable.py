"""database_unreachable tells an outage (retry later, never dead-letter) from a bad
statement or value (a bug or bad data: retried a few times, then dead-lettered), on the
errors the real drivers raise."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from zc_common.errors import database_unreachable

from tests.support.ports import free_port


async def _error_of(url: str, statement: str) -> BaseException:
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"), pool_size=1)
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    except Exception as error:  # noqa: BLE001 - the error is what is tested
        return error
    finally:
        await engine.dispose()
    raise AssertionError("the statement did not fail")


async def test_a_server_that_is_not_there_is_an_outage() -> None:
    error = await _error_of(f"postgresql://postgres@127.0.0.1:{free_port()}/test", "SELECT 1")
    assert database_unreachable(error)
    with pytest.raises(OSError) as raw:
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{free_port()}/test")
    assert database_unreachable(raw.value)


async def test_a_connection_the_server_ends_mid_statement_is_an_outage(postgres_server_url: str) -> None:
    victim = await asyncpg.connect(f"{postgres_server_url}")
    killer = await asyncpg.connect(f"{postgres_server_url}")
    try:
        running = asyncio.create_task(victim.execute("SELECT pg_sleep(10)"))
        await asyncio.sleep(0.3)
        await killer.execute("SELECT pg_terminate_backend($1)", victim.get_server_pid())
        with pytest.raises(Exception) as failure:  # noqa: PT011 - which class asyncpg picks is the point
            await running
        assert database_unreachable(failure.value), repr(failure.value)
        # And the next statement on it, once asyncpg knows it is closed.
        with pytest.raises(Exception) as after:  # noqa: PT011
            await victim.execute("SELECT 1")
        assert database_unreachable(after.value), repr(after.value)
    finally:
        await killer.close()
        victim.terminate()


@pytest.mark.parametrize("statement", ["SELEC 1", "SELECT 1/0", "SELECT 'x'::int", "SELECT * FROM no_such_table"])
async def test_a_bad_statement_or_value_is_not_an_outage(postgres_server_url: str, statement: str) -> None:
    assert not database_unreachable(await _error_of(postgres_server_url, statement))
