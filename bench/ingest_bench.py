"""Ingestion throughput through a real RabbitMQ: the bare broker (publish with confirms,
consume with a no-op handler) against the real ingest handler (apply_changes, commit,
ack, with the outbox relay publishing LeaseChanged), same messages, same batch
settings. Prints each run, the medians and their ratio.

    /tmp/zcvenv/bin/python bench/ingest_bench.py [--messages 20000] [--repeat 3]

By default the ResourceChange messages are published from a separate process, as the
ingestor would (``--publisher inline`` publishes from the api's own event loop).
Creates a scratch database and one exchange per run, and removes them at the end."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import resource
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from multiprocessing.connection import Connection
from typing import Any

import aio_pika
from aio_pika.exceptions import ChannelClosed, ChannelNotFoundEntity
from sqlalchemy.ext.asyncio import create_async_engine

from zc_common.aws import AwsAccess
from zc_common.bus import topology
from zc_common.bus.rabbit import RabbitBus
from zc_common.messages import InstanceSnapshot, InstanceState, ResourceChange
from zc_common.settings import ApiSettings

from zc_api.database import async_url, create_engine, migrate, session_maker, transaction
from zc_api.ingest.handlers import subscribe
from zc_api.models import Account, AccountPolicy, CloudAccount, User
from zc_api.outbox.relay import run_relay
from zc_api.runtime import ApiRuntime

UPSTREAM = "210987654321"
OWNERS = 50
SINK = "sink"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", "-n", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=500, help="the api's ingest_batch_size")
    parser.add_argument("--prefetch", type=int, default=2000, help="consumer prefetch (at least 2 batches)")
    parser.add_argument("--publish-chunk", type=int, default=500, help="messages per confirmed publish")
    parser.add_argument("--publishers", type=int, default=4, help="chunks published concurrently")
    parser.add_argument("--publisher", choices=["process", "inline"], default="process")
    parser.add_argument("--no-relay", action="store_true", help="do not run the outbox relay during (b)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    return parser.parse_args(argv)


# --- setup ---------------------------------------------------------------------------------


async def _as_admin(server_url: str, statement: str) -> None:
    engine = create_async_engine(async_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    name = f"zc_ingest_bench_{secrets.token_hex(6)}"
    await _as_admin(server_url, f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + "/" + name
    try:
        await migrate(url)
        yield url
    finally:
        await _as_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def make_tenant(runtime: ApiRuntime) -> None:
    async with transaction(runtime.sessions) as session:
        account = Account(name="BenchCorp")
        session.add(account)
        await session.flush()
        assert account.id is not None
        session.add(AccountPolicy(account_id=account.id, allowed_email_patterns=["*@bench.example"]))
        # Confirmed addresses, as an admin's adding them makes them: unconfirmed owners get no leases.
        confirmed = datetime.now(timezone.utc)
        session.add(User(account_id=account.id, email="admin@bench.example", role="admin", email_confirmed_at=confirmed))
        session.add_all(
            User(account_id=account.id, email=f"dev{n}@bench.example", email_confirmed_at=confirmed) for n in range(OWNERS)
        )
        session.add(
            CloudAccount(
                account_id=account.id, name="bench", upstream_account_id=UPSTREAM,
                role_arn=f"arn:aws:iam::{UPSTREAM}:role/zerocloud", external_id="zc-bench",
            )
        )


def changes(count: int, run: int) -> list[ResourceChange]:
    """``count`` distinct new running instances (distinct across runs too)."""
    now = datetime.now(timezone.utc)
    built = []
    for n in range(count):
        instance_id = f"i-{run:02x}{n:015x}"
        built.append(
            ResourceChange(
                event_name="RunInstances", event_time=now, event_source="ec2.amazonaws.com",
                aws_region="us-east-1", recipient_account_id=UPSTREAM, instance_id=instance_id,
                instance=InstanceSnapshot(
                    instance_id=instance_id, instance_type="t3.micro", state=InstanceState.running,
                    tags={"owner": f"dev{n % OWNERS}@bench.example", "Name": f"bench-{n}"},
                    launch_time=now - timedelta(seconds=5),
                ),
                gone=False, observed_at=now,
            )
        )
    return built


async def bind_sink(amqp_url: str, exchange: str) -> None:
    """A queue for the LeaseChanged the relay publishes, as the scheduler's would be (a
    message no queue takes comes back to the publisher as returned)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        queue = await channel.declare_queue(f"{exchange}.{SINK}", durable=True)
        await queue.bind(ex, routing_key="LeaseChanged")
    finally:
        await connection.close()


