"""A sweep of N instances in one region to committed leases, beside the bare set-based
PostgreSQL write of the same rows, measured in the same run (issue #12).

    python bench/sweep_to_leases_bench.py [--instances 10000] [--runs 3]

Each run: the real ingestor (its own process, as in production) sweeps one region of a
fast EC2 stand-in (bench/ec2_standin.py: STS AssumeRole and DescribeInstances in AWS's
XML, 1,000 instances a page; moto takes minutes to launch and page 10,000) and publishes
over a real RabbitMQ to the real api ingest consumer (this process, with its outbox
relay), which commits into a scratch PostgreSQL made by the project's Alembic migrations.
Timed: from the moment the last DescribeInstances page returned (botocore's after-call,
in the ingestor) to the moment the batch holding the N-th lease was committed (the
subscription's handler returned). Then the same resource and lease rows are written into
a second scratch database of the same schema with one INSERT ... SELECT FROM unnest(...)
per table in one transaction ("bare"), and the two are printed with their ratio.

Creates two scratch databases and an exchange per run; removes them at the end."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import json
import logging
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from zc_common.aws import AwsAccess  # noqa: E402
from zc_common.bus import topology  # noqa: E402
from zc_common.bus.memory import InProcessBus  # noqa: E402
from zc_common.bus.rabbit import RabbitBus  # noqa: E402
from zc_common.internal_api import CloudAccountRecord, InternalApi  # noqa: E402
from zc_common.messages import CloudAccountMode  # noqa: E402
from zc_common.settings import ApiSettings, IngestorSettings  # noqa: E402

from bench.ingest_bench import UPSTREAM, delete_exchange, machine_busy_seconds, make_tenant, scratch_database  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from zc_api.database import create_engine, session_maker  # noqa: E402
from zc_api.ingest.handlers import subscribe  # noqa: E402
from zc_api.outbox.relay import run_relay  # noqa: E402
from zc_api.runtime import ApiRuntime  # noqa: E402

REGION = "us-east-1"
DOMAIN = "bench.example"
OWNERS = 50  # make_tenant's dev0..dev49@bench.example
PRODUCT_TABLES = "resource, lease, audit_event, outbox, cloud_account, app_user, account"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", "-n", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-relay", action="store_true", help="do not run the api's outbox relay")
    parser.add_argument("--profile", metavar="FILE", help="cProfile this (the api's) process over the runs into FILE")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    return parser.parse_args(argv)


# --- the ingestor, in a process of its own ---------------------------------------------------


def _record(cloud_account_id: int, account_id: int) -> CloudAccountRecord:
    return CloudAccountRecord(
        id=cloud_account_id, account_id=account_id, name="bench", upstream_account_id=UPSTREAM,
        role_arn=f"arn:aws:iam::{UPSTREAM}:role/zerocloud", external_id="zc-bench", regions=[REGION],
        mode=CloudAccountMode.observe,
    )


class BenchApi(InternalApi):
    """The api's two answers a sweep needs: the cloud account, and no instance known yet
    (the database starts empty each run)."""

    def __init__(self, record: CloudAccountRecord) -> None:
        super().__init__("http://api.invalid", "bench-service-token-0123456789")
        self.record = record

    async def cloud_accounts(self, upstream_account_id: str | None = None) -> list[CloudAccountRecord]:
        return [self.record]

    async def known_instances(self, cloud_account_id: int, region: str) -> list[str]:
        return []


class TimedAwsAccess(AwsAccess):
    """Notes the wall-clock moment each DescribeInstances answer was parsed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pages: list[float] = []

    @contextlib.asynccontextmanager
    async def client(self, service: str, region: str | None = None, role: Any = None) -> AsyncIterator[Any]:
        async with super().client(service, region, role) as client:
            if service == "ec2":
                client.meta.events.register("after-call.ec2.DescribeInstances", self._page)
            yield client

    def _page(self, **_: Any) -> None:
        self.pages.append(time.time())


