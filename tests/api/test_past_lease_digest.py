"""The daily list of instances running past their lease (issue 10): once per UTC day per
account, every lease that ended while its instance runs in an enforced cloud account —
with why it still runs and what it costs a day — goes on the outbox as LeasesPastTheirEnd
for the admins (the notifier mails them, and each owner their own)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col

from zc_common.messages import LeasesPastTheirEnd, utcnow
from zc_common.settings import ApiSettings

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease, make_tenant, running_api
from tests.api.records import lease_row, outbox
from zc_api.audit import service as audit
from zc_api.database import transaction
from zc_api.leases.past_lease_digest import make_digests
from zc_api.models import CloudAccount, Resource
from zc_api.pricing.service import hourly_price

URL = "https://zerocloud.test/leases?state=expired"


async def enforced(api: Api, tenant: Tenant) -> dict[str, Any]:
    cloud = await make_cloud_account(api, tenant)
    async with transaction(api.sessions) as session:
        await session.execute(update(CloudAccount).where(col(CloudAccount.id) == cloud["id"]).values(mode="enforce"))
    return cloud


async def make(api: Api, now: Any = None) -> list[LeasesPastTheirEnd]:
    async with transaction(api.sessions) as session:
        return await make_digests(session, now=now or utcnow(), leases_url=URL)


async def test_each_account_gets_its_own_list_with_why_and_cost_once_a_day(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    cloud = await enforced(api, tenant)
    _, protected = await make_lease(api, cloud, tenant.dev, status="expired", expires_in=timedelta(days=-2))
    _, held = await make_lease(api, cloud, tenant.admin, status="expired", expires_in=timedelta(hours=-1))
    await make_lease(api, cloud, tenant.dev, status="active")  # still leased
    _, stopped = await make_lease(api, cloud, tenant.dev, status="expired", expires_in=timedelta(days=-1))
    observed = await make_cloud_account(api, tenant)  # observe mode: what would have been reaped, not stuck
    await make_lease(api, observed, tenant.dev, status="expired", expires_in=timedelta(days=-1))
    theirs = await enforced(api, other_tenant)
    _, their_lease = await make_lease(api, theirs, other_tenant.dev, status="expired", expires_in=timedelta(days=-1))
    stopped_resource = (await lease_row(api, stopped)).resource_id
    async with transaction(api.sessions) as session:  # someone stopped it: it costs nothing now
        await session.execute(update(Resource).where(col(Resource.id) == stopped_resource).values(state="stopped"))
        audit.record(session, account_id=tenant.account_id, actor="service:api", action="lease.reap_skipped",
                     subject_type="lease", subject_id=protected, reason="stop protection is on")

    made = await make(api)

    by_account = {digest.account_id: digest for digest in made}
    assert sorted(by_account) == sorted([tenant.account_id, other_tenant.account_id])
    mine = by_account[tenant.account_id]
    assert [item.lease.lease_id for item in mine.items] == [protected, held]  # longest past its end first
    assert mine.items[0].why == "stop protection is on"
    price = hourly_price("t3.micro", "us-east-1")
    assert price is not None and mine.items[0].usd_per_day == float(price * 24)
    assert mine.admin_emails == [tenant.admin.email] and mine.leases_url == URL and mine.more == 0
    assert [item.lease.lease_id for item in by_account[other_tenant.account_id].items] == [their_lease]
    assert by_account[other_tenant.account_id].admin_emails == [other_tenant.admin.email]
    on_outbox = await outbox(api, LeasesPastTheirEnd)
    assert sorted(m.message_id for m in on_outbox) == sorted(m.message_id for m in made)
    # The same day again (another replica, the next check): nothing new.
    assert await make(api) == []
    assert len(await outbox(api, LeasesPastTheirEnd)) == 2
    # The next day: a new list.
    assert len(await make(api, utcnow() + timedelta(days=1))) == 2


async def test_the_api_makes_the_list_on_its_own_from_the_hour_set(
    api_settings: Callable[..., ApiSettings],
) -> None:
    settings = api_settings(past_lease_digest_hour=0, past_lease_digest_check_seconds=0.1)
    async with running_api(settings) as started:
        tenant = await make_tenant(started)
        cloud = await enforced(started, tenant)
        _, lease_id = await make_lease(started, cloud, tenant.dev, status="expired", expires_in=timedelta(hours=-5))
        for _ in range(100):
            found = await outbox(started, LeasesPastTheirEnd)
            if found:
                break
            await asyncio.sleep(0.05)
        assert [[item.lease.lease_id for item in m.items] for m in found] == [[lease_id]]
