"""The reaper's claim: compare-and-set on lease id, version and state (a renewal always
beats a stale timer), observe mode, and the blast-radius cap."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from zc_common.internal_api import LeaseRef
from zc_common.messages import ActionOnExpiry, BlastRadiusHalted, LeaseChange, LeaseChanged, LeaseStatus

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease, make_user_token
from tests.api.records import audit_events, internal_client, lease_row, outbox, post_internal
from tests.support.credentials import bearer
from zc_api.database import transaction
from zc_api.models import Lease

EXPIRED = -timedelta(minutes=1)


async def enforced(api: Api, tenant: Tenant, **payload: Any) -> dict[str, Any]:
    return await make_cloud_account(api, tenant, mode="enforce", **payload)


async def claim(api: Api, *refs: tuple[int, int]) -> Any:
    async with internal_client(api, "reaper") as client:
        return await client.claim([LeaseRef(lease_id=lease_id, version=version) for lease_id, version in refs])


async def test_an_expired_lease_at_its_version_is_claimed(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED)

    result = await claim(api, (lease_id, 1))

    [claimed] = result.claimed
    assert result.refused == [] and result.observed == []
    assert claimed.lease.lease_id == lease_id and claimed.lease.status is LeaseStatus.reaping
    assert claimed.lease.version == 1 and claimed.lease.mode == "enforce"
    assert claimed.action == ActionOnExpiry.stop
    assert (claimed.owner_tag, claimed.owner_tag_value) == ("owner", tenant.dev.email)
    row = await lease_row(api, lease_id)
    assert (row.status, row.version) == ("reaping", 1)
    assert row.claimed_at is not None
    [event] = await audit_events(api, action="lease.claimed", subject_id=lease_id)
    assert event.actor == "service:reaper"


async def test_claiming_the_same_version_again_is_claimed_again(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED)
    first = await claim(api, (lease_id, 1))

    again = await claim(api, (lease_id, 1))

    assert [c.lease.lease_id for c in first.claimed] == [lease_id]
    assert [c.lease.lease_id for c in again.claimed] == [lease_id], "a re-delivered LeaseExpired is answered the same"
    assert (await lease_row(api, lease_id)).status == "reaping"


async def test_a_renewal_beats_the_old_timer(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(seconds=30))
    renewed = await api.client.post(
        f"/api/v1/leases/{lease_id}/renew", json={"extend_by_seconds": 3600}, headers=tenant.dev.headers
    )
    assert renewed.status_code == 200
    # Time passes beyond the old expiry; the old timer's message names version 1.
    async with transaction(api.sessions) as session:
        await session.execute(
            update(Lease).where(col(Lease.id) == lease_id).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
        )

    result = await claim(api, (lease_id, 1))

    assert result.claimed == [] and [(r.lease_id, r.version, r.reason) for r in result.refused] == [
        (lease_id, 1, "stale_version")
    ]
    row = await lease_row(api, lease_id)
    assert (row.status, row.version, row.claimed_at) == ("active", 2, None)


async def test_a_lease_not_yet_expired_or_gone_or_unknown_is_refused(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, running = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(hours=1))
    _, released = await make_lease(api, cloud, tenant.dev, status="released", expires_in=EXPIRED)

    result = await claim(api, (running, 1), (released, 1), (999_999, 1))

    assert result.claimed == [] and result.observed == []
    assert {(r.lease_id, r.reason) for r in result.refused} == {
        (running, "not_expired"), (released, "not_live"), (999_999, "unknown"),
    }
    assert (await lease_row(api, running)).status == "active"


async def test_an_exempt_lease_is_claimed_only_after_its_end(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, forever = await make_lease(api, cloud, tenant.dev, status="exempt", expires_in=timedelta(days=365))
    _, ended = await make_lease(api, cloud, tenant.dev, status="exempt", expires_in=EXPIRED)

    result = await claim(api, (forever, 1), (ended, 1))

    assert [c.lease.lease_id for c in result.claimed] == [ended]
    assert [(r.lease_id, r.reason) for r in result.refused] == [(forever, "not_expired")]


async def test_observe_mode_records_what_would_have_happened(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)  # observe: the default
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED)

    result = await claim(api, (lease_id, 1))

    assert result.claimed == [] and result.refused == []
    assert result.observed == [LeaseRef(lease_id=lease_id, version=1)]
    row = await lease_row(api, lease_id)
    assert row.status == "expired" and row.claimed_at is None
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.expired
    assert message.lease.status is LeaseStatus.expired and message.lease.version == row.version
    assert message.reason is not None and message.reason.startswith("observe mode: would have stopped")
    assert message.expire_at is None
    [event] = await audit_events(api, action="lease.expired", subject_id=lease_id)
    assert event.reason == message.reason
    # Still live and renewable by its owner.
    renewed = await api.client.post(
        f"/api/v1/leases/{lease_id}/renew", json={"extend_by_seconds": 3600}, headers=tenant.dev.headers
    )
    assert renewed.status_code == 200 and renewed.json()["status"] == "active"


async def test_observe_mode_names_termination_when_that_is_the_policy(api: Api, tenant: Tenant) -> None:
    patched = await api.client.patch(
        f"/api/v1/accounts/{tenant.account_id}/policy", json={"action_on_expiry": "terminate"},
        headers=tenant.admin.headers,
    )
    assert patched.status_code == 200
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED)

    await claim(api, (lease_id, 1))

    [message] = await outbox(api, LeaseChanged)
    assert message.reason is not None and "would have terminated" in message.reason


async def test_blast_radius_cap_claims_half_and_alerts_the_admins_once(api: Api, tenant: Tenant) -> None:
    second_admin = await make_user_token(api, tenant.account_id, role="admin")
    cloud = await enforced(api, tenant)
    leases = [
        (await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED - timedelta(seconds=i)))[1] for i in range(10)
    ]

    result = await claim(api, *((lease_id, 1) for lease_id in leases))

    claimed = {c.lease.lease_id for c in result.claimed}
    held = {r.lease_id for r in result.refused if r.reason == "blast_radius"}
    assert len(claimed) == 5 and len(held) == 5 and len(result.refused) == 5
    assert claimed | held == set(leases)
    assert claimed == set(leases[5:]), "the longest expired go first"
    [alert] = await outbox(api, BlastRadiusHalted)
    assert alert.cloud_account_id == cloud["id"] and alert.upstream_account_id == cloud["upstream_account_id"]
    assert alert.admin_emails == [tenant.admin.email, second_admin.email]
    assert sorted(alert.held_lease_ids) == sorted(held)
    assert "50%" in alert.cap
    assert [(await lease_row(api, i)).status for i in sorted(held)] == ["expired"] * 5
    assert len(await audit_events(api, action="cloud_account.reaping_halted")) == 1
    # Held, never forgotten: each gets a new version whose timer asks the reaper again
    # once the hour's window has moved on.
    retries = {m.lease.lease_id: m for m in await outbox(api, LeaseChanged) if m.change is LeaseChange.reap_skipped}
    assert retries.keys() == held
    for message in retries.values():
        assert message.lease.version == 2 and message.expire_at == message.occurred_at + timedelta(hours=1)
        assert message.reason is not None and "blast-radius cap" in message.reason

    again = await claim(api, *((lease_id, 2) for lease_id in sorted(held)))

    assert again.claimed == [] and {r.reason for r in again.refused} == {"blast_radius"}
    assert len(await outbox(api, BlastRadiusHalted)) == 1, "one alert per cloud account per hour"


async def test_blast_radius_per_hour_cap(api: Api, tenant: Tenant) -> None:
    patched = await api.client.patch(
        f"/api/v1/accounts/{tenant.account_id}/policy", json={"blast_radius_per_hour": 2},
        headers=tenant.admin.headers,
    )
    assert patched.status_code == 200 and patched.json()["blast_radius_per_hour"] == 2
    cloud = await enforced(api, tenant)
    leases = [(await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED))[1] for _ in range(4)]
    # Managed instances that are not expired count towards the share, not towards the acted.
    for _ in range(6):
        await make_lease(api, cloud, tenant.dev)

    result = await claim(api, *((lease_id, 1) for lease_id in leases))

    assert len(result.claimed) == 2
    [alert] = await outbox(api, BlastRadiusHalted)
    assert "at most 2 per hour" in alert.cap


async def test_observe_mode_is_not_capped(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    leases = [(await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED))[1] for _ in range(4)]

    result = await claim(api, *((lease_id, 1) for lease_id in leases))

    assert len(result.observed) == 4 and result.refused == []
    assert await outbox(api, BlastRadiusHalted) == []


async def test_claim_is_for_the_reaper_only(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED)
    body = {"leases": [{"lease_id": lease_id, "version": 1}]}

    before = (await lease_row(api, lease_id)).status
    as_admin = await api.internal.post("/internal/v1/leases/claim", json=body, headers=tenant.admin.headers)
    refused = [
        (await api.internal.post("/internal/v1/leases/claim", json=body, headers=bearer(service))).status_code
        for service in ("ingestor", "notifier")
    ]
    on_public = await api.client.post("/internal/v1/leases/claim", json=body, headers=bearer("reaper"))
    lease = await lease_row(api, lease_id)
    as_service = await post_internal(api, "/leases/claim", body)

    assert (as_admin.status_code, refused, on_public.status_code) == (404, [404, 404], 404)
    assert lease.status == before != "reaping", "nobody but the reaper claimed it"
    assert as_service.status_code == 200


async def test_a_cloud_account_with_one_instance_can_still_be_reaped(api: Api, tenant: Tenant) -> None:
    cloud = await enforced(api, tenant)
    _, only = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED)

    result = await claim(api, (only, 1))

    assert [c.lease.lease_id for c in result.claimed] == [only], "50% of one instance still lets one go"


async def test_a_zero_percent_cap_holds_everything(api: Api, tenant: Tenant) -> None:
    patched = await api.client.patch(
        f"/api/v1/accounts/{tenant.account_id}/policy", json={"blast_radius_percent": 0},
        headers=tenant.admin.headers,
    )
    assert patched.status_code == 200
    cloud = await enforced(api, tenant)
    _, only = await make_lease(api, cloud, tenant.dev, expires_in=EXPIRED)

    result = await claim(api, (only, 1))

    assert result.claimed == [] and [r.reason for r in result.refused] == ["blast_radius"]
    assert len(await outbox(api, BlastRadiusHalted)) == 1