def ingestor_process(pipe: Connection, amqp: str, endpoint: str) -> None:
    """Sweep on each ('sweep', exchange, cloud account id, account id) received; answer
    with the timings."""
    from zc_ingestor.service import Ingestor

    logging.basicConfig(level=logging.WARNING)

    async def sweep(exchange: str, cloud_account_id: int, account_id: int) -> dict[str, Any]:
        bus = RabbitBus(amqp, exchange)
        await bus.start()
        api = BenchApi(_record(cloud_account_id, account_id))
        settings = IngestorSettings(
            amqp_url=amqp, amqp_exchange=exchange, api_url="http://api.invalid",
            service_token=secrets.token_hex(32), aws_endpoint_url=endpoint,
        )
        aws = TimedAwsAccess(endpoint_url=endpoint)  # fresh: each run pays its AssumeRole
        try:
            ingestor = Ingestor(settings, bus, aws, api)
            cpu, started = time.process_time(), time.time()
            result = await ingestor.sweep()
            return {
                "started": started, "pages": aws.pages, "done": time.time(), "cpu": time.process_time() - cpu,
                "instances": result.instances, "gone": result.gone, "failures": [f.reason for f in result.failures],
            }
        finally:
            await bus.close()
            await api.close()

    while (request := pipe.recv()) is not None:
        _, exchange, cloud_account_id, account_id = request
        pipe.send(asyncio.run(sweep(exchange, cloud_account_id, account_id)))


# --- the bare write ------------------------------------------------------------------------


async def _columns(connection: Any, table: str) -> list[tuple[str, str]]:
    rows = await connection.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'id' ORDER BY attnum",
        table,
    )
    return [(row[0], row[1]) for row in rows]


def _unnest_insert(table: str, columns: list[tuple[str, str]], returning: str = "") -> str:
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(columns, start=1))
    return f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}){returning}"


@dataclass
class BareRows:
    resource_columns: list[tuple[str, str]]
    resources: list[list[Any]]  # column-wise
    lease_columns: list[tuple[str, str]]
    leases: list[list[Any]]
    lease_instance_ids: list[str]  # each lease's resource, by instance id


async def rows_written(url: str) -> BareRows:
    """The resource and lease rows the sweep committed, column-wise."""
    connection = await asyncpg.connect(url)
    try:
        resource_columns = await _columns(connection, "resource")
        lease_columns = await _columns(connection, "lease")
        names = ", ".join(name for name, _ in resource_columns)
        resources = await connection.fetch(f"SELECT {names} FROM resource ORDER BY id")
        lease_names = ", ".join(f"l.{name}" for name, _ in lease_columns)
        leases = await connection.fetch(
            f"SELECT {lease_names}, r.instance_id AS resource_instance FROM lease l "
            "JOIN resource r ON r.id = l.resource_id ORDER BY l.id"
        )
    finally:
        await connection.close()
    return BareRows(
        resource_columns=resource_columns,
        resources=[[row[i] for row in resources] for i in range(len(resource_columns))],
        lease_columns=lease_columns,
        leases=[[row[i] for row in leases] for i in range(len(lease_columns))],
        lease_instance_ids=[row["resource_instance"] for row in leases],
    )


