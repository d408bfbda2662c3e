"""Lease actions over REST: renew, shut down, exempt, change owner. Each is a new version
of the lease, audited with the caller, and its LeaseChanged (the new schedule) is on the
outbox in the same transaction."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from zc_common.errors import InvalidInput, NotFound
from zc_common.messages import LeaseChange, LeaseChanged, LeaseStatus, Role

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease, make_user_token
from tests.api.records import audit_events, lease_row, outbox
from zc_api.auth.principal import Principal
from zc_api.database import transaction
from zc_api.display import stamp
from zc_api.leases import actions

DAY = 86400


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def near(a: datetime, b: datetime, seconds: float = 5) -> bool:
    return abs((a - b).total_seconds()) <= seconds


async def test_renew_by_a_duration_makes_a_new_version_and_reschedules_it(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(days=1))
    before = await lease_row(api, lease_id)

    response = await api.client.post(
        f"/api/v1/leases/{lease_id}/renew", json={"extend_by_seconds": 2 * DAY}, headers=tenant.dev.headers
    )

    assert response.status_code == 200, response.text
    renewed = response.json()
    expected = before.expires_at + timedelta(days=2)
    assert renewed["version"] == 2 and renewed["status"] == "active"
    assert at(renewed["expires_at"]) == expected
    row = await lease_row(api, lease_id)
    assert (row.version, row.expires_at) == (2, expected)
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.renewed
    assert message.lease.version == 2 and message.lease.lease_id == lease_id
    assert message.expire_at == expected
    assert message.warn_at == [expected - timedelta(days=1), expected - timedelta(hours=1)]
    assert message.actor == f"user:{tenant.dev.user_id}"
    [event] = await audit_events(api, action="lease.renewed", subject_id=lease_id)
    assert event.actor == f"user:{tenant.dev.user_id}" and event.message_id == message.message_id


async def test_renew_to_a_time(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    until = (datetime.now(timezone.utc) + timedelta(days=10)).replace(microsecond=0)

    response = await api.client.post(
        f"/api/v1/leases/{lease_id}/renew", json={"until": until.isoformat()}, headers=tenant.admin.headers
    )

    assert response.status_code == 200, response.text
    assert at(response.json()["expires_at"]) == until
    [message] = await outbox(api, LeaseChanged)
    assert message.expire_at == until and message.actor == f"user:{tenant.admin.user_id}"


async def test_renewing_an_expired_lease_makes_it_active_from_now(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, status="expired", expires_in=-timedelta(hours=5))

    response = await api.client.post(
        f"/api/v1/leases/{lease_id}/renew", json={"extend_by_seconds": DAY}, headers=tenant.dev.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "active"
    assert near(at(response.json()["expires_at"]), datetime.now(timezone.utc) + timedelta(days=1))


@pytest.mark.parametrize(
    "body",
    [
        {"extend_by_seconds": 20 * DAY},
        {"until": (datetime.now(timezone.utc) + timedelta(days=15)).isoformat()},
    ],
)
async def test_renewing_past_the_max_lease_is_422_naming_the_max(
    api: Api, tenant: Tenant, body: dict[str, object]
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)

    response = await api.client.post(f"/api/v1/leases/{lease_id}/renew", json=body, headers=tenant.dev.headers)

    assert response.status_code == 422
    error = response.json()
    assert "14 days" in error["detail"] and "1209600 s" in error["detail"]
    assert error["field"] == next(iter(body))
    assert (await lease_row(api, lease_id)).version == 1
    assert await outbox(api, LeaseChanged) == []


async def test_the_owners_own_max_lease_bounds_a_renewal(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    put = await api.client.put(
        f"/api/v1/users/{tenant.dev.user_id}/policy", json={"default_lease_seconds": DAY, "max_lease_seconds": 2 * DAY},
        headers=tenant.admin.headers,
    )
    assert put.status_code == 200, put.text

    # The admin renews, but the owner's maximum applies.
    response = await api.client.post(
        f"/api/v1/leases/{lease_id}/renew", json={"until": (datetime.now(timezone.utc) + timedelta(days=3)).isoformat()},
        headers=tenant.admin.headers,
    )

    assert response.status_code == 422
    assert "2 days (172800 s)" in response.json()["detail"]


async def test_renewing_to_the_maximum_goes_exactly_as_far_as_a_renewal_is_allowed(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    """One definition of "as far as allowed" (``actions.latest_expiry``): what the page's
    "To the maximum" renews to is the bound the API's 422 names, for whoever may see the lease."""
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    dev = tenant.dev
    owner = Principal(kind="user", user_id=dev.user_id, account_id=tenant.account_id, role=Role.dev, email=dev.email)
    stranger = Principal(kind="user", user_id=other_tenant.admin.user_id, account_id=other_tenant.account_id,
                         role=Role.admin, email=other_tenant.admin.email)
    now = datetime.now(timezone.utc)

    with pytest.raises(NotFound):
        async with transaction(api.sessions) as session:
            await actions.renew(session, caller=stranger, lease_id=lease_id, to_maximum=True, now=now)
    async with transaction(api.sessions) as session:
        record = await actions.renew(session, caller=owner, lease_id=lease_id, to_maximum=True, now=now)
        latest = actions.latest_expiry(record, now=now)
    with pytest.raises(InvalidInput) as refused:
        async with transaction(api.sessions) as session:
            await actions.renew(session, caller=owner, lease_id=lease_id, extend_by_seconds=60, now=now)

    assert latest == now + timedelta(days=14)
    assert (await lease_row(api, lease_id)).expires_at == latest
    assert f"ask for {stamp(latest)} or earlier" in str(refused.value)
    [renewal] = await audit_events(api, action="lease.renewed", subject_id=lease_id)
    assert renewal.actor == f"user:{dev.user_id}"


