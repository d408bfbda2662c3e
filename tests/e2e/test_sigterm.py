"""SIGTERM, as an orchestrator sends it, to each service run as an operator runs it: its
console script in a process of its own, settings from ZC_* variables, the test's
PostgreSQL, RabbitMQ and moto. Work keeps arriving; SIGTERM lands mid-batch; the
process exits 0 within its grace period; a second instance does the rest. Then every
unit of work is done as the service's contract says (exactly once where it promises
that, at least once for mail) and nothing sits in a dead-letter queue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest

from zc_common.aws import AwsAccess
from zc_common.bus import topology
from zc_common.bus.rabbit import RabbitBus
from zc_common.cloudevents import state_change_event
from zc_common.messages import (
    InstanceSnapshot,
    InstanceState,
    LeaseChange,
    LeaseExpired,
    Message,
    ResourceChange,
    decode,
    utcnow,
)
from zc_common.service import SHUTDOWN_GRACE

from tests.e2e.conftest import eventually
from tests.support.aws_doubles import CUSTOMER, REGION, CustomerAccount
from tests.support.credentials import API_CREDENTIALS
from tests.support.ports import free_port
from zc_cli.local_server import serving

BIN = Path(sys.executable).parent
# What a stopping service may take: the grace its lifespan gives the work in hand, plus
# closing its connections. Nothing is stuck here, so it takes a second or two.
GRACE = SHUTDOWN_GRACE + 10
ADMIN_TOKEN = f"zc_{secrets.token_urlsafe(32)}"

T = TypeVar("T")

pytestmark = pytest.mark.timeout(120)


class ServiceProcess:
    """One service in its own process: started from its console script, ready once its
    /readyz answers 200, stopped with SIGTERM."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.port = int(env["ZC_HTTP_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Output to a file: an unread pipe would fill up and stall the service.
        with self.log.open("ab") as log:
            return subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    async def start(self) -> ServiceProcess:
        self.process = self._spawn()
        deadline = time.monotonic() + 40
        async with httpx.AsyncClient(timeout=5) as http:
            while True:
                assert self.process.poll() is None, f"{self.name} exited at start:\n{self.tail()}"
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return self
                assert time.monotonic() < deadline, f"{self.name} never became ready:\n{self.tail()}"
                await asyncio.sleep(0.1)

    async def sigterm(self) -> float:
        """Send SIGTERM; return the seconds until the process exited, which must be 0."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self.process.wait, GRACE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"{self.name} still running {GRACE:.0f}s after SIGTERM:\n{self.tail()}")
        seconds = time.monotonic() - started
        assert code == 0, f"{self.name} exited {code} after SIGTERM:\n{self.tail()}"
        print(f"\n{self.name}: exited 0 {seconds:.2f}s after SIGTERM")
        return seconds

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


Launch = Callable[..., ServiceProcess]


@pytest.fixture
async def launch(tmp_path: Path, amqp_url: str, exchange: str, moto: str) -> AsyncIterator[Launch]:
    """Build a service process on this test's broker exchange and moto; keyword arguments
    become ZC_<NAME> settings. Whatever is still running at the end is killed."""
    built: list[ServiceProcess] = []
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ZC_")}

    def build(name: str, *args: str, **settings: Any) -> ServiceProcess:
        env = {
            **inherited, "ZC_AMQP_URL": amqp_url, "ZC_AMQP_EXCHANGE": exchange, "ZC_AWS_ENDPOINT_URL": moto,
            "ZC_HTTP_HOST": "127.0.0.1", "ZC_HTTP_PORT": str(free_port()), "ZC_LOG_LEVEL": "INFO",
            "ZC_INTERNAL_HOST": "127.0.0.1", "ZC_INTERNAL_PORT": str(free_port()),  # the api's; others ignore it
            **{f"ZC_{key.upper()}": str(value) for key, value in settings.items()},
        }
        log = tmp_path / f"{name}-{len(built) + 1}.log"
        process = ServiceProcess(name, [str(BIN / f"zerocloud-{name}"), *args], env, log)
        built.append(process)
        return process

    yield build
    for process in built:
        process.kill()


@pytest.fixture
async def wire(rabbit_bus: Callable[..., RabbitBus]) -> RabbitBus:
    """The test's own connection to the broker: it declares every service's queues (which
    the exchange fixture then removes), publishes work and reads dead letters."""
    bus = rabbit_bus()
    await bus.start()
    return bus



async def feed(chunks: Sequence[Sequence[T]], send: Callable[[Sequence[T]], Awaitable[object]], pause: float) -> None:
    """Work arriving over time, so that some is still to come when SIGTERM lands."""
    for chunk in chunks:
        await send(chunk)
        await asyncio.sleep(pause)


def chunked(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


async def no_dead_letters(wire: RabbitBus, *queues: str) -> None:
    for queue in queues:
        assert await wire.dead_letters(queue) == [], f"dead letters on {queue}"


async def scalar(database_url: str, query: str) -> Any:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetchval(query)
    finally:
        await connection.close()


def at_least(count: int, probe: Callable[[], Awaitable[int]]) -> Callable[[], Awaitable[bool]]:
    async def enough() -> bool:
        return await probe() >= count

    return enough


# --- api: ResourceChange in, leases out ------------------------------------------------------


async def test_api_finishes_its_batch_and_flushes_its_outbox(
    launch: Launch, wire: RabbitBus, clean_database: str
) -> None:
    settings = {
        "database_url": clean_database, **API_CREDENTIALS, "bootstrap_admin_token": ADMIN_TOKEN,
        "ingest_batch_size": 50,
    }
    first = await launch("api", "serve", **settings).start()
    await onboard(f"http://127.0.0.1:{first.port}")
    changes = [resource_change(f"i-{n:017x}") for n in range(2000)]
    feeding = asyncio.create_task(feed(chunked(changes, 100), lambda chunk: wire.publish(*chunk), 0.1))
    leases = lambda: scalar(clean_database, "SELECT count(*) FROM lease")  # noqa: E731

    await eventually(at_least(200, leases))
    await first.sigterm()

    assert await leases() < len(changes), "SIGTERM came after all the work: it proves nothing"
    unpublished = "SELECT count(*) FROM outbox WHERE published_at IS NULL"
    assert await scalar(clean_database, unpublished) == 0, "the stopped api left messages in its outbox"
    await feeding
    second = await launch("api", "serve", **settings).start()
    await eventually(at_least(len(changes), leases), timeout=30)
    await asyncio.sleep(0.5)  # a redelivered batch would show as a second lease by now
    per_instance = await scalar(
        clean_database, "SELECT max(n) FROM (SELECT count(*) AS n FROM lease GROUP BY resource_id) AS per_resource"
    )
    assert (await leases(), per_instance) == (len(changes), 1), "every lease created once"
    await eventually(lambda: _zero(clean_database, unpublished))
    await second.sigterm()
    await no_dead_letters(wire, "api")


async def onboard(api_url: str) -> None:
    """An account and its AWS account (CUSTOMER), through the REST API as an admin does."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=30) as http:
        account = await http.post(
            "/api/v1/accounts", json={"lease_expires_in": 3, "lease_expires_in_units": "days", "name": "BigDB"}
        )
        assert account.status_code == 201, account.text
        cloud = await http.post(
            f"/api/v1/accounts/{account.json()['id']}/cloudaccounts",
            json={"name": "dev", "cloudprovider": "AWS", "upstream_account_id": CUSTOMER,
                  "assume_role_arn": f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud"},
        )
        assert cloud.status_code == 201, cloud.text


def resource_change(instance_id: str) -> ResourceChange:
    now = utcnow()
    return ResourceChange(
        event_name="EC2 Instance State-change Notification", event_time=now, event_source="aws.ec2",
        aws_region=REGION, recipient_account_id=CUSTOMER, instance_id=instance_id, observed_at=now, gone=False,
        instance=InstanceSnapshot(instance_id=instance_id, instance_type="t3.micro", state=InstanceState.running,
                                  tags={}, launch_time=now),
    )


async def _zero(database_url: str, query: str) -> bool:
    return bool(await scalar(database_url, query) == 0)


# --- ingestor: SQS events in, ResourceChange out ----------------------------------------------


async def test_ingestor_leaves_no_event_behind(launch: Launch, rabbit_bus: Callable[..., RabbitBus], moto: str) -> None:
    from tests.ingestor.factories import SERVICE_TOKEN as INGESTOR_TOKEN
    from tests.ingestor.factories import EventQueues, FakeApi

    instances = await CustomerAccount(moto).launch(100)
    aws = AwsAccess(endpoint_url=moto, session_name="sigterm-test")
    async with aws.client("sqs") as sqs:
        url = (await sqs.create_queue(QueueName="sigterm-events"))["QueueUrl"]
        dead_url = (await sqs.create_queue(QueueName="sigterm-events-dead"))["QueueUrl"]
    queues = EventQueues(aws, url, dead_url)
    published: list[str] = []

    async def record(messages: Sequence[Message]) -> None:
        published.extend(m.instance_id for m in messages if isinstance(m, ResourceChange))

    wire = rabbit_bus()
    wire.subscribe(topology.API, record, batch_size=100)
    await wire.start()

    async def send(batch: Sequence[str]) -> None:
        events = [state_change_event(account_id=CUSTOMER, region=REGION, instance_id=i, state="running") for i in batch]
        async with aws.client("sqs") as sqs:
            answer = await sqs.send_message_batch(
                QueueUrl=url, Entries=[{"Id": str(n), "MessageBody": json.dumps(e)} for n, e in enumerate(events)]
            )
        assert not answer.get("Failed")

    async with serving(FakeApi().app) as api_url:
        settings = {
            "api_url": api_url, "service_token": INGESTOR_TOKEN, "event_queue_urls": url,
            "event_dead_letter_queue_url": dead_url, "poll_wait_seconds": 1, "visibility_timeout": 5,
        }
        first = await launch("ingestor", **settings).start()
        feeding = asyncio.create_task(feed(chunked(instances, 10), send, 0.2))
        await eventually(lambda: asyncio.sleep(0, len(set(published)) >= 20))
        await first.sigterm()

        assert len(set(published)) < len(instances), "SIGTERM came after all the work: it proves nothing"
        await feeding
        second = await launch("ingestor", **settings).start()
        # Events the stopped instance had received but not finished come back after the
        # visibility timeout.
        await eventually(lambda: asyncio.sleep(0, set(published) == set(instances)), timeout=30)
        await eventually(lambda: _drained(queues), timeout=15)
        await second.sigterm()

    assert await queues.dead_letters() == [], "an event was dead-lettered"
    await no_dead_letters(wire, "api", "ingestor")


async def _drained(queues: Any) -> bool:
    return bool(await queues.waiting() == 0)


# --- scheduler: due timers in, LeaseExpired out -------------------------------------------------


async def test_scheduler_fires_every_timer_once(launch: Launch, wire: RabbitBus, clean_database: str) -> None:
    from tests.scheduler.factories import lease_changed, now
    from zc_scheduler.database import migrate
    from zc_scheduler.timers.plan import timers_for
    from zc_scheduler.timers.repository import insert_timers

    await migrate(clean_database)
    lease_ids = list(range(1, 5001))
    pending = lambda: scalar(clean_database, "SELECT count(*) FROM scheduler_timer")  # noqa: E731

    async def store_due(batch: Sequence[int]) -> None:
        due = now()
        timers = [t for lease_id in batch for t in timers_for(lease_changed(lease_id, expire_at=due))]
        connection = await asyncpg.connect(clean_database)
        try:
            await insert_timers(connection, timers)
        finally:
            await connection.close()

    settings = {"database_url": clean_database, "sweep_interval": 0, "fire_batch_size": 100}
    first = await launch("scheduler", **settings).start()
    feeding = asyncio.create_task(feed(chunked(lease_ids, 250), store_due, 0.1))
    await eventually(at_least(500, lambda: queued(wire, "reaper")), interval=0.05)
    await first.sigterm()

    await feeding
    assert await pending() > 0, "SIGTERM came after all the work: it proves nothing"
    second = await launch("scheduler", **settings).start()
    await eventually(lambda: _zero(clean_database, "SELECT count(*) FROM scheduler_timer"), timeout=30)
    await second.sigterm()

    assert await queued(wire, "reaper") == len(lease_ids), "each timer fired once"
    fired = await drain(wire, "reaper", len(lease_ids))
    assert sorted(m.lease.lease_id for m in fired if isinstance(m, LeaseExpired)) == lease_ids
    await no_dead_letters(wire, "scheduler")


async def queued(wire: RabbitBus, queue: str) -> int:
    """Messages waiting on a service's queue."""
    assert wire._connection is not None
    async with wire._connection.channel() as channel:
        declared = await channel.declare_queue(wire.queue_name(queue), passive=True)
        return int(declared.declaration_result.message_count or 0)


async def drain(wire: RabbitBus, queue: str, count: int) -> list[Message]:
    """Take ``count`` messages off a service's queue (as that service would)."""
    assert wire._connection is not None
    taken: list[Message] = []
    async with wire._connection.channel() as channel:
        declared = await channel.declare_queue(wire.queue_name(queue), passive=True)
        async with declared.iterator() as messages:
            async for incoming in messages:
                async with incoming.process():
                    taken.append(decode(incoming.body, incoming.type))
                if len(taken) == count:
                    break
    return taken


# --- notifier: lease news in, mail out ----------------------------------------------------------


async def test_notifier_mails_everyone_at_least_once(launch: Launch, wire: RabbitBus) -> None:
    from tests.notifier.factories import SERVICE_TOKEN as NOTIFIER_TOKEN
    from tests.notifier.factories import FakeApi, SmtpSink, lease_changed, lease_snapshot

    news = [lease_changed(LeaseChange.created, lease_snapshot(owner_email=f"dev{n}@bigdb.example")) for n in range(200)]
    owners = {m.lease.owner_email for m in news}
    sink = SmtpSink()
    sink.start()
    fake_api = FakeApi()
    mailed = lambda: {r for mail in sink.mails for r in mail.rcpt_tos}  # noqa: E731
    try:
        async with serving(fake_api.app) as api_url:
            settings = {
                "api_url": api_url, "service_token": NOTIFIER_TOKEN, "smtp_host": "127.0.0.1", "smtp_port": sink.port,
                "digest_window": 0.3, "send_retry_delay": 0.1, "redelivery_delay": 0.2,
            }
            first = await launch("notifier", **settings).start()
            feeding = asyncio.create_task(feed(chunked(news, 10), lambda chunk: wire.publish(*chunk), 0.1))
            await eventually(lambda: asyncio.sleep(0, len(mailed()) >= 20))
            await first.sigterm()

            assert len(mailed()) < len(owners), "SIGTERM came after all the work: it proves nothing"
            await feeding
            second = await launch("notifier", **settings).start()
            await eventually(lambda: asyncio.sleep(0, mailed() == owners), timeout=30)
            await eventually(lambda: asyncio.sleep(0, len(fake_api.sent) == len(news)))
            await second.sigterm()
    finally:
        sink.stop()

    assert fake_api.sent == {f"{m.message_id}:{m.lease.owner_email}" for m in news}
    print(f"notifier: {len(sink.mails)} mails for {len(owners)} owners (at least once)")
    await no_dead_letters(wire, "notifier")


# --- reaper: LeaseExpired in, instances stopped ----------------------------------------------


async def test_reaper_stops_every_instance_once(launch: Launch, wire: RabbitBus, moto: str) -> None:
    from tests.reaper.factories import SERVICE_TOKEN as REAPER_TOKEN
    from tests.reaper.factories import FakeApi

    customer = CustomerAccount(moto)
    instances = await customer.launch(60)
    fake_api = FakeApi()
    leases = [fake_api.lease(instance_id) for instance_id in instances]
    expired = fake_api.expired(*leases)
    async with serving(fake_api.app) as api_url:
        settings = {"api_url": api_url, "service_token": REAPER_TOKEN, "batch_wait": 0.1, "aws_retry_delay": 0.05}
        first = await launch("reaper", **settings).start()
        feeding = asyncio.create_task(feed(chunked(expired, 6), lambda chunk: wire.publish(*chunk), 0.2))
        await eventually(lambda: asyncio.sleep(0, len(fake_api.reported) >= 6))
        await first.sigterm()

        assert len(fake_api.reported) < len(leases), "SIGTERM came after all the work: it proves nothing"
        await feeding
        second = await launch("reaper", **settings).start()
        await eventually(lambda: asyncio.sleep(0, len(fake_api.reported) == len(leases)), timeout=30)
        await second.sigterm()

    assert set((await customer.states(*instances)).values()) == {"stopped"}
    assert all(len(fake_api.outcomes_of(lease)) == 1 for lease in leases), "each lease reaped once"
    await no_dead_letters(wire, "reaper")
