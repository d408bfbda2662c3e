"""Fixtures every test can use: a fresh PostgreSQL database, a RabbitMQ exchange of its
own, a moto server, and the bus (run against both implementations).

PostgreSQL and RabbitMQ are the ones on 127.0.0.1 (`make services` starts them); only
when a server does not answer and a Docker engine does, a testcontainer stands in."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
from aio_pika.exceptions import ChannelClosed, ChannelNotFoundEntity

from zc_common.bus import Bus
from zc_common.bus.memory import InProcessBus
from zc_common.bus.rabbit import RabbitBus
from zc_common.bus.topology import QUEUES

from tests.support.ports import free_port

LOCAL_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


# --- AWS ------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def aws_test_credentials() -> Iterator[None]:
    """Fake credentials for the whole run, so no test can ever reach a real AWS account."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        yield


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server (the AWS emulator) for the whole run."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with log_path.open("wb") as log:
        # Output goes to a file: an unread pipe would fill up and stall the server.
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_moto(url, server, log_path)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_for_moto(url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"moto server exited with {server.returncode}:\n{log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/moto-api/", timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"moto server at {url} did not answer within 30s:\n{log_path.read_text()[-2000:]}")


@pytest.fixture
def moto(moto_url: str) -> str:
    """The moto server, emptied of everything earlier tests created."""
    httpx.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    return moto_url


# --- PostgreSQL -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of the server's maintenance database `postgres` (to create databases from)."""
    if _answers(5432):
        yield LOCAL_POSTGRES_URL
        return
    if not _docker_answers():
        pytest.fail("PostgreSQL does not answer on 127.0.0.1:5432 and no Docker engine answers: run `make services`")
    from testcontainers.community.postgres import PostgresContainer

    with PostgresContainer(
        "postgres:16-alpine", username="postgres", password="postgres", dbname="postgres", driver=None
    ) as container:
        yield container.get_connection_url()