async def test_renew_needs_a_duration_or_a_time_but_not_both(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    path = f"/api/v1/leases/{lease_id}/renew"
    until = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()

    neither = await api.client.post(path, json={}, headers=tenant.dev.headers)
    both = await api.client.post(path, json={"extend_by_seconds": 60, "until": until}, headers=tenant.dev.headers)
    past = await api.client.post(path, json={"until": "2001-01-01T00:00:00Z"}, headers=tenant.dev.headers)

    assert [r.status_code for r in (neither, both, past)] == [422, 422, 422]
    assert past.json()["field"] == "until"
    assert (await lease_row(api, lease_id)).version == 1


async def test_a_developer_renewing_anothers_lease_gets_404(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    colleague = await make_user_token(api, tenant.account_id)
    _, theirs = await make_lease(api, cloud, colleague)
    body = {"extend_by_seconds": DAY}

    by_colleague = await api.client.post(f"/api/v1/leases/{theirs}/renew", json=body, headers=tenant.dev.headers)
    by_other_tenant = await api.client.post(
        f"/api/v1/leases/{theirs}/renew", json=body, headers=other_tenant.admin.headers
    )

    assert by_colleague.status_code == 404 and by_other_tenant.status_code == 404
    assert (await lease_row(api, theirs)).version == 1


@pytest.mark.parametrize("status", ["reaping", "reaped", "released"])
async def test_a_lease_being_or_already_reaped_cannot_be_renewed(api: Api, tenant: Tenant, status: str) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, status=status, expires_in=-timedelta(minutes=1))

    response = await api.client.post(
        f"/api/v1/leases/{lease_id}/renew", json={"extend_by_seconds": DAY}, headers=tenant.dev.headers
    )

    assert response.status_code == 409
    assert {"reaping": "claimed", "reaped": "stopped", "released": "gone"}[status] in response.json()["detail"]
    row = await lease_row(api, lease_id)
    assert (row.version, row.status) == (1, status)


async def test_shutdown_expires_the_lease_now(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)

    response = await api.client.post(f"/api/v1/leases/{lease_id}/shutdown", headers=tenant.dev.headers)

    assert response.status_code == 200, response.text
    row = await lease_row(api, lease_id)
    assert (row.status, row.version) == ("expired", 2)
    assert near(row.expires_at, datetime.now(timezone.utc))
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.shutdown_requested
    assert message.lease.status is LeaseStatus.expired
    assert message.expire_at == row.expires_at, "the scheduler fires LeaseExpired at once"
    assert message.warn_at == []
    [event] = await audit_events(api, action="lease.shutdown_requested", subject_id=lease_id)
    assert event.actor == f"user:{tenant.dev.user_id}"


async def test_shutdown_of_a_reaped_lease_is_409(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, status="reaped")

    response = await api.client.post(f"/api/v1/leases/{lease_id}/shutdown", headers=tenant.admin.headers)

    assert response.status_code == 409
    assert await outbox(api, LeaseChanged) == []


async def test_exempt_needs_an_admin(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    colleague = await make_user_token(api, tenant.account_id)
    _, mine = await make_lease(api, cloud, tenant.dev)
    _, theirs = await make_lease(api, cloud, colleague)
    body = {"reason": "the demo on Friday"}

    own = await api.client.post(f"/api/v1/leases/{mine}/exempt", json=body, headers=tenant.dev.headers)
    other = await api.client.post(f"/api/v1/leases/{theirs}/exempt", json=body, headers=tenant.dev.headers)

    assert own.status_code == 403 and other.status_code == 404
    assert [(await lease_row(api, i)).status for i in (mine, theirs)] == ["active", "active"]
    assert await outbox(api, LeaseChanged) == []


async def test_exempt_until_a_time_keeps_an_expiry_timer_at_that_time(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    until = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)

    response = await api.client.post(
        f"/api/v1/leases/{lease_id}/exempt", json={"reason": "quarter-end load test", "until": until.isoformat()},
        headers=tenant.admin.headers,
    )

    assert response.status_code == 200, response.text
    shown = response.json()
    assert (shown["status"], shown["version"], shown["exempt_reason"]) == ("exempt", 2, "quarter-end load test")
    assert at(shown["expires_at"]) == until
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.exempted and message.reason == "quarter-end load test"
    assert message.expire_at == until
    [event] = await audit_events(api, action="lease.exempted", subject_id=lease_id)
    assert event.actor == f"user:{tenant.admin.user_id}" and event.reason == "quarter-end load test"


async def test_exempt_without_an_end_has_no_timers(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)

    response = await api.client.post(
        f"/api/v1/leases/{lease_id}/exempt", json={"reason": "the build server"}, headers=tenant.admin.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "exempt"
    [message] = await outbox(api, LeaseChanged)
    assert message.expire_at is None and message.warn_at == []


async def test_owner_change_to_a_user_of_the_account(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    colleague = await make_user_token(api, tenant.account_id)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    path = f"/api/v1/leases/{lease_id}/owner"

    stranger = await api.client.post(path, json={"email": other_tenant.dev.email}, headers=tenant.admin.headers)
    by_dev = await api.client.post(path, json={"email": colleague.email}, headers=tenant.dev.headers)
    assert stranger.status_code == 422 and stranger.json()["field"] == "email"
    assert by_dev.status_code == 403
    assert await outbox(api, LeaseChanged) == []

    response = await api.client.post(path, json={"email": colleague.email.upper()}, headers=tenant.admin.headers)

    assert response.status_code == 200, response.text
    assert (response.json()["owner_email"], response.json()["version"]) == (colleague.email, 2)
    row = await lease_row(api, lease_id)
    assert row.owner_user_id == colleague.user_id
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.owner_changed and message.lease.owner_email == colleague.email
    assert message.expire_at == row.expires_at, "the lease keeps its schedule, under the new version"
    [event] = await audit_events(api, action="lease.owner_changed", subject_id=lease_id)
    assert event.actor == f"user:{tenant.admin.user_id}"
    assert event.details["previous_owner_email"] == tenant.dev.email
    # The colleague sees it now; the former owner does not.
    assert (await api.client.get(f"/api/v1/leases/{lease_id}", headers=colleague.headers)).status_code == 200
    assert (await api.client.get(f"/api/v1/leases/{lease_id}", headers=tenant.dev.headers)).status_code == 404


async def test_owner_change_to_an_unconfirmed_address_is_refused(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    newcomer = await make_user_token(api, tenant.account_id, confirmed=False)
    _, lease_id = await make_lease(api, cloud, tenant.dev)

    response = await api.client.post(
        f"/api/v1/leases/{lease_id}/owner", json={"email": newcomer.email}, headers=tenant.admin.headers
    )

    assert response.status_code == 422 and response.json()["field"] == "email"
    assert "not confirmed" in response.json()["detail"]
    assert (await lease_row(api, lease_id)).owner_user_id == tenant.dev.user_id
    assert await outbox(api, LeaseChanged) == []
