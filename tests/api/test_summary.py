"""The admin's summary: leases by status, instances by lease state per day, and the spend
avoided by reaping — the account's own only."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlmodel import col

from zc_common.errors import NotPermitted

from tests.api.factories import Api, Caller, Tenant, make_cloud_account, make_lease
from zc_api.auth.principal import Principal
from zc_api.database import transaction
from zc_api.models import Lease, Resource
from zc_api.pricing.service import spend_avoided as lease_spend_avoided
from zc_api.summary import service as summary

NOW = datetime.now(timezone.utc).replace(hour=12, minute=0, second=0, microsecond=0)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
T3_MICRO = Decimal("0.0104")


def principal(caller: Caller, account_id: int, role: str) -> Principal:
    return Principal(kind="user", user_id=caller.user_id, account_id=account_id, role=role, email=caller.email)


async def lease_at(api: Api, cloud: dict[str, Any], owner: Caller, **times: Any) -> int:
    """A lease whose timestamps (and status) are set as given."""
    resource_id, lease_id = await make_lease(api, cloud, owner)
    instance_type = times.pop("instance_type", None)
    async with transaction(api.sessions) as session:
        await session.execute(update(Lease).where(col(Lease.id) == lease_id).values(**times))
        if instance_type:
            await session.execute(
                update(Resource).where(col(Resource.id) == resource_id).values(instance_type=instance_type)
            )
    return lease_id


async def test_instances_by_state_per_day_follow_the_lease_timestamps(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    cloud = await make_cloud_account(api, tenant)
    theirs = await make_cloud_account(api, other_tenant)
    # Active all along, created 3 days ago.
    await lease_at(api, cloud, tenant.dev, created_at=NOW - 3 * DAY, expires_at=NOW + DAY)
    # Expired yesterday morning, still live.
    await lease_at(api, cloud, tenant.dev, status="expired", created_at=NOW - 2 * DAY, expires_at=NOW - DAY - HOUR)
    # Reaped 2 days ago.
    await lease_at(api, cloud, tenant.dev, status="reaped", created_at=NOW - 5 * DAY, expires_at=NOW - 3 * DAY,
                   claimed_at=NOW - 2 * DAY, reaped_at=NOW - 2 * DAY, ended_at=NOW - 2 * DAY)
    # Released today.
    await lease_at(api, cloud, tenant.dev, status="released", created_at=NOW - DAY, expires_at=NOW + DAY,
                   ended_at=NOW - HOUR)
    # Exempt, created today.
    await lease_at(api, cloud, tenant.dev, status="exempt", created_at=NOW - 2 * HOUR, expires_at=NOW + 9 * DAY)
    # Another tenant's: never counted.
    await lease_at(api, theirs, other_tenant.dev, created_at=NOW - 3 * DAY, expires_at=NOW + DAY)

    async with transaction(api.sessions) as session:
        days = await summary.states_per_day(
            session, caller=principal(tenant.admin, tenant.account_id, "admin"), days=7, now=NOW
        )

    assert [d.day for d in days] == [(NOW - i * DAY).date() for i in range(6, -1, -1)]
    by_day = {(NOW.date() - d.day).days: d.counts for d in days}
    assert by_day[6] == dict.fromkeys(summary.DAY_STATES, 0)
    # The one reaped later: created 5 days ago, expired 3 days ago.
    assert by_day[5] == by_day[4] == {"active": 1, "expired": 0, "exempt": 0, "reaped": 0, "released": 0}
    assert by_day[3] == {"active": 1, "expired": 1, "exempt": 0, "reaped": 0, "released": 0}
    assert by_day[2] == {"active": 2, "expired": 0, "exempt": 0, "reaped": 1, "released": 0}
    assert by_day[1] == {"active": 2, "expired": 1, "exempt": 0, "reaped": 0, "released": 0}
    assert by_day[0] == {"active": 1, "expired": 1, "exempt": 1, "reaped": 0, "released": 1}


async def test_counts_by_status_are_the_accounts_own(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    theirs = await make_cloud_account(api, other_tenant)
    await make_lease(api, cloud, tenant.dev)
    await make_lease(api, cloud, tenant.dev, status="expired")
    await make_lease(api, cloud, tenant.admin, status="expired")
    await make_lease(api, theirs, other_tenant.dev, status="reaped")

    async with transaction(api.sessions) as session:
        counts = await summary.counts_by_status(session, caller=principal(tenant.admin, tenant.account_id, "admin"))

    assert counts == {"active": 1, "expired": 2}


async def test_spend_avoided_sums_each_reaped_instance_in_all_and_this_month(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    month_start = NOW.replace(day=1, hour=0)
    recent = NOW - 5 * HOUR if NOW - 5 * HOUR >= month_start else month_start + HOUR
    ids = [
        await lease_at(api, cloud, tenant.dev, status="reaped", created_at=recent - DAY, expires_at=recent,
                       reaped_at=recent, ended_at=recent),
        # Reaped long ago: 30 days at most, none of it this month.
        await lease_at(api, cloud, tenant.dev, status="reaped", created_at=NOW - 100 * DAY,
                       expires_at=NOW - 90 * DAY, reaped_at=NOW - 90 * DAY, ended_at=NOW - 90 * DAY,
                       instance_type="m5.large"),
        # A type without a price: counted as reaped, not priced.
        await lease_at(api, cloud, tenant.dev, status="reaped", created_at=NOW - 2 * DAY, expires_at=NOW - DAY,
                       reaped_at=NOW - DAY, ended_at=NOW - DAY, instance_type="x9.huge"),
    ]
    await lease_at(api, cloud, tenant.dev, status="active", created_at=NOW - DAY, expires_at=NOW + DAY)

    async with transaction(api.sessions) as session:
        avoided = await summary.spend_avoided(
            session, caller=principal(tenant.admin, tenant.account_id, "admin"), now=NOW
        )
        rows = [(await session.get(Lease, i), i) for i in ids]
        expected = Decimal(0)
        for row, _ in rows[:2]:
            assert row is not None
            res = await session.get(Resource, row.resource_id)
            assert res is not None
            value = lease_spend_avoided(res, row, NOW)
            assert value is not None
            expected += value

    assert avoided.reaped == 3 and avoided.unpriced == 1
    assert abs(avoided.total - expected) < Decimal("0.000001")
    assert abs(avoided.total - (T3_MICRO * Decimal((NOW - recent) / HOUR) + Decimal("0.096") * 30 * 24)) < Decimal(
        "0.000001"
    )
    assert abs(avoided.this_month - T3_MICRO * Decimal((NOW - recent) / HOUR)) < Decimal("0.000001")


async def test_a_restart_ends_the_spend_avoided(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    resource_id, reaped = await make_lease(api, cloud, tenant.dev, status="reaped")
    async with transaction(api.sessions) as session:
        await session.execute(update(Lease).where(col(Lease.id) == reaped).values(
            created_at=NOW - 2 * DAY, reaped_at=NOW - 10 * HOUR, ended_at=NOW - 10 * HOUR))
        session.add(Lease(
            resource_id=resource_id, account_id=tenant.account_id, cloud_account_id=cloud["id"],
            owner_user_id=tenant.dev.user_id, owner_email=tenant.dev.email, owner_reason="tag",
            expires_at=NOW + DAY, created_at=NOW - 4 * HOUR,
        ))

    async with transaction(api.sessions) as session:
        avoided = await summary.spend_avoided(
            session, caller=principal(tenant.admin, tenant.account_id, "admin"), now=NOW
        )

    assert abs(avoided.total - T3_MICRO * 6) < Decimal("0.000001")


async def test_a_developer_gets_no_summary(api: Api, tenant: Tenant) -> None:
    async with transaction(api.sessions) as session:
        with pytest.raises(NotPermitted):
            await summary.counts_by_status(session, caller=principal(tenant.dev, tenant.account_id, "dev"))


async def test_days_are_utc_days_whatever_the_database_time_zone(api: Api, tenant: Tenant) -> None:
    """A server whose TimeZone observes daylight saving ('1 day' there is 23 or 25 hours
    across the change) still gets one bar per UTC day, each counted at the UTC midnight."""
    after_dst = datetime(2026, 3, 31, 12, tzinfo=timezone.utc)  # Europe went to summer time on March 29
    cloud = await make_cloud_account(api, tenant)
    await lease_at(api, cloud, tenant.dev, created_at=after_dst - 10 * DAY, expires_at=after_dst + DAY)
    # Ended at 00:30 UTC on March 30: still there at the end of the 29th, gone on the 30th.
    await lease_at(api, cloud, tenant.dev, status="released", created_at=after_dst - 10 * DAY,
                   expires_at=after_dst + DAY, ended_at=datetime(2026, 3, 30, 0, 30, tzinfo=timezone.utc))

    async with transaction(api.sessions) as session:
        await session.execute(text("SET LOCAL TimeZone = 'Europe/Paris'"))
        days = await summary.states_per_day(
            session, caller=principal(tenant.admin, tenant.account_id, "admin"), days=5, now=after_dst
        )

    assert [d.day.isoformat() for d in days] == ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31"]
    assert [(d.counts["active"], d.counts["released"]) for d in days] == [(2, 0), (2, 0), (2, 0), (1, 1), (1, 0)]


async def test_each_reap_of_the_same_instance_ends_at_its_next_lease(api: Api, tenant: Tenant) -> None:
    """Reaped, leased again, reaped again, leased again: each reap's spend avoided runs
    until the next lease of that instance, the last one's until now."""
    cloud = await make_cloud_account(api, tenant)
    resource_id, first = await make_lease(api, cloud, tenant.dev, status="reaped")
    async with transaction(api.sessions) as session:
        await session.execute(update(Lease).where(col(Lease.id) == first).values(
            created_at=NOW - 3 * DAY, reaped_at=NOW - 20 * HOUR, ended_at=NOW - 20 * HOUR))
        lease = {"resource_id": resource_id, "account_id": tenant.account_id, "cloud_account_id": cloud["id"],
                 "owner_user_id": tenant.dev.user_id, "owner_email": tenant.dev.email, "owner_reason": "tag"}
        session.add(Lease(**lease, status="reaped", expires_at=NOW - 9 * HOUR, created_at=NOW - 17 * HOUR,
                          reaped_at=NOW - 8 * HOUR, ended_at=NOW - 8 * HOUR))
        session.add(Lease(**lease, expires_at=NOW + DAY, created_at=NOW - 3 * HOUR))

    async with transaction(api.sessions) as session:
        avoided = await summary.spend_avoided(
            session, caller=principal(tenant.admin, tenant.account_id, "admin"), now=NOW
        )

    assert avoided.reaped == 2
    assert abs(avoided.total - T3_MICRO * (3 + 5)) < Decimal("0.000001")
