"""Web pages at scale: an account with N leases (default 20,000; one developer owns 500
of them), and its admin's and that developer's pages rendered by the api in-process.
Prints, for each page, the SQL statements one request runs and the median and p95 time
of ``--requests`` requests (after one warm-up).

    .venv/bin/python bench/web_pages_bench.py [--leases 20000] [--dev-leases 500] [--requests 5] [--show-sql]

The leases are seeded directly in a scratch database (COPY, not through ingestion): every
lease state, instances of types and regions without a price, instances stopped by their
owner (with the state change in the audit log), resources reaped and then leased again,
and a few audit events per lease. The database is created and dropped by the bench."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import re
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI, Response
from sqlalchemy import event
from sqlalchemy.ext.asyncio import create_async_engine

from zc_common.bus.memory import InProcessBus
from zc_common.settings import ApiSettings

from zc_api.database import async_url, migrate, transaction
from zc_api.main import create_app
from zc_api.models import Account, AccountPolicy, CloudAccount, User
from zc_api.web.session import cookie_name, start_session

OWNERS = 50
UPSTREAMS = ("210987654321", "310987654321")
REGIONS = ("us-east-1", "eu-west-1")
TYPES = ("t3.micro", "m5.large", "c5.xlarge", "x9.huge")  # x9.huge: no price
# One lease in 20 of each status; the rest active.
STATUS_CYCLE = ["active"] * 10 + ["expired"] * 2 + ["exempt"] + ["reaped"] * 4 + ["released"] * 3


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leases", "-n", type=int, default=20_000)
    parser.add_argument("--dev-leases", type=int, default=500, help="leases of the developer whose pages are shown")
    parser.add_argument("--requests", type=int, default=5, help="timed requests per page (after one warm-up)")
    parser.add_argument("--history", type=int, default=0,
                        help="extra audit events per lease (warnings), as months of use leave behind")
    parser.add_argument("--show-sql", action="store_true",
                        help="print each page's statements, with the time each took (first request)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args(argv)


# --- the database ------------------------------------------------------------------------------


async def _as_admin(server_url: str, statement: str) -> None:
    engine = create_async_engine(async_url(server_url), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def scratch_database(server_url: str) -> AsyncIterator[str]:
    name = f"zc_web_bench_{secrets.token_hex(6)}"
    await _as_admin(server_url, f'CREATE DATABASE "{name}"')
    url = server_url.rsplit("/", 1)[0] + "/" + name
    try:
        await migrate(url)
        yield url
    finally:
        await _as_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def make_tenant(app: FastAPI) -> dict[str, Any]:
    """The account, its policy, an admin, OWNERS developers and two cloud accounts."""
    confirmed = datetime.now(timezone.utc)
    async with transaction(app.state.runtime.sessions) as session:
        account = Account(name="BenchCorp")
        session.add(account)
        await session.flush()
        assert account.id is not None
        session.add(AccountPolicy(account_id=account.id, allowed_email_patterns=["*@bench.example"]))
        admin = User(account_id=account.id, email="admin@bench.example", role="admin", email_confirmed_at=confirmed)
        devs = [User(account_id=account.id, email=f"dev{n}@bench.example", email_confirmed_at=confirmed)
                for n in range(OWNERS)]
        clouds = [
            CloudAccount(account_id=account.id, name=f"bench {n}", upstream_account_id=upstream,
                         role_arn=f"arn:aws:iam::{upstream}:role/zerocloud", external_id=f"zc-bench-{n}",
                         regions=list(REGIONS), mode="enforce" if n else "observe")
            for n, upstream in enumerate(UPSTREAMS)
        ]
        session.add_all([admin, *devs, *clouds])
        await session.flush()
        return {"account": account.id, "admin": admin, "devs": devs, "clouds": [c.id for c in clouds]}


async def seed_leases(url: str, tenant: dict[str, Any], leases: int, dev_leases: int, history: int = 0
                      ) -> dict[str, int]:
    """``leases`` leases of the account; the first developer owns ``dev_leases`` of them.
    One resource in 20 had a lease reaped and now has a new one."""
    now = datetime.now(timezone.utc)
    account, clouds = tenant["account"], tenant["clouds"]
    devs: list[User] = tenant["devs"]
    relaunched = leases // 20  # resources with two leases: an old reaped one and a live one
    resources_n = leases - relaunched
    resources: list[tuple[Any, ...]] = []
    lease_rows: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []

    every = max(leases // max(dev_leases, 1), 1)

    def owner_of(i: int) -> User:
        if i % every == every - 1 and i // every < dev_leases:
            return devs[0]
        return devs[1 + i % (OWNERS - 1)]

    for r in range(resources_n):
        cloud = clouds[r % len(clouds)]
        instance_type = TYPES[r % len(TYPES)] if r % 37 else "x9.huge"
        region = REGIONS[(r // 3) % len(REGIONS)]
        created = now - timedelta(minutes=(r * 7919) % (30 * 24 * 60))
        resources.append((r + 1, account, cloud, region, f"i-{r:017x}", instance_type, "running", f"bench-{r}",
                          created - timedelta(minutes=1), False, created, now))
    for i in range(leases):
        if i < resources_n:
            r = i
            status = STATUS_CYCLE[i % len(STATUS_CYCLE)] if i >= relaunched else "reaped"
        else:  # the new lease of a resource whose first lease was reaped
            r, status = i - resources_n, "active"
        resource = resources[r]
        created = resource[10] if i < resources_n else now - timedelta(hours=2)
        owner = owner_of(i)
        expires = created + timedelta(days=3)
        ended = reaped = None
        if status == "expired":
            expires = now - timedelta(hours=1 + i % 48)
        elif status == "exempt":
            expires = datetime(9999, 1, 1, tzinfo=timezone.utc) if i % 2 else now + timedelta(days=10)
        elif status == "reaped":
            reaped = ended = max(created, min(now - timedelta(hours=3), created + timedelta(hours=1 + i % 200)))
            expires = reaped - timedelta(minutes=1)
        elif status == "released":
            ended = min(now - timedelta(minutes=5), created + timedelta(hours=2 + i % 100))
        lease_rows.append((i + 1, r + 1, account, resource[2], owner.id, owner.email, "owner tag", expires, 1,
                           status, False, created, now, ended, reaped))
        events.append((account, created, "service", "lease.created", "lease", i + 1, None, "{}"))
        events.extend((account, created + timedelta(minutes=k + 1), "scheduler", "lease.warned", "lease", i + 1, None,
                       "{}") for k in range(history))
        if i % 3 == 0:
            events.append((account, created + timedelta(hours=1), f"user:{owner.id}", "lease.renewed", "lease", i + 1,
                           None, '{"via": "web"}'))
        if ended is not None:
            events.append((account, ended, "reaper" if reaped else "service",
                           "lease.reaped" if reaped else "lease.released", "lease", i + 1, None, "{}"))
    # Resource states: a reaped lease's instance stopped; a released one's terminated; one
    # active lease in seven has an instance its owner stopped (the change in the audit log).
    states = {n: "running" for n in range(resources_n)}
    for row in lease_rows:
        r, status = row[1] - 1, row[9]
        if status == "reaped":
            states[r] = "stopped"
        elif status == "released":
            states[r] = "terminated"
        elif status in ("active", "expired", "exempt"):
            states[r] = "running"
    for n, row in enumerate(lease_rows):
        if row[9] == "active" and n % 7 == 0:
            states[row[1] - 1] = "stopped"
    for r, state in states.items():
        if state != "running":
            events.append((account, now - timedelta(hours=1 + r % 50), "ingestor", "resource.state_changed",
                           "resource", r + 1, None, f'{{"state": "{state}"}}'))
    # A relaunched instance was started again when its new lease began.
    resources = [(*row[:6], states[row[0] - 1], row[7], now - timedelta(hours=2, minutes=1) if row[0] <= relaunched
                  else row[8], *row[9:]) for row in resources]

    connection = await asyncpg.connect(url)
    try:
        await connection.copy_records_to_table(
            "resource", records=resources,
            columns=["id", "account_id", "cloud_account_id", "region", "instance_id", "instance_type", "state", "name",
                     "launch_time", "gone", "first_seen_at", "observed_at"],
        )
        await connection.copy_records_to_table(
            "lease", records=lease_rows,
            columns=["id", "resource_id", "account_id", "cloud_account_id", "owner_user_id", "owner_email",
                     "owner_reason", "expires_at", "version", "status", "over_quota", "created_at", "updated_at",
                     "ended_at", "reaped_at"],
        )
        await connection.execute("CREATE TEMP TABLE seed_event (account_id int, at timestamptz, actor text, "
                                 "action text, subject_type text, subject_id int, reason text, details text)")
        await connection.copy_records_to_table("seed_event", records=events)
        await connection.execute(
            "INSERT INTO audit_event (account_id, at, actor, action, subject_type, subject_id, reason, details) "
            "SELECT account_id, at, actor, action, subject_type, subject_id, reason, details::jsonb FROM seed_event"
        )
        for table in ("resource", "lease"):
            await connection.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    return {"resources": len(resources), "leases": len(lease_rows), "events": len(events)}


# --- the pages ---------------------------------------------------------------------------------


async def signed_in(app: FastAPI, user: User) -> httpx.AsyncClient:
    """A browser signed in as ``user`` (as tests/api/web/pages_fixtures.py open_page_client)."""
    settings = app.state.runtime.settings
    response = Response()
    async with transaction(app.state.runtime.sessions) as session:
        row = await session.get(User, user.id)
        assert row is not None
        await start_session(session, user=row, settings=settings, response=response)
    name = cookie_name(settings)
    match = re.search(rf"{re.escape(name)}=([^;]+)", response.headers["set-cookie"])
    assert match is not None
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://zerocloud.test",
                             cookies={name: match.group(1)}, timeout=600)


class StatementCounter:
    """The statements run by the requests made inside ``counting()``: not the outbox
    relay's, which polls from a task of its own in the background."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.seconds: list[float] = []  # each statement's, as the driver took it
        self._on: contextvars.ContextVar[bool] = contextvars.ContextVar("counting", default=False)

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        token = self._on.set(True)
        try:
            yield
        finally:
            self._on.reset(token)

    def before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self._on.get():
            self.statements.append(statement)
            conn.info["bench_started"] = time.perf_counter()

    def after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self._on.get() and "bench_started" in conn.info:
            self.seconds.append(time.perf_counter() - conn.info.pop("bench_started"))


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def measure(
    client: httpx.AsyncClient, counter: StatementCounter, path: str, requests: int
) -> tuple[int, list[float], int, list[tuple[str, float]]]:
    counter.statements.clear()
    counter.seconds.clear()
    with counter.counting():
        first = await client.get(path)  # warm-up; its statements are the ones counted
    if first.status_code != 200:
        raise SystemExit(f"GET {path} answered {first.status_code}: {first.text[:500]}")
    statements = list(zip(counter.statements, counter.seconds))
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = await client.get(path)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, path
    return len(statements), times, len(first.content), statements