async def delete_exchange(amqp_url: str, exchange: str, queues: Sequence[str]) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        names = [f"{exchange}.{q}{suffix}" for q in queues for suffix in ("", ".retry", ".dead")]
        for kind, name in [("queue", n) for n in names] + [("exchange", exchange), ("exchange", f"{exchange}.dead")]:
            channel = await connection.channel()
            with contextlib.suppress(ChannelNotFoundEntity, ChannelClosed):
                if kind == "queue":
                    await channel.queue_delete(name)
                else:
                    await channel.exchange_delete(name)
            if not channel.is_closed:
                await channel.close()
    finally:
        await connection.close()


# --- publishing ----------------------------------------------------------------------------


async def publish_all(bus: RabbitBus, messages: list[ResourceChange], *, chunk: int, concurrency: int) -> float:
    """Publish with confirms, ``concurrency`` chunks at a time; returns the seconds taken."""
    gate = asyncio.Semaphore(concurrency)

    async def publish(part: list[ResourceChange]) -> None:
        async with gate:
            await bus.publish(*part)

    started = time.perf_counter()
    await asyncio.gather(*(publish(messages[i : i + chunk]) for i in range(0, len(messages), chunk)))
    return time.perf_counter() - started


def publisher_process(pipe: Connection, amqp: str, exchange: str, count: int, run: int, chunk: int, conc: int) -> None:
    """The ingestor's side, in a process of its own: build, wait for 'go', publish."""

    async def work() -> None:
        bus = RabbitBus(amqp, exchange)
        await bus.start()
        messages = changes(count, run)
        pipe.send("ready")
        await asyncio.to_thread(pipe.recv)
        pipe.send(await publish_all(bus, messages, chunk=chunk, concurrency=conc))
        await bus.close()

    asyncio.run(work())


class Publisher:
    """Publishes one run's messages, inline or from a separate process."""

    def __init__(self, args: argparse.Namespace, exchange: str, run: int) -> None:
        self.args, self.exchange, self.run = args, exchange, run
        self.bus: RabbitBus | None = None
        self.messages: list[ResourceChange] = []
        self.process: Any = None
        self.pipe: Connection | None = None

    async def prepare(self) -> None:
        if self.args.publisher == "inline":
            self.bus = RabbitBus(self.args.amqp, self.exchange)
            await self.bus.start()
            self.messages = changes(self.args.messages, self.run)
            return
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(
            target=publisher_process,
            args=(child, self.args.amqp, self.exchange, self.args.messages, self.run,
                  self.args.publish_chunk, self.args.publishers),
            daemon=True,
        )
        self.process.start()
        assert await asyncio.to_thread(self.pipe.recv) == "ready"

    async def publish(self) -> float:
        if self.bus is not None:
            return await publish_all(
                self.bus, self.messages, chunk=self.args.publish_chunk, concurrency=self.args.publishers
            )
        assert self.pipe is not None
        self.pipe.send("go")
        return float(await asyncio.to_thread(self.pipe.recv))

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()
        if self.process is not None:
            await asyncio.to_thread(self.process.join, 30)


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float  # first publish → handler returned (committed) for the last message
    published: float  # seconds the publisher took
    cpu: float  # CPU seconds of this (the api's) process meanwhile
    busy: float  # CPU seconds the whole machine was busy meanwhile (all processes, all cores)
    drained: float | None = None  # first publish → every LeaseChanged published by the relay


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (Linux /proc/stat), to tell a saturated
    machine from a slow program; 0 where there is no /proc."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def run_once(
    args: argparse.Namespace,
    run: int,
    *,
    install: Callable[[RabbitBus], Awaitable[None]],
    drained: Callable[[], Awaitable[bool]] | None = None,
) -> Run:
    """Publish a run's messages on a fresh exchange while ``install``'s subscription
    consumes them."""
    exchange = f"zc-ingest-bench-{secrets.token_hex(4)}"
    consumer = RabbitBus(args.amqp, exchange, prefetch=args.prefetch)
    publisher = Publisher(args, exchange, run)
    done = asyncio.Event()
    handled = 0
    try:
        await install(consumer)
        # Count in the subscription's own handler: it returns only after the commit.
        sub = consumer.subscriptions[-1]
        inner = sub.handler

        async def counting(batch: Sequence[Any]) -> None:
            nonlocal handled
            await inner(batch)
            handled += len(batch)
            if handled >= args.messages:
                done.set()

        consumer.subscriptions[-1] = dataclasses.replace(sub, handler=counting)
        await consumer.start()
        await bind_sink(args.amqp, exchange)
        await publisher.prepare()

        cpu, busy, started = cpu_seconds(), machine_busy_seconds(), time.perf_counter()
        published = await publisher.publish()
        await asyncio.wait_for(done.wait(), timeout=600)
        result = Run(
            seconds=time.perf_counter() - started, published=published, cpu=cpu_seconds() - cpu,
            busy=machine_busy_seconds() - busy,
        )
        if drained is not None:
            while True:
                if await drained():
                    break
                await asyncio.sleep(0.02)
            result.drained = time.perf_counter() - started
        return result
    finally:
        await publisher.close()
        await consumer.close()
        await delete_exchange(args.amqp, exchange, [sub.queue for sub in consumer.subscriptions] + [SINK])


