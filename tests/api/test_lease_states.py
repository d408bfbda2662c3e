"""No lease is ever forgotten: every way a lease can be left in a live state (active,
expired, reaping, exempt) leaves it with a timer the scheduler keeps, or with a reason
a person can read and act on. Walked through the api's own routes, as the reaper and
people drive it, reading the schedule each change put on the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from zc_common.internal_api import LeaseRef, ReapOutcome, ReapOutcomeKind
from zc_common.messages import LIVE_LEASE_STATUSES, LeaseChanged, LeaseStatus

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease
from tests.api.records import internal_client, lease_row, outbox

EXPIRED = -timedelta(minutes=1)


async def latest_schedule(api: Api, lease_id: int) -> LeaseChanged | None:
    messages = [m for m in await outbox(api, LeaseChanged) if m.lease.lease_id == lease_id]
    return max(messages, key=lambda m: m.lease.version) if messages else None


async def forgotten(api: Api, lease_id: int) -> str | None:
    """Why this lease would be forgotten, or None when something will come back to it."""
    row = await lease_row(api, lease_id)
    status = LeaseStatus(row.status)
    if status not in LIVE_LEASE_STATUSES:
        return None  # final: reaped or released
    schedule = await latest_schedule(api, lease_id)
    if schedule is not None and schedule.lease.version == row.version and schedule.expire_at is not None:
        return None  # a timer brings the scheduler (and so the reaper) back
    if status is LeaseStatus.reaping and row.claimed_at is not None:
        return None  # the reaper holds it; its LeaseExpired is unacked until the outcome
    if status is LeaseStatus.exempt and row.exempt_reason:
        return None  # an admin decided, and said why
    if status is LeaseStatus.expired and schedule is not None and schedule.lease.mode == "observe":
        return None  # observe mode: nothing is reaped until enforce gives it a notice period
    return f"lease {lease_id} is {status.value} at version {row.version} with no timer and no reason"


async def claim(api: Api, lease_id: int, version: int) -> None:
    async with internal_client(api, "reaper") as client:
        await client.claim([LeaseRef(lease_id=lease_id, version=version)])


async def report(api: Api, lease_id: int, version: int, kind: ReapOutcomeKind, reason: str) -> None:
    async with internal_client(api, "reaper") as client:
        await client.report_outcomes([ReapOutcome(lease_id=lease_id, version=version, outcome=kind, reason=reason)])


async def test_every_live_lease_has_a_timer_or_a_reason(api: Api, tenant: Tenant) -> None:
    enforce = await make_cloud_account(api, tenant, mode="enforce", blast_radius_percent=100)
    observe = await make_cloud_account(api, tenant)
    admin, dev = tenant.admin.headers, tenant.dev.headers
    walked: dict[str, int] = {}

    # Active, renewed by its owner.
    _, walked["renewed"] = await make_lease(api, enforce, tenant.dev)
    await api.client.post(f"/api/v1/leases/{walked['renewed']}/renew", json={"extend_by_seconds": 3600}, headers=dev)
    # Given to someone else by an admin.
    _, walked["owner changed"] = await make_lease(api, enforce, tenant.dev)
    await api.client.post(
        f"/api/v1/leases/{walked['owner changed']}/owner", json={"email": tenant.admin.email}, headers=admin
    )
    # Expired in observe mode: recorded what would have been done.
    _, walked["observed"] = await make_lease(api, observe, tenant.dev, expires_in=EXPIRED)
    await claim(api, walked["observed"], 1)
    # Claimed by the reaper (enforce), then refused by AWS's protection.
    _, walked["reaping"] = await make_lease(api, enforce, tenant.dev, expires_in=EXPIRED)
    await claim(api, walked["reaping"], 1)
    _, walked["protected"] = await make_lease(api, enforce, tenant.dev, expires_in=EXPIRED)
    await claim(api, walked["protected"], 1)
    await report(api, walked["protected"], 1, ReapOutcomeKind.skipped, "stop protection is on")
    # Exempt, with and without an end.
    _, walked["exempt for good"] = await make_lease(api, enforce, tenant.dev)
    await api.client.post(
        f"/api/v1/leases/{walked['exempt for good']}/exempt", json={"reason": "the build server"}, headers=admin
    )
    _, walked["exempt until"] = await make_lease(api, enforce, tenant.dev)
    until = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    await api.client.post(
        f"/api/v1/leases/{walked['exempt until']}/exempt", json={"reason": "demo week", "until": until}, headers=admin
    )
    # Shut down by its owner: the reaper is asked at once.
    _, walked["shutdown"] = await make_lease(api, enforce, tenant.dev)
    await api.client.post(f"/api/v1/leases/{walked['shutdown']}/shutdown", headers=dev)

    statuses = {name: (await lease_row(api, lease_id)).status for name, lease_id in walked.items()}
    assert statuses == {
        "renewed": "active", "owner changed": "active", "observed": "expired", "reaping": "reaping",
        "protected": "expired", "exempt for good": "exempt", "exempt until": "exempt", "shutdown": "expired",
    }, "the walk reached every live state it meant to"
    problems = [problem for lease_id in walked.values() if (problem := await forgotten(api, lease_id))]
    assert problems == []


async def test_a_lease_held_by_the_blast_radius_cap_is_asked_about_again(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant, mode="enforce")
    patched = await api.client.patch(
        f"/api/v1/accounts/{tenant.account_id}/policy", json={"blast_radius_percent": 0}, headers=tenant.admin.headers
    )
    assert patched.status_code == 200, patched.text
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED)

    await claim(api, lease_id, 1)

    assert (await lease_row(api, lease_id)).status == "expired"
    assert await forgotten(api, lease_id) is None
