"""The pages run a fixed number of SQL statements, however many leases the account has:
nothing is read once per lease shown (an N+1), such as when each stopped instance stopped.
bench/web_pages_bench.py measures the same pages with 20,000 leases."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import event

from tests.api.factories import Api, Caller, Tenant, make_cloud_account, make_user_token
from zc_api.database import transaction
from zc_api.models import AuditEvent, Lease, Resource

if TYPE_CHECKING:
    from tests.api.web.pages_fixtures import PageClient, PageClientFactory

pytest_plugins = ["tests.api.web.pages_fixtures"]

STATUSES = ("active", "active", "expired", "exempt", "reaped", "released")
TYPES = ("t3.micro", "m5.large", "x9.huge")  # x9.huge: no price


class Statements:
    """The SQL statements of the requests made inside ``counting()`` (not the outbox
    relay's, which polls in a task of its own)."""

    def __init__(self, api: Api) -> None:
        self.seen: list[str] = []
        self._on: contextvars.ContextVar[bool] = contextvars.ContextVar("counting", default=False)
        event.listen(api.app.state.runtime.engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self._on.get():
            self.seen.append(statement)

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        self.seen.clear()
        token = self._on.set(True)
        try:
            yield
        finally:
            self._on.reset(token)

    async def of(self, client: PageClient, path: str) -> int:
        with self.counting():
            response = await client.get(path)
        assert response.status_code == 200, response.text
        return len(self.seen)


async def add_leases(api: Api, cloud: dict[str, Any], owners: list[Caller], count: int, *, first: int = 0) -> None:
    """``count`` leases in every state, of priced and unpriced types; the instances of
    one active lease in three stopped by their owner (the change in the audit log); one
    reaped instance in two leased again."""
    now = datetime.now(timezone.utc)
    async with transaction(api.sessions) as session:
        for n in range(first, first + count):
            owner, status = owners[n % len(owners)], STATUSES[n % len(STATUSES)]
            stopped = status == "reaped" or (status == "active" and n % 3 == 0)
            resource = Resource(
                account_id=cloud["account_id"], cloud_account_id=cloud["id"], region="us-east-1",
                instance_id=f"i-{n:017x}", instance_type=TYPES[n % len(TYPES)],
                state="stopped" if stopped else "terminated" if status == "released" else "running",
                launch_time=now - timedelta(hours=30), observed_at=now,
            )
            session.add(resource)
            await session.flush()
            assert resource.id is not None
            ended = now - timedelta(hours=2) if status in ("reaped", "released") else None
            session.add(Lease(
                resource_id=resource.id, account_id=cloud["account_id"], cloud_account_id=cloud["id"],
                owner_user_id=owner.user_id, owner_email=owner.email, owner_reason="tag", status=status,
                created_at=now - timedelta(hours=24), expires_at=now + timedelta(hours=n % 50 - 10),
                ended_at=ended, reaped_at=ended if status == "reaped" else None,
            ))
            if stopped:
                session.add(AuditEvent(account_id=cloud["account_id"], actor="ingestor", action="resource.state_changed",
                                       subject_type="resource", subject_id=resource.id, at=now - timedelta(hours=3)))
            if status == "reaped" and n % 2:
                resource.state = "running"
                session.add(Lease(
                    resource_id=resource.id, account_id=cloud["account_id"], cloud_account_id=cloud["id"],
                    owner_user_id=owner.user_id, owner_email=owner.email, owner_reason="tag",
                    created_at=now - timedelta(hours=1), expires_at=now + timedelta(days=1),
                ))


PAGES = {
    "admin": ["/leases", "/leases?state=", "/leases?state=reaped", "/summary", "/audit", "/users"],
    "dev": ["/leases", "/leases?state="],
}


async def test_the_pages_run_as_many_statements_for_200_leases_as_for_10(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    clients = {"admin": await page_client(tenant.admin), "dev": await page_client(tenant.dev)}
    statements = Statements(api)
    owners = [tenant.dev, tenant.admin]

    await add_leases(api, cloud, owners, 10)
    few = {(who, path): await statements.of(clients[who], path) for who, paths in PAGES.items() for path in paths}
    await add_leases(api, cloud, owners, 190, first=10)
    many = {(who, path): await statements.of(clients[who], path) for who, paths in PAGES.items() for path in paths}

    assert many == few
    # And a small number: the session, a page of leases and its count, the records shown,
    # when their instances stopped, the filters' choices.
    assert few[("admin", "/leases")] <= 10 and few[("admin", "/summary")] <= 7, few


async def test_a_lease_page_names_the_people_of_its_trail_in_one_statement(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    await add_leases(api, cloud, [tenant.dev], 2)
    colleagues = [await make_user_token(api, tenant.account_id) for _ in range(5)]
    admin = await page_client(tenant.admin)
    statements = Statements(api)

    async def renewed_by(people: list[Caller], lease_id: int) -> None:
        async with transaction(api.sessions) as session:
            session.add_all(AuditEvent(account_id=tenant.account_id, actor=f"user:{person.user_id}",
                                       action="lease.renewed", subject_type="lease", subject_id=lease_id)
                            for person in people)

    await renewed_by(colleagues[:1], 1)
    await renewed_by(colleagues, 2)
    one, five = await statements.of(admin, "/leases/1"), await statements.of(admin, "/leases/2")

    assert one == five
    shown = await admin.get("/leases/2")
    assert all(person.email in shown.text for person in colleagues)
