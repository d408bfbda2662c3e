"""Lists at depth (issue 12): p50/p99 of the long lists' pages at a steady request rate
with 1,000,000 leases (and their resources) and 1,000,000 audit events in one tenant.
Target: p99 <= 50 ms at 200 requests/s, for the first page and a deep page.

    .venv/bin/python bench/list_bench.py [--rows 1000000] [--rate 200] [--seconds 20]

The api is served for real, as an operator runs it: ``zerocloud-api serve`` in its own
process (in-process bus, a scratch database ``zc_list_bench_<hex>`` on the local
PostgreSQL, migrated here and dropped at the end). The rows are written set-based
(INSERT ... SELECT generate_series), then VACUUM ANALYZE. A second process drives each
case open-loop — a request sent every 1/rate s whether or not the others have answered —
for ``--seconds`` after a short warm-up, as the account's admin, with the default page size
(50). The deep cursor is the ``next_cursor`` the api answers for the page at row ~900,000
(that page's own cursor made from its key, not timed). ``offset=900000`` is timed apart,
a few requests one at a time (at 200/s it would only queue), to show what cursors replace.
Prints per case: requests, achieved rate, p50, p99, max (from when each request was due),
the api processes' CPU per request, and any status but 200.

``--replicas`` api processes (default 2, as deploy/k8s/base/api.yaml runs) serve the same
database, each on its own port with its own background work (outbox relay, digests); the
driver spreads its connections over them as a Service in front of the pods would."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from zc_api.auth.bootstrap import create_admin
from zc_api.database import create_engine, migrate, session_maker, transaction
from zc_api.leases.service import SOONEST_EXPIRY
from zc_api.models import Account, AccountPolicy, CloudAccount

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.ports import free_port  # noqa: E402

BIN = Path(sys.executable).parent
DEEP = 900_000
CONNECTIONS = 32


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="leases (each with its resource) and audit events")
    parser.add_argument("--rate", type=float, default=200, help="requests per second, per case")
    parser.add_argument("--seconds", type=float, default=20, help="timed seconds per case")
    parser.add_argument("--warmup", type=float, default=2, help="untimed seconds before each case")
    parser.add_argument("--offset-requests", type=int, default=5, help="offset=900000 requests, one at a time")
    parser.add_argument("--replicas", type=int, default=2, help="api processes serving the same database")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    return parser.parse_args(argv)


# --- the database --------------------------------------------------------------------------------


async def _as_server(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(f"{server_url}/postgres")
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"zc_list_bench_{secrets.token_hex(6)}"
    asyncio.run(_as_server(server_url, f'CREATE DATABASE "{name}"'))
    url = f"{server_url}/{name}"
    try:
        asyncio.run(migrate(url))
        yield url
    finally:
        asyncio.run(_as_server(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Filled:
    token: str
    deep_cursor_key: list[Any]
    seconds: float


RESOURCES = """
    INSERT INTO resource (account_id, cloud_account_id, region, instance_id, instance_type, state, name, gone,
                          observed_at)
    SELECT $1, $2, 'us-east-1', 'i-' || lpad(to_hex(g), 17, '0'), 't3.micro',
           CASE WHEN g % 10 < 7 THEN 'running' ELSE 'stopped' END, 'bench ' || g, false, now()
    FROM generate_series(1, $3::int) AS g"""
# 40% active, 20% exempt, 10% expired, 30% released; ten leases expire at each minute
# (ties in the sort key), the minutes spread over ~70 days.
LEASES = """
    INSERT INTO lease (resource_id, account_id, cloud_account_id, owner_user_id, owner_email, owner_reason,
                       expires_at, version, status, over_quota)
    SELECT r.id, r.account_id, r.cloud_account_id, $1, $2, 'bench',
           date_trunc('minute', now()) + (r.id % ($3::int / 10)) * interval '1 minute', 1,
           CASE WHEN r.id % 10 < 4 THEN 'active' WHEN r.id % 10 < 6 THEN 'exempt'
                WHEN r.id % 10 < 7 THEN 'expired' ELSE 'released' END, false
    FROM resource AS r"""
# Three events a second, newest now.
AUDIT = """
    INSERT INTO audit_event (account_id, at, actor, action, subject_type, subject_id)
    SELECT $1, now() - (g / 3) * interval '1 second', 'service', 'lease.created', 'lease', g
    FROM generate_series(1, $2::int) AS g"""


async def fill(database_url: str, rows: int) -> Filled:
    started = time.perf_counter()
    engine = create_engine(database_url, pool_size=1)
    try:
        async with transaction(session_maker(engine)) as session:
            tenant = Account(name="ListBench")
            session.add(tenant)
            await session.flush()
            assert tenant.id is not None
            account = tenant.id
            session.add(AccountPolicy(account_id=account))
            admin, token = await create_admin(session, "admin@list.bench.test", token_name="bench")
            admin.account_id = account
            cloud_account = CloudAccount(
                account_id=account, name="bench", upstream_account_id="123456789012",
                role_arn="arn:aws:iam::123456789012:role/ZeroCloud", external_id="zc-bench",
            )
            session.add(cloud_account)
            await session.flush()
            admin_id, cloud = admin.id, cloud_account.id
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(RESOURCES, account, cloud, rows)
        await connection.execute(LEASES, admin_id, "admin@list.bench.test", rows)
        await connection.execute(AUDIT, account, rows)
        await connection.execute("VACUUM ANALYZE")
        deep = await connection.fetchrow(
            "SELECT expires_at, id FROM lease WHERE account_id = $1 ORDER BY expires_at, id OFFSET $2 LIMIT 1",
            account, min(DEEP, rows - 100) - 1,
        )
    finally:
        await connection.close()
    assert deep is not None
    return Filled(token=token, deep_cursor_key=[deep["expires_at"], deep["id"]], seconds=time.perf_counter() - started)


# --- the api, served ------------------------------------------------------------------------------


def wait_until(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the api exited before it answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


@contextlib.contextmanager
def serve_api(database_url: str, workdir: Path, name: str = "api") -> Iterator[tuple[str, int]]:
    """``zerocloud-api serve`` in its own process: (its URL, its pid)."""
    port, internal_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ZC_")},
        "ZC_DATABASE_URL": database_url, "ZC_BUS": "memory", "ZC_AMQP_URL": "memory://",
        **{f"ZC_{service.upper()}_TOKEN": f"zc_{service}_{secrets.token_urlsafe(32)}"
           for service in ("ingestor", "notifier", "reaper")},
        "ZC_HTTP_HOST": "127.0.0.1", "ZC_HTTP_PORT": str(port),
        "ZC_INTERNAL_HOST": "127.0.0.1", "ZC_INTERNAL_PORT": str(internal_port),
        "ZC_PUBLIC_URL": url, "ZC_LOG_LEVEL": "WARNING",
    }
    log = workdir / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(BIN / "zerocloud-api"), "serve"], env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    try:
        try:
            wait_until(f"{url}/readyz", process)
        except RuntimeError:
            sys.stderr.write(log.read_text()[-4000:])
            raise
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- the load, from a second process ---------------------------------------------------------------


@dataclass
class Case:
    name: str
    path: str
    params: dict[str, str]


@dataclass
class Result:
    name: str
    latencies: list[float]
    wall: float
    statuses: Counter[int]
    api_cpu: float = 0.0  # seconds of CPU the api process used while timed


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of processes so far (Linux)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Connection:
    """One keep-alive HTTP/1.1 connection to the api, as little client as will do: httpx
    spends more CPU per request than the api's list does, and would time itself."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, target: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.token}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await self.reader.readexactly(length)
        return status


