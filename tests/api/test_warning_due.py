"""Nobody is reaped without the warnings the policy promised: the claim waits for a lease
version's last warning to be reported delivered, and a warning that could not go out in
time moves the reap so that it still precedes it by its lead."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import update
from sqlmodel import col

from zc_common.internal_api import (
    ClaimResult,
    DeferOutcome,
    Deferral,
    LateWarning,
    LeaseRef,
    WarningDelivered,
    WarningsRecorded,
    WarningUndelivered,
)
from zc_common.messages import LeaseChange, LeaseChanged, LeaseStatus

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease
from tests.api.records import audit_events, internal_client, lease_row, outbox, post_internal
from zc_api.database import migrate, transaction
from zc_api.models import Lease

HOUR = timedelta(hours=1)
EXPIRED = -timedelta(minutes=1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def enforced(api: Api, tenant: Tenant) -> dict[str, Any]:
    return await make_cloud_account(api, tenant, mode="enforce")


async def claim(api: Api, *refs: tuple[int, int]) -> ClaimResult:
    async with internal_client(api, "reaper") as client:
        return await client.claim([LeaseRef(lease_id=lease_id, version=version) for lease_id, version in refs])


async def report(api: Api, *warnings: WarningDelivered) -> WarningsRecorded:
    async with internal_client(api, "notifier") as client:
        return await client.warnings_delivered(list(warnings))


async def defer(api: Api, *warnings: LateWarning) -> list[Deferral]:
    async with internal_client(api, "notifier") as client:
        return await client.defer_for_warnings(list(warnings))


def delivered(lease: Lease, *, warning_at: datetime | None = None, **overrides: Any) -> WarningDelivered:
    """The notifier's report of the lease's last warning (or ``warning_at``) sent just now."""
    moment = warning_at or lease.warn_by
    assert lease.id is not None and moment is not None
    values: dict[str, Any] = {
        "lease_id": lease.id, "version": lease.version, "warning_at": moment, "delivered_at": utcnow(),
    }
    values.update(overrides)
    return WarningDelivered(**values)


async def time_passes(api: Api, lease_id: int, by: timedelta) -> None:
    """Everything the lease holds moves ``by`` into the past, as if that much time passed."""
    async with transaction(api.sessions) as session:
        await session.execute(
            update(Lease).where(col(Lease.id) == lease_id).values(
                expires_at=col(Lease.expires_at) - by, warn_by=col(Lease.warn_by) - by,
                warned_at=col(Lease.warned_at) - by,
            )
        )


def counted(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"{metric}_total", labels) or 0.0


def close_to(moment: datetime | None, expected: datetime, within: timedelta = timedelta(seconds=10)) -> bool:
    return moment is not None and abs(moment - expected) <= within


# --- the claim --------------------------------------------------------------------------


async def test_an_expired_lease_whose_last_warning_never_went_out_is_not_reaped_but_moved(
    api: Api, tenant: Tenant
) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED, warned_before=HOUR)
    deferrals = counted("zc_api_warning_deferrals", reason="warning_pending")

    result = await claim(api, (lease_id, 1))

    assert result.claimed == [] and result.observed == []
    assert [(r.lease_id, r.version, r.reason) for r in result.refused] == [(lease_id, 1, "warning_pending")]
    row = await lease_row(api, lease_id)
    now = utcnow()
    assert (row.status, row.version, row.claimed_at, row.warned_at) == ("active", 2, None, None)
    assert close_to(row.expires_at, now + HOUR), "the reap moves by the warning's lead"
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.warning_deferred and message.lease.version == 2
    assert message.warn_at == [message.occurred_at], "the new version warns at once"
    assert message.expire_at == row.expires_at and row.warn_by == message.occurred_at
    [event] = await audit_events(api, action="lease.warning_deferred", subject_id=lease_id)
    assert event.actor == "service:reaper" and event.reason is not None
    assert "was not delivered" in event.reason and "the reap moves to" in event.reason
    assert counted("zc_api_warning_deferrals", reason="warning_pending") == deferrals + 1

    # The new version's warning goes out; once its expiry has passed, the reap goes ahead.
    recorded = await report(api, delivered(row))
    await time_passes(api, lease_id, HOUR + timedelta(minutes=1))
    again = await claim(api, (lease_id, 2))

    assert recorded.recorded == [LeaseRef(lease_id=lease_id, version=2)] and recorded.ignored == 0
    assert [c.lease.lease_id for c in again.claimed] == [lease_id] and again.refused == []
    assert (await lease_row(api, lease_id)).status == "reaping"
    [warned] = await audit_events(api, action="lease.warned", subject_id=lease_id)
    assert warned.actor == "service:notifier" and warned.reason is not None and "delivered" in warned.reason


async def test_a_report_of_an_earlier_warning_does_not_let_the_reap_go(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED, warned_before=HOUR)
    row = await lease_row(api, lease_id)
    ignored = counted("zc_api_warning_reports", outcome="ignored")

    recorded = await report(api, delivered(row, warning_at=row.expires_at - timedelta(days=1)))
    result = await claim(api, (lease_id, 1))

    assert recorded.recorded == [] and recorded.ignored == 1
    assert counted("zc_api_warning_reports", outcome="ignored") == ignored + 1
    assert [r.reason for r in result.refused] == ["warning_pending"]


async def test_a_report_for_another_version_is_ignored(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED, warned_before=HOUR)
    row = await lease_row(api, lease_id)

    recorded = await report(api, delivered(row, version=2), delivered(row, lease_id=999_999))

    assert recorded.recorded == [] and recorded.ignored == 2
    assert (await lease_row(api, lease_id)).warned_at is None
    assert [r.reason for r in (await claim(api, (lease_id, 1))).refused] == ["warning_pending"]


async def test_a_repeated_report_is_recorded_once(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED, warned_before=HOUR)
    row = await lease_row(api, lease_id)
    first = delivered(row, delivered_at=row.expires_at - HOUR + timedelta(seconds=5))

    await report(api, first)
    again = await report(api, first, delivered(row, delivered_at=utcnow()))

    assert again.recorded == [LeaseRef(lease_id=lease_id, version=1)]
    assert (await lease_row(api, lease_id)).warned_at == first.delivered_at, "the first report stands"
    assert len(await audit_events(api, action="lease.warned", subject_id=lease_id)) == 1
    assert [c.lease.lease_id for c in (await claim(api, (lease_id, 1))).claimed] == [lease_id]


async def test_a_warning_that_can_never_be_delivered_does_not_hold_the_reap(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED, warned_before=HOUR)
    row = await lease_row(api, lease_id)
    # Settled when it was due (the owner's address was never confirmed).
    settled = delivered(row, delivered_at=row.expires_at - HOUR, undelivered=WarningUndelivered.unconfirmed)

    await report(api, settled)
    result = await claim(api, (lease_id, 1))

    assert [c.lease.lease_id for c in result.claimed] == [lease_id]
    [event] = await audit_events(api, action="lease.warned", subject_id=lease_id)
    assert event.reason is not None and "can never reach the owner (unconfirmed)" in event.reason


async def test_a_delivery_the_notifier_reports_counts_whenever_it_went_out(api: Api, tenant: Tenant) -> None:
    # Whether it was in time is the notifier's call (it knows its digest window): it
    # reports only warnings that were, and has the reap of the others moved.
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED, warned_before=HOUR)
    row = await lease_row(api, lease_id)

    await report(api, delivered(row, delivered_at=row.expires_at - HOUR + timedelta(seconds=40)))
    result = await claim(api, (lease_id, 1))

    assert [c.lease.lease_id for c in result.claimed] == [lease_id]


async def test_observe_mode_says_what_would_have_happened_only_after_the_warning(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)  # observe
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED, warned_before=HOUR)

    result = await claim(api, (lease_id, 1))

    assert result.observed == [] and [r.reason for r in result.refused] == ["warning_pending"]
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.warning_deferred and message.lease.status is LeaseStatus.active


async def test_a_lease_without_a_planned_warning_is_claimed_as_before(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED)

    result = await claim(api, (lease_id, 1))

    assert [c.lease.lease_id for c in result.claimed] == [lease_id]


async def test_a_new_version_plans_its_warnings_afresh(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=2 * HOUR, warned_before=HOUR)
    await report(api, delivered(await lease_row(api, lease_id), delivered_at=utcnow()))

    renewed = await api.client.post(
        f"/api/v1/leases/{lease_id}/renew", json={"extend_by_seconds": 3 * 24 * 3600}, headers=tenant.dev.headers
    )

    assert renewed.status_code == 200
    row = await lease_row(api, lease_id)
    [message] = await outbox(api, LeaseChanged)
    assert (row.version, row.warned_at) == (2, None), "the new version's warnings are still owed"
    assert row.warn_by == max(message.warn_at) == row.expires_at - HOUR


# --- a warning too late for its lead ------------------------------------------------------------


async def test_a_late_warning_moves_the_reap_by_its_lead_once(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(seconds=20), warned_before=HOUR)
    row = await lease_row(api, lease_id)
    assert row.warn_by is not None
    late = LateWarning(lease_id=lease_id, version=1, warning_at=row.warn_by)
    deferrals = counted("zc_api_warning_deferrals", reason="late_warning")

    [answer] = await defer(api, late)

    assert (answer.outcome, answer.version, answer.new_version) == (DeferOutcome.deferred, 1, 2)
    moved = await lease_row(api, lease_id)
    assert moved.expires_at == answer.expires_at and close_to(moved.expires_at, utcnow() + HOUR)
    assert (moved.status, moved.version, moved.warned_at) == ("active", 2, None)
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.warning_deferred and message.warn_at == [message.occurred_at]
    [event] = await audit_events(api, action="lease.warning_deferred", subject_id=lease_id)
    assert event.actor == "service:notifier" and event.reason is not None
    assert event.reason.startswith("the warning due at") and "could not be sent in time" in event.reason
    assert counted("zc_api_warning_deferrals", reason="late_warning") == deferrals + 1

    # The same late warning again (a re-delivered message): the version moved on.
    [again] = await defer(api, late)

    assert again.outcome is DeferOutcome.superseded and (await lease_row(api, lease_id)).version == 2


async def test_a_late_early_warning_keeps_the_later_warnings_in_the_new_schedule(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    day = timedelta(days=1)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=day - timedelta(minutes=5),
                                   warned_before=HOUR)
    row = await lease_row(api, lease_id)

    [answer] = await defer(api, LateWarning(lease_id=lease_id, version=1, warning_at=row.expires_at - day))

    assert answer.outcome is DeferOutcome.deferred
    moved = await lease_row(api, lease_id)
    [message] = await outbox(api, LeaseChanged)
    assert close_to(moved.expires_at, utcnow() + day), "the day's warning keeps its day"
    assert message.warn_at == [message.occurred_at, moved.expires_at - HOUR], "and the hour's still follows"
    assert moved.warn_by == moved.expires_at - HOUR


async def test_a_late_warning_of_a_lease_that_moved_on_moves_nothing(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, reaping = await make_lease(api, cloud, tenant.dev, status="reaping", expires_in=EXPIRED, warned_before=HOUR)
    at = utcnow() - HOUR

    answers = await defer(
        api, LateWarning(lease_id=reaping, version=1, warning_at=at),
        LateWarning(lease_id=reaping, version=3, warning_at=at), LateWarning(lease_id=999_999, version=1, warning_at=at),
    )

    assert [a.outcome for a in answers] == [DeferOutcome.not_active, DeferOutcome.superseded, DeferOutcome.unknown]
    assert (await lease_row(api, reaping)).version == 1 and await outbox(api, LeaseChanged) == []


async def test_the_warning_routes_are_for_the_notifier_only(api: Api, tenant: Tenant) -> None:
    body = {"warnings": []}

    answers = [
        (await api.internal.post(f"/internal/v1/leases/{route}", json=body, headers=headers)).status_code
        for route in ("warned", "defer")
        for headers in (tenant.admin.headers, {"Authorization": "Bearer nope"})
    ]

    assert all(status in (401, 404) for status in answers)


async def test_the_warning_routes_refuse_what_they_cannot_hold(api: Api, tenant: Tenant) -> None:
    moment = "2026-12-04T12:00:00+00:00"
    bodies = [
        ("warned", {"warnings": [{"lease_id": 1, "version": 1, "warning_at": "9999-12-31T23:59:59-14:00",
                                  "delivered_at": moment}]}),
        ("warned", {"warnings": [{"lease_id": 2**31, "version": 1, "warning_at": moment, "delivered_at": moment}]}),
        ("warned", {"warnings": [{"lease_id": 1, "version": 1, "warning_at": "2026-12-04T12:00:00",
                                  "delivered_at": moment}]}),  # no zone: whose noon?
        ("defer", {"warnings": [{"lease_id": 1, "version": 0, "warning_at": moment}]}),
        ("defer", {"warnings": [{"lease_id": 1, "version": 1, "warning_at": moment}] * 10_001}),
    ]

    answers = [
        (await post_internal(api, f"/leases/{route}", body)).status_code for route, body in bodies
    ]

    assert answers == [422] * len(bodies)


# --- migration 0012 -----------------------------------------------------------------------------


@pytest.fixture
async def database_at_0011(postgres_server_url: str) -> AsyncIterator[str]:
    name = f"zc_mig_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = postgres_server_url.rsplit("/", 1)[0] + "/" + name
    try:
        await migrate(url, "0011")
        yield url
    finally:
        admin = await asyncpg.connect(postgres_server_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migration_gives_stored_leases_no_planned_warning(database_at_0011: str) -> None:
    connection = await asyncpg.connect(database_at_0011)
    try:
        account = await connection.fetchval("INSERT INTO account (name) VALUES ('before') RETURNING id")
        cloud = await connection.fetchval(
            "INSERT INTO cloud_account (account_id, name, provider, upstream_account_id, role_arn, external_id, mode) "
            "VALUES ($1, 'sandbox', 'AWS', '123456789012', 'arn:aws:iam::123456789012:role/zc', 'zc-x', 'enforce') "
            "RETURNING id", account,
        )
        resource = await connection.fetchval(
            "INSERT INTO resource (account_id, cloud_account_id, region, instance_id, state, gone, observed_at) "
            "VALUES ($1, $2, 'us-east-1', 'i-0123456789abcdef0', 'running', false, now()) RETURNING id", account, cloud,
        )
        lease = await connection.fetchval(
            "INSERT INTO lease (resource_id, account_id, cloud_account_id, owner_email, owner_reason, expires_at, "
            "version, status, over_quota) VALUES ($1, $2, $3, 'dev@bigdb.com', 'tag', now(), 1, 'active', false) "
            "RETURNING id", resource, account, cloud,
        )
    finally:
        await connection.close()

    await migrate(database_at_0011)

    connection = await asyncpg.connect(database_at_0011)
    try:
        row = await connection.fetchrow("SELECT version, warn_by, warned_at FROM lease WHERE id = $1", lease)
        columns = await connection.fetch(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'lease' AND column_name IN ('warn_by', 'warned_at') ORDER BY column_name"
        )
    finally:
        await connection.close()
    # Claimed as before: its next version plans its warnings.
    assert (row["version"], row["warn_by"], row["warned_at"]) == (1, None, None)
    assert [(c["column_name"], c["data_type"], c["is_nullable"]) for c in columns] == [
        ("warn_by", "timestamp with time zone", "YES"), ("warned_at", "timestamp with time zone", "YES"),
    ]