def _with_database(server_url: str, name: str) -> str:
    return server_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A database of its own for this run, migrated to the api's head revision."""
    try:
        from zc_api.database import migrate
    except ImportError as error:
        pytest.fail(f"the api's migrations are not importable (zc_api.database.migrate): {error}")
    name = f"zc_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _with_database(postgres_server_url, name)
    try:
        await migrate(url)
        yield url
    finally:
        admin = await asyncpg.connect(postgres_server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


# Empties the public tables that have rows and rewinds the sequences that were used, in
# one round trip. A TRUNCATE of every table (~150 ms: new files for each table and index)
# was the largest cost of most tests; a DELETE of the few tables a test wrote takes a few
# ms. Foreign keys are not checked meanwhile (replica role): every row of them goes.
_EMPTY_DATABASE = """
DO $$
DECLARE
    name text;
    used record;
    has_rows boolean;
BEGIN
    SET LOCAL session_replication_role = replica;
    FOR name IN
        SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE '%alembic_version'
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM public.%I)', name) INTO has_rows;
        IF has_rows THEN
            EXECUTE format('DELETE FROM public.%I', name);
        END IF;
    END LOOP;
    FOR used IN
        SELECT sequencename, start_value FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL
    LOOP
        PERFORM setval(format('public.%I', used.sequencename), used.start_value, false);
    END LOOP;
END
$$
"""


@pytest.fixture
async def clean_database(database_url: str) -> str:
    """The run's database with every table emptied (identities restarted): the api's and
    the scheduler's, which may share it. Only the migration bookkeeping stays."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(_EMPTY_DATABASE)
    finally:
        await connection.close()
    return database_url


# --- RabbitMQ -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    if _answers(5672):
        yield LOCAL_AMQP_URL
        return
    if not _docker_answers():
        pytest.fail("RabbitMQ does not answer on 127.0.0.1:5672 and no Docker engine answers: run `make services`")
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    # testcontainers' own RabbitMqContainer needs pika; a plain container does the job.
    with DockerContainer("rabbitmq:3-alpine").with_exposed_ports(5672) as container:
        wait_for_logs(container, "Server startup complete", timeout=120)
        host, port = container.get_container_host_ip(), container.get_exposed_port(5672)
        yield f"amqp://guest:guest@{host}:{port}/"


@pytest.fixture
async def exchange(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """An exchange name of this test's own, so tests never see each other's queues.

    Afterwards the exchange, its dead-letter exchange and the queues of every RabbitBus
    started on it during the test (however it was built) are deleted."""
    name = f"zc-test-{secrets.token_hex(6)}"
    queues: set[str] = set()
    start = RabbitBus.start

    async def start_and_remember_queues(bus: RabbitBus) -> None:
        if bus.exchange_name == name:
            queues.update(sub.queue for sub in bus.subscriptions)
            if bus.declare_topology:
                queues.update(queue.name for queue in QUEUES)
        await start(bus)

    monkeypatch.setattr(RabbitBus, "start", start_and_remember_queues)
    yield name
    connection = await aio_pika.connect(amqp_url)
    try:
        for queue in sorted(queues):
            for suffix in ("", ".retry", ".dead"):
                await _delete_if_present(connection, "queue", f"{name}.{queue}{suffix}")
        for exchange_name in (name, f"{name}.dead"):
            await _delete_if_present(connection, "exchange", exchange_name)
    finally:
        await connection.close()


async def _delete_if_present(connection: aio_pika.abc.AbstractConnection, kind: str, name: str) -> None:
    # A passive declare of something missing closes the channel: one channel per object.
    channel = await connection.channel()
    try:
        if kind == "queue":
            await channel.get_queue(name, ensure=True)
            await channel.queue_delete(name)
        else:
            await channel.get_exchange(name, ensure=True)
            await channel.exchange_delete(name)
    except (ChannelNotFoundEntity, ChannelClosed):
        pass
    finally:
        if not channel.is_closed:
            await channel.close()


@pytest.fixture
async def rabbit_bus(amqp_url: str, exchange: str) -> AsyncIterator[Callable[..., RabbitBus]]:
    """Build RabbitMQ buses on this test's exchange; closed and cleaned up afterwards.

    Their connections are named after the exchange (``?name=``) so a test can find and
    drop exactly its own connections on the broker."""
    buses: list[RabbitBus] = []
    separator = "&" if "?" in amqp_url else "?"

    def build(url: str | None = None, **options: Any) -> RabbitBus:
        """``url`` replaces the broker's (a proxy in front of it, say)."""
        bus = RabbitBus(url or f"{amqp_url}{separator}name={exchange}", exchange, **options)
        buses.append(bus)
        return bus

    yield build
    for bus in buses:
        await bus.close()


# --- the bus, both ways ---------------------------------------------------------------


@pytest.fixture(params=["memory", "rabbitmq"])
def bus_factory(request: pytest.FixtureRequest) -> Callable[..., Bus]:
    """Builds buses of one implementation; RabbitMQ is only needed for the rabbitmq one."""
    if request.param == "memory":
        return lambda **options: InProcessBus()
    # Looked up lazily so the in-process variant runs without a broker.
    factory: Callable[..., Bus] = request.getfixturevalue("rabbit_bus")
    return factory


@pytest.fixture
async def bus(bus_factory: Callable[..., Bus]) -> AsyncIterator[Bus]:
    """An unstarted bus: subscribe, then start. Closed after the test."""
    built = bus_factory()
    yield built
    await built.close()


@pytest.fixture(scope="session")
def local_rabbitmqctl(amqp_url: str) -> str:
    """rabbitmqctl for the broker the tests use, or skip (it is absent, or the broker is
    a container)."""
    path = shutil.which("rabbitmqctl")
    if path is None or amqp_url != LOCAL_AMQP_URL:
        pytest.skip("needs rabbitmqctl for the local broker")
    return path