def describe_cpu(run: Run, messages: int, cores: int) -> str:
    return (f"api process {run.cpu / messages * 1e6:.0f} us cpu/msg, machine "
            f"{run.busy / run.seconds:.1f} of {cores} cores busy")


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    cores = os.cpu_count() or 1
    n = args.messages
    bare_runs: list[Run] = []
    ingest_runs: list[Run] = []
    async with scratch_database(args.postgres) as url:
        engine = create_engine(url, pool_size=10)
        sessions = session_maker(engine)
        settings = ApiSettings(
            amqp_url=args.amqp, database_url=url, **{f"{name}_token": secrets.token_hex(32) for name in ("ingestor", "notifier", "reaper")}, ingest_batch_size=args.batch_size,
        )
        try:
            for run in range(args.repeat):

                async def noop(batch: Sequence[Any]) -> None:
                    return None

                async def install_noop(bus: RabbitBus) -> None:
                    bus.subscribe(topology.API, noop, batch_size=args.batch_size, max_wait=0.05)

                bare = await run_once(args, run, install=install_noop)
                bare_runs.append(bare)
                print(f"run {run + 1} (a) bare broker: {n / bare.seconds:,.0f} msgs/s "
                      f"(published in {bare.published:.2f}s, {describe_cpu(bare, n, cores)})", file=sys.stderr)

                async with engine.begin() as connection:
                    await connection.exec_driver_sql(
                        "TRUNCATE resource, lease, audit_event, outbox, cloud_account, app_user, account CASCADE"
                    )
                relay: asyncio.Task[None] | None = None

                async def install_ingest(bus: RabbitBus) -> None:
                    nonlocal relay
                    runtime = ApiRuntime(settings=settings, engine=engine, sessions=sessions, bus=bus, aws=AwsAccess())
                    await make_tenant(runtime)
                    subscribe(runtime.bus, runtime)
                    if not args.no_relay:
                        relay = asyncio.create_task(run_relay(runtime))

                async def outbox_drained() -> bool:
                    async with engine.connect() as connection:
                        left = await connection.exec_driver_sql("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                        return int(left.scalar_one()) == 0

                ingest = await run_once(
                    args, run, install=install_ingest, drained=None if args.no_relay else outbox_drained
                )
                if relay is not None:
                    relay.cancel()
                    await asyncio.gather(relay, return_exceptions=True)
                async with engine.connect() as connection:
                    leases = await connection.exec_driver_sql("SELECT count(*) FROM lease WHERE status = 'active'")
                    if (count := int(leases.scalar_one())) != n:
                        raise SystemExit(f"expected {n} leases, found {count}")
                ingest_runs.append(ingest)
                drained_note = f", outbox drained after {ingest.drained:.2f}s" if ingest.drained else ""
                print(f"run {run + 1} (b) ingest: {n / ingest.seconds:,.0f} leases/s "
                      f"(published in {ingest.published:.2f}s, {describe_cpu(ingest, n, cores)}{drained_note})",
                      file=sys.stderr)
        finally:
            await engine.dispose()

    def rates(runs: list[Run]) -> str:
        return ", ".join(f"{n / r.seconds:,.0f}" for r in runs)

    bare_rate = statistics.median(n / r.seconds for r in bare_runs)
    ingest_rate = statistics.median(n / r.seconds for r in ingest_runs)
    print(f"{n:,} messages per run, {args.repeat} runs; batch size {args.batch_size}, prefetch {args.prefetch}, "
          f"publisher {args.publisher}, relay {'off' if args.no_relay else 'on'}")
    print(f"(a) bare broker: median {bare_rate:,.0f} msgs/s    [{rates(bare_runs)}]")
    print(f"(b) ingest:      median {ingest_rate:,.0f} leases/s  [{rates(ingest_runs)}]")
    if not args.no_relay:
        drained_rate = statistics.median(n / (r.drained or r.seconds) for r in ingest_runs)
        print(f"    ... and every LeaseChanged published: median {drained_rate:,.0f}/s")
    print(f"ratio ingest / bare: {ingest_rate / bare_rate:.2f}    (targets: >= 3,000 leases/s and >= 0.60)")
    print(f"median cpu per message: api process {statistics.median(r.cpu for r in bare_runs) / n * 1e6:.0f} us "
          f"bare, {statistics.median(r.cpu for r in ingest_runs) / n * 1e6:.0f} us ingest; whole machine "
          f"{statistics.median(r.busy for r in bare_runs) / n * 1e6:.0f} us bare, "
          f"{statistics.median(r.busy for r in ingest_runs) / n * 1e6:.0f} us ingest ({cores} cores)")


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