async def _drive(urls: list[str], token: str, case: Case, rate: float, seconds: float, warmup: float,
                 api_pids: list[int]
                 ) -> Result:
    """Open loop: request n is due at n/rate s; a free connection sends it, and its latency
    counts from when it was due (waiting for a connection included)."""
    target = httpx.URL(case.path, params=case.params).raw_path.decode()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    due: asyncio.Queue[tuple[float, bool] | None] = asyncio.Queue()

    async def connection(n: int) -> None:
        split = httpx.URL(urls[n % len(urls)])  # spread over the replicas, as a Service would
        http = Connection(split.host, split.port or 80, token)
        while (item := await due.get()) is not None:
            at, timed = item
            status = await http.get(target)
            if timed:
                latencies.append(time.perf_counter() - at)
                statuses[status] += 1

    connections = [asyncio.create_task(connection(n)) for n in range(CONNECTIONS)]
    begin = time.perf_counter()
    total, timed_from = int((warmup + seconds) * rate), int(warmup * rate)
    cpu_from = 0.0
    for n in range(total):
        at = begin + n / rate
        if (delay := at - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        if n == timed_from:
            cpu_from = cpu_seconds(api_pids)
        due.put_nowait((at, n >= timed_from))
    for _ in connections:
        due.put_nowait(None)
    await asyncio.gather(*connections)
    return Result(case.name, latencies, time.perf_counter() - (begin + warmup), statuses,
                  api_cpu=cpu_seconds(api_pids) - cpu_from)


async def _one_at_a_time(url: str, token: str, case: Case, requests: int, api_pids: list[int]) -> Result:
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        latencies: list[float] = []
        statuses: Counter[int] = Counter()
        await client.get(case.path, params=case.params)  # the connection, untimed
        begin, cpu_from = time.perf_counter(), cpu_seconds(api_pids)
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.get(case.path, params=case.params)
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1
        return Result(case.name, latencies, time.perf_counter() - begin, statuses,
                      api_cpu=cpu_seconds(api_pids) - cpu_from)


def driver(urls: list[str], token: str, cases: list[Case], args: dict[str, Any], api_pids: list[int],
           out: Queue[Result]) -> None:
    """The second process: each case in turn."""
    for case in cases:
        if case.params.get("offset"):
            out.put(asyncio.run(_one_at_a_time(urls[0], token, case, args["offset_requests"], api_pids)))
        else:
            out.put(asyncio.run(_drive(urls, token, case, args["rate"], args["seconds"], args["warmup"], api_pids)))


def percentile(values: Sequence[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def report(result: Result, rate: float) -> str:
    ms = [1000 * v for v in result.latencies]
    achieved = len(ms) / result.wall
    others = {code: n for code, n in result.statuses.items() if code != 200}
    line = (f"{result.name:<30} {len(ms):>6} req  {achieved:>6.1f}/s  p50 {percentile(ms, 50):>8.1f} ms  "
            f"p99 {percentile(ms, 99):>8.1f} ms  max {max(ms):>8.1f} ms  "
            f"api CPU {1000 * result.api_cpu / len(ms):>5.1f} ms/req")
    return line + (f"  NOT 200: {others}" if others else "")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    with scratch_database(args.postgres) as database_url, tempfile.TemporaryDirectory() as workdir:
        print(f"filling {args.rows:,} leases, resources and audit events ...", flush=True)
        filled = asyncio.run(fill(database_url, args.rows))
        print(f"filled in {filled.seconds:.0f} s", flush=True)
        with contextlib.ExitStack() as replicas:
            served = [replicas.enter_context(serve_api(database_url, Path(workdir), f"api-{n}"))
                      for n in range(args.replicas)]
            urls, api_pids = [url for url, _ in served], [pid for _, pid in served]
            url = urls[0]
            headers = {"Authorization": f"Bearer {filled.token}"}
            # A cursor the api made: the next_cursor of the page at row ~900,000.
            start = SOONEST_EXPIRY.encode(filled.deep_cursor_key)
            page = httpx.get(f"{url}/api/v1/leases", params={"cursor": start}, headers=headers, timeout=60).json()
            deep = page["next_cursor"]
            print(f"leases count {page['count']} (at least: {page['count_at_least']}); deep cursor at row "
                  f"~{DEEP + 50:,}", flush=True)
            cases = [
                Case("leases first page", "/api/v1/leases", {}),
                Case("leases status=active", "/api/v1/leases", {"status": "active"}),
                Case("leases deep cursor", "/api/v1/leases", {"cursor": deep}),
                Case("resources first page", "/api/v1/resources", {}),
                Case("audit-events first page", "/api/v1/audit-events", {}),
                Case(f"leases offset={DEEP} (serial)", "/api/v1/leases", {"offset": str(DEEP)}),
            ]
            results: Queue[Result] = multiprocessing.get_context("spawn").Queue()
            process = multiprocessing.get_context("spawn").Process(
                target=driver, args=(urls, filled.token, cases, vars(args), api_pids, results), name="list-bench-driver"
            )
            process.start()
            print(f"\n{args.rate:.0f} requests/s for {args.seconds:.0f} s per case over {args.replicas} api "
                  f"process(es) (offset: one at a time)")
            for _ in cases:
                print(report(results.get(timeout=600), args.rate), flush=True)
            process.join(timeout=60)


if __name__ == "__main__":
    main()