async def main(args: argparse.Namespace) -> None:
    async with scratch_database(args.postgres) as url:
        settings = ApiSettings(database_url=url, amqp_url="memory://", bus="memory", **{f"{name}_token": secrets.token_hex(32) for name in ("ingestor", "notifier", "reaper")})
        bus = InProcessBus()
        app = create_app(settings, bus=bus)
        try:
            async with app.router.lifespan_context(app):
                tenant = await make_tenant(app)
                started = time.perf_counter()
                seeded = await seed_leases(url, tenant, args.leases, args.dev_leases, args.history)
                print(f"seeded {seeded['leases']:,} leases, {seeded['resources']:,} resources, {seeded['events']:,} "
                      f"audit events in {time.perf_counter() - started:.1f}s", file=sys.stderr)
                counter = StatementCounter()
                engine = app.state.runtime.engine.sync_engine
                event.listen(engine, "before_cursor_execute", counter.before)
                event.listen(engine, "after_cursor_execute", counter.after)
                admin = await signed_in(app, tenant["admin"])
                dev = await signed_in(app, tenant["devs"][0])
                last = max(args.leases - 1, 0) // 50 * 50
                pages = [
                    ("admin", admin, "/leases"),
                    ("admin", admin, "/leases?state="),
                    ("admin", admin, f"/leases?state=&offset={last}"),
                    ("admin", admin, "/leases?state=reaped"),
                    ("admin", admin, "/leases/1"),
                    ("admin", admin, "/summary"),
                    ("admin", admin, "/audit"),
                    ("admin", admin, "/audit?subject_type=lease&subject_id=1"),
                    ("admin", admin, "/users"),
                    ("admin", admin, "/cloud-accounts"),
                    ("admin", admin, f"/cloud-accounts/{tenant['clouds'][0]}"),
                    ("admin", admin, "/policy"),
                    ("admin", admin, "/tokens"),
                    ("dev", dev, "/leases"),
                    ("dev", dev, "/leases?state="),
                ]
                print(f"{args.leases:,} leases in the account, {args.dev_leases:,} of them the developer's; "
                      f"{args.requests} timed requests per page")
                print(f"{'who':<6} {'page':<40} {'SQL':>4} {'median ms':>10} {'p95 ms':>8} {'KiB':>6}")
                try:
                    for who, client, path in pages:
                        count, times, size, statements = await measure(client, counter, path, args.requests)
                        print(f"{who:<6} {path:<40} {count:>4} {statistics.median(times) * 1000:>10.1f} "
                              f"{p95(times) * 1000:>8.1f} {size / 1024:>6.0f}")
                        if args.show_sql:
                            for statement, seconds in statements:
                                print(f"        {seconds * 1000:7.1f} ms  " + " ".join(statement.split())[:140])
                finally:
                    await admin.aclose()
                    await dev.aclose()
        finally:
            await bus.close()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