async def bare_write(url: str, rows: BareRows) -> float:
    """Seconds to write ``rows`` into an empty copy of the schema: one INSERT ... SELECT FROM
    unnest(...) per table, resource ids taken from the first's RETURNING, one commit."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute("TRUNCATE resource, lease CASCADE")
        insert_resources = _unnest_insert("resource", rows.resource_columns, " RETURNING id, instance_id")
        insert_leases = _unnest_insert("lease", rows.lease_columns)
        resource_at = [name for name, _ in rows.lease_columns].index("resource_id")
        # A first write rolled back: asyncpg prepares the statements and learns the enum and
        # array types, as the product's connections have after their first batch.
        with contextlib.suppress(_Rollback):
            async with connection.transaction():
                await _write(connection, insert_resources, insert_leases, resource_at, rows)
                raise _Rollback
        started = time.perf_counter()
        async with connection.transaction():
            await _write(connection, insert_resources, insert_leases, resource_at, rows)
        return time.perf_counter() - started
    finally:
        await connection.close()


class _Rollback(Exception):
    pass


async def _write(connection: Any, insert_resources: str, insert_leases: str, resource_at: int, rows: BareRows) -> None:
    ids = {r["instance_id"]: r["id"] for r in await connection.fetch(insert_resources, *rows.resources)}
    leases = list(rows.leases)
    leases[resource_at] = [ids[instance_id] for instance_id in rows.lease_instance_ids]
    await connection.execute(insert_leases, *leases)


# --- one run -------------------------------------------------------------------------------


@dataclass
class Run:
    after_last_page: float  # last DescribeInstances page returned -> N-th lease committed
    bare: float  # the same resource and lease rows, written set-based
    sweep: float  # sweep started -> last page returned
    published: float  # last page returned -> the sweep's last publish confirmed
    drained: float | None  # last page returned -> every LeaseChanged published by the relay
    batches: int  # ingest transactions
    handling: float  # seconds in the ingest handler (decode excluded), all batches
    standin: float  # seconds the stand-in spent answering DescribeInstances
    describe_calls: int
    ingestor_cpu: float
    api_cpu: float  # CPU of this process from the sweep's start to the last commit
    busy: float  # CPU seconds the whole machine was busy meanwhile

    @property
    def ratio(self) -> float:
        return self.after_last_page / self.bare


def cpu_seconds() -> float:
    return time.process_time()


async def run_once(
    args: argparse.Namespace, run: int, *, url: str, bare_url: str, settings: ApiSettings,
    engine: Any, sessions: Any, pipe: Connection, endpoint: str,
) -> Run:
    n = args.instances
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"TRUNCATE {PRODUCT_TABLES} RESTART IDENTITY CASCADE")
    tenant = ApiRuntime(settings=settings, engine=engine, sessions=sessions, bus=InProcessBus(), aws=AwsAccess())
    await make_tenant(tenant)
    async with engine.connect() as connection:
        ids = (await connection.exec_driver_sql("SELECT id, account_id FROM cloud_account")).one()
    async with httpx.AsyncClient() as http:
        prepared = await http.post(
            f"{endpoint}/standin/prepare", params={"instances": n, "run": run, "owners": OWNERS, "domain": DOMAIN}
        )
        prepared.raise_for_status()

    exchange = f"zc-sweep-bench-{secrets.token_hex(4)}"
    consumer = RabbitBus(args.amqp, exchange, prefetch=settings.amqp_prefetch)
    runtime = ApiRuntime(settings=settings, engine=engine, sessions=sessions, bus=consumer, aws=AwsAccess())
    relay: asyncio.Task[None] | None = None
    done = asyncio.Event()
    handled = batches = 0
    handling = 0.0
    committed_at = 0.0
    try:
        subscribe(consumer, runtime)
        sub = consumer.subscriptions[-1]
        inner = sub.handler

        async def counting(batch: Sequence[Any]) -> None:
            nonlocal handled, batches, committed_at, handling
            began = time.perf_counter()
            await inner(batch)  # returns once the batch is committed
            handling += time.perf_counter() - began
            handled += len(batch)
            batches += 1
            if handled >= n and not done.is_set():
                committed_at = time.time()
                done.set()

        consumer.subscriptions[-1] = dataclasses.replace(sub, handler=counting)
        await consumer.start()
        if not args.no_relay:
            relay = asyncio.create_task(run_relay(runtime))

        cpu, busy = cpu_seconds(), machine_busy_seconds()
        pipe.send(("sweep", exchange, ids[0], ids[1]))
        swept = await asyncio.to_thread(pipe.recv)
        await asyncio.wait_for(done.wait(), timeout=600)
        api_cpu, busy = cpu_seconds() - cpu, machine_busy_seconds() - busy
        last_page = swept["pages"][-1]
        drained_at: float | None = None
        if relay is not None:
            while True:
                async with engine.connect() as connection:
                    left = await connection.exec_driver_sql("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    if int(left.scalar_one()) == 0:
                        break
                await asyncio.sleep(0.02)
            drained_at = time.time()
    finally:
        if relay is not None:
            relay.cancel()
            await asyncio.gather(relay, return_exceptions=True)
        await consumer.close()
        await delete_exchange(args.amqp, exchange, [queue.name for queue in topology.QUEUES])

    if swept["failures"] or swept["instances"] != n:
        raise SystemExit(f"the sweep listed {swept['instances']} of {n}: {swept['failures']}")
    async with engine.connect() as connection:
        leases = await connection.exec_driver_sql("SELECT count(*) FROM lease WHERE status = 'active'")
        if (count := int(leases.scalar_one())) != n:
            raise SystemExit(f"expected {n} active leases, found {count}")
    async with httpx.AsyncClient() as http:
        stats = (await http.get(f"{endpoint}/standin/stats")).json()
    bare = await bare_write(bare_url, await rows_written(url.replace("postgresql+asyncpg", "postgresql")))
    return Run(
        after_last_page=committed_at - last_page, bare=bare, sweep=last_page - swept["started"],
        published=swept["done"] - last_page, drained=None if drained_at is None else drained_at - last_page,
        batches=batches, handling=handling, standin=float(stats["seconds"]), describe_calls=int(stats["describe_calls"]),
        ingestor_cpu=float(swept["cpu"]), api_cpu=api_cpu, busy=busy,
    )


@contextlib.contextmanager
def standin_server() -> Any:
    port = free_port()
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("ec2_standin.py")), str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/standin/stats", timeout=1)
                break
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def bench(args: argparse.Namespace, endpoint: str, pipe: Connection) -> list[Run]:
    runs: list[Run] = []
    async with scratch_database(args.postgres) as url, scratch_database(args.postgres) as bare_url:
        engine = create_engine(url, pool_size=10)
        sessions = session_maker(engine)
        settings = ApiSettings(
            amqp_url=args.amqp, database_url=url, ingestor_token=secrets.token_hex(32),
            notifier_token=secrets.token_hex(32), reaper_token=secrets.token_hex(32),
        )
        bare_engine = create_engine(bare_url, pool_size=1)
        try:
            bare_tenant = ApiRuntime(settings=settings, engine=bare_engine, sessions=session_maker(bare_engine),
                                     bus=InProcessBus(), aws=AwsAccess())
            await make_tenant(bare_tenant)
        finally:
            await bare_engine.dispose()
        try:
            for run in range(1, args.runs + 1):
                result = await run_once(args, run, url=url, bare_url=bare_url, settings=settings, engine=engine,
                                        sessions=sessions, pipe=pipe, endpoint=endpoint)
                runs.append(result)
                drained = f", LeaseChanged all published +{result.drained:.2f}s" if result.drained is not None else ""
                print(
                    f"run {run}: after last page: {result.after_last_page:.2f} s; bare write: {result.bare:.2f} s; "
                    f"ratio {result.ratio:.1f}x  (sweep to last page {result.sweep:.2f} s, "
                    f"{result.describe_calls} DescribeInstances, stand-in {result.standin:.3f} s; last publish "
                    f"confirmed +{result.published:.2f}s{drained}; {result.batches} ingest batches, {result.handling:.2f} s in the handler; cpu: ingestor "
                    f"{result.ingestor_cpu:.2f} s, api {result.api_cpu:.2f} s, machine {result.busy:.1f} s)",
                    file=sys.stderr, flush=True,
                )
        finally:
            await engine.dispose()
    return runs


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "bench")
    context = multiprocessing.get_context("spawn")
    profile = cProfile.Profile() if args.profile else None
    with standin_server() as endpoint:
        pipe, child = context.Pipe()
        ingestor = context.Process(target=ingestor_process, args=(child, args.amqp, endpoint), daemon=True)
        ingestor.start()
        child.close()  # ours closed, an ingestor that dies ends our pipe.recv instead of hanging it
        try:
            if profile is not None:
                profile.enable()
            runs = asyncio.run(bench(args, endpoint, pipe))
        finally:
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile)
            with contextlib.suppress(OSError):
                pipe.send(None)
            ingestor.join(30)

    def median(field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in runs))

    def each(field: str) -> str:
        return ", ".join(f"{getattr(r, field):.2f}" for r in runs)

    print(f"{args.instances:,} instances, one region, {len(runs)} runs; EC2 stand-in (bench/ec2_standin.py), "
          f"real RabbitMQ, real api ingest consumer, relay {'off' if args.no_relay else 'on'}")
    print(f"after last page: {median('after_last_page'):.2f} s (median)  [{each('after_last_page')}]")
    print(f"bare set-based write of the same rows: {median('bare'):.2f} s (median)  [{each('bare')}]")
    print(f"ratio (each run's own): {median('ratio'):.2f}x (median)  [{each('ratio')}]   (targets: <= 3 s, <= 2x)")
    print(f"sweep to last page: {median('sweep'):.2f} s; stand-in's own time: {median('standin'):.3f} s "
          f"over {runs[0].describe_calls} DescribeInstances")
    print(json.dumps([dataclasses.asdict(r) for r in runs]), file=sys.stderr)


if __name__ == "__main__":
    main()
