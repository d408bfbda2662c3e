"""Switching a cloud account from observe to enforce: what ended while it only observed
is not stopped the moment the switch is made; each such lease gets a notice period (a
little past the policy's longest warning) with its warnings, then is reaped unless
renewed. Leases that are still running their course are not touched."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from zc_common.messages import LeaseChange, LeaseChanged

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease
from tests.api.records import audit_events, lease_row, outbox


async def test_leases_that_ended_in_observe_mode_get_a_notice_period(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    assert cloud["mode"] == "observe"
    _, ended = await make_lease(api, cloud, tenant.dev, status="expired", expires_in=-timedelta(hours=5))
    _, running = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(days=2))
    before = await lease_row(api, running)

    switched = datetime.now(timezone.utc)
    response = await api.client.patch(
        f"/api/v1/cloudaccounts/{cloud['id']}", json={"mode": "enforce"}, headers=tenant.admin.headers
    )

    assert response.status_code == 200, response.text
    row = await lease_row(api, ended)
    # The default policy warns 24 h and 1 h before the end: the notice is 24 h and 5 min.
    assert row.status == "active" and row.version == 2
    notice = row.expires_at - switched
    assert timedelta(hours=24, minutes=4) < notice < timedelta(hours=24, minutes=6)
    [message] = await outbox(api, LeaseChanged)
    assert message.lease.lease_id == ended and message.change is LeaseChange.renewed
    assert message.expire_at == row.expires_at
    assert len(message.warn_at) == 2 and message.warn_at[0] > switched, "both warnings are still ahead"
    [event] = await audit_events(api, action="lease.renewed", subject_id=ended)
    assert event.actor == f"user:{tenant.admin.user_id}" and "now enforces" in (event.reason or "")
    untouched = await lease_row(api, running)
    assert (untouched.version, untouched.expires_at) == (before.version, before.expires_at)


async def test_a_switch_back_and_forth_or_another_change_leaves_leases_alone(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant, mode="enforce")
    _, ended = await make_lease(api, cloud, tenant.dev, status="expired", expires_in=-timedelta(minutes=1))
    path = f"/api/v1/cloudaccounts/{cloud['id']}"

    renamed = await api.client.patch(path, json={"name": "prod", "mode": "enforce"}, headers=tenant.admin.headers)
    observe = await api.client.patch(path, json={"mode": "observe"}, headers=tenant.admin.headers)

    assert renamed.status_code == observe.status_code == 200
    assert (await lease_row(api, ended)).version == 1, "only a change from observe to enforce reschedules"
    assert await outbox(api, LeaseChanged) == []
