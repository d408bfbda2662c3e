"""What the reaper reports: stopped or terminated → reaped, gone → released, skipped →
back to expired (renewable), each a new version with its LeaseChanged; a report for a
lease not held at that version changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from zc_common.internal_api import LeaseRef, ReapOutcome, ReapOutcomeKind
from zc_common.messages import LeaseChange, LeaseChanged, LeaseStatus

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease
from tests.api.records import audit_events, internal_client, lease_row, outbox
from zc_api.leases.messages import REAP_RETRY


async def claimed_lease(api: Api, tenant: Tenant) -> int:
    cloud = await make_cloud_account(api, tenant, mode="enforce")
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=-timedelta(minutes=1))
    async with internal_client(api, "reaper") as client:
        result = await client.claim([LeaseRef(lease_id=lease_id, version=1)])
    assert [c.lease.lease_id for c in result.claimed] == [lease_id]
    return lease_id


async def report(api: Api, *outcomes: ReapOutcome) -> None:
    async with internal_client(api, "reaper") as client:
        await client.report_outcomes(list(outcomes))


@pytest.mark.parametrize("kind", [ReapOutcomeKind.stopped, ReapOutcomeKind.terminated])
async def test_stopped_or_terminated_means_reaped(api: Api, tenant: Tenant, kind: ReapOutcomeKind) -> None:
    lease_id = await claimed_lease(api, tenant)

    await report(api, ReapOutcome(lease_id=lease_id, version=1, outcome=kind))

    row = await lease_row(api, lease_id)
    assert (row.status, row.version) == ("reaped", 2)
    assert row.reaped_at is not None and row.ended_at is not None
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.reaped and message.reason == kind.value
    assert message.lease.status is LeaseStatus.reaped and message.lease.version == 2
    assert message.expire_at is None and message.actor == "service:reaper"
    [event] = await audit_events(api, action="lease.reaped", subject_id=lease_id)
    assert event.actor == "service:reaper"


async def test_gone_means_released(api: Api, tenant: Tenant) -> None:
    lease_id = await claimed_lease(api, tenant)

    await report(api, ReapOutcome(lease_id=lease_id, version=1, outcome=ReapOutcomeKind.gone, reason="terminated"))

    row = await lease_row(api, lease_id)
    assert (row.status, row.version) == ("released", 2)
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.released


async def test_skipped_goes_back_to_expired_with_the_reason(api: Api, tenant: Tenant) -> None:
    lease_id = await claimed_lease(api, tenant)

    await report(
        api,
        ReapOutcome(lease_id=lease_id, version=1, outcome=ReapOutcomeKind.skipped, reason="stop protection enabled"),
    )

    row = await lease_row(api, lease_id)
    assert (row.status, row.version) == ("expired", 2)
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.reap_skipped and message.reason == "stop protection enabled"
    assert message.lease.status is LeaseStatus.expired
    # Never forgotten: the reaper tries again in a day (and the owner hears of it again).
    assert message.expire_at == message.occurred_at + REAP_RETRY and message.warn_at == []
    # The owner can still keep it.
    renewed = await api.client.post(
        f"/api/v1/leases/{lease_id}/renew", json={"extend_by_seconds": 3600}, headers=tenant.dev.headers
    )
    assert renewed.status_code == 200


async def test_an_outcome_for_a_lease_not_held_at_that_version_is_ignored(api: Api, tenant: Tenant) -> None:
    lease_id = await claimed_lease(api, tenant)
    cloud = await make_cloud_account(api, tenant, mode="enforce")
    _, active = await make_lease(api, cloud, tenant.dev)

    await report(
        api,
        ReapOutcome(lease_id=lease_id, version=7, outcome=ReapOutcomeKind.stopped),
        ReapOutcome(lease_id=active, version=1, outcome=ReapOutcomeKind.stopped),
        ReapOutcome(lease_id=999_999, version=1, outcome=ReapOutcomeKind.gone),
    )

    assert ((await lease_row(api, lease_id)).status, (await lease_row(api, active)).status) == ("reaping", "active")
    assert await outbox(api, LeaseChanged) == []


async def test_a_repeated_report_changes_nothing(api: Api, tenant: Tenant) -> None:
    lease_id = await claimed_lease(api, tenant)
    stopped = ReapOutcome(lease_id=lease_id, version=1, outcome=ReapOutcomeKind.stopped)

    await report(api, stopped)
    await report(api, stopped)

    assert (await lease_row(api, lease_id)).version == 2
    assert len(await outbox(api, LeaseChanged)) == 1
