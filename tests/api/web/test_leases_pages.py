"""The leases pages: a developer sees their own leases, an admin the account's, never
another tenant's; renew within policy and shut down through forms that POST, answer with
a redirect and show the outcome; a GET never acts."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from sqlalchemy import update
from sqlmodel import col

from zc_common.messages import LeaseChange, LeaseChanged

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease
from tests.api.records import audit_events, lease_row, outbox
from zc_api.database import transaction
from zc_api.leases.policy import NEVER_EXPIRES
from zc_api.models import AccountPolicy, Lease, Resource

if TYPE_CHECKING:
    from tests.api.web.pages_fixtures import PageClientFactory

pytest_plugins = ["tests.api.web.pages_fixtures"]


async def test_a_developer_sees_only_their_own_leases_with_cost_and_time_left(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    theirs = await make_cloud_account(api, other_tenant)
    resource_id, mine = await make_lease(api, cloud, tenant.dev, instance_id="i-0000000000000mine",
                                         expires_in=timedelta(hours=2, minutes=30))
    await make_lease(api, cloud, tenant.admin, instance_id="i-00000000000admins")
    await make_lease(api, theirs, other_tenant.dev, instance_id="i-0000000000stranger")
    async with transaction(api.sessions) as session:
        await session.execute(update(Resource).where(col(Resource.id) == resource_id).values(
            launch_time=datetime.now(timezone.utc) - timedelta(hours=10)))
    dev = await page_client(tenant.dev)

    response = await dev.get("/leases")

    assert response.status_code == 200
    assert "i-0000000000000mine" in response.text
    assert "i-00000000000admins" not in response.text and "i-0000000000stranger" not in response.text
    assert "t3.micro" in response.text and "us-east-1" in response.text and cloud["name"] in response.text
    assert "in 2 h" in response.text
    assert "$0.10" in response.text  # 10 h of t3.micro in us-east-1 at $0.0104
    assert f'action="/leases/{mine}/renew"' in response.text and f'href="/leases/{mine}/shutdown"' in response.text
    assert 'name="owner"' not in response.text  # only admins filter by owner
    assert "<script" not in response.text


async def test_an_admin_sees_the_accounts_leases_and_filters_them(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant, regions=["us-east-1", "eu-west-1"])
    theirs = await make_cloud_account(api, other_tenant)
    await make_lease(api, cloud, tenant.dev, instance_id="i-000000000000devs1")
    await make_lease(api, cloud, tenant.admin, instance_id="i-000000000000admin", region="eu-west-1")
    await make_lease(api, cloud, tenant.dev, instance_id="i-00000000000reaped", status="reaped")
    await make_lease(api, theirs, other_tenant.dev, instance_id="i-0000000000stranger")
    admin = await page_client(tenant.admin)

    everything = await admin.get("/leases")
    by_owner = await admin.get("/leases", owner=tenant.dev.email)
    by_region = await admin.get("/leases", region="eu-west-1")
    ended = await admin.get("/leases", state="reaped")
    any_state = await admin.get("/leases", state="")

    assert everything.status_code == 200
    assert "i-000000000000devs1" in everything.text and "i-000000000000admin" in everything.text
    assert "i-00000000000reaped" not in everything.text  # live leases by default
    assert "i-0000000000stranger" not in everything.text
    assert 'name="owner"' in everything.text and tenant.dev.email in everything.text
    assert "i-000000000000devs1" in by_owner.text and "i-000000000000admin" not in by_owner.text
    assert "i-000000000000admin" in by_region.text and "i-000000000000devs1" not in by_region.text
    assert "i-00000000000reaped" in ended.text and "i-000000000000devs1" not in ended.text
    assert "i-00000000000reaped" in any_state.text and "ended" in any_state.text
    assert "i-0000000000stranger" not in any_state.text


async def test_a_developer_cannot_filter_by_another_owner(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    await make_lease(api, cloud, tenant.admin, instance_id="i-00000000000admins")
    dev = await page_client(tenant.dev)

    response = await dev.get("/leases", owner=tenant.admin.email, state="")

    assert response.status_code == 200 and "i-00000000000admins" not in response.text


async def test_renewing_redirects_to_the_list_with_the_new_end(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, instance_id="i-0000000000renewme",
                                   expires_in=timedelta(hours=1))
    before = await lease_row(api, lease_id)
    dev = await page_client(tenant.dev)

    done = await dev.post(f"/leases/{lease_id}/renew", {"extend": str(86400), "return_to": "/leases?region=us-east-1"})

    assert done.status_code == 303
    assert done.headers["location"] == f"/leases?region=us-east-1&notice=renewed&lease={lease_id}"
    row = await lease_row(api, lease_id)
    assert (row.version, row.status) == (2, "active")
    assert row.expires_at == before.expires_at + timedelta(days=1)
    [event] = await audit_events(api, action="lease.renewed", subject_id=lease_id)
    assert event.actor == f"user:{tenant.dev.user_id}"
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.renewed
    shown = await dev.get(done.headers["location"])
    assert f"Renewed box i-0000000000renewme (i-0000000000renewme) until {row.expires_at:%Y-%m-%d %H:%M} UTC" in shown.text


async def test_renewing_past_the_max_lease_says_the_max_and_keeps_the_choice(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(days=10))
    dev = await page_client(tenant.dev)

    refused = await dev.post(f"/leases/{lease_id}/renew", {"extend": str(7 * 86400)})

    assert refused.status_code == 422
    assert "You asked for 7 days more, but a lease can run at most 14 days" in refused.text
    assert '<option value="604800" selected>' in refused.text
    assert (await lease_row(api, lease_id)).version == 1
    assert await outbox(api, LeaseChanged) == []


async def test_the_renew_choices_stop_at_the_max_lease_and_max_renews_to_it(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    async with transaction(api.sessions) as session:
        await session.execute(update(AccountPolicy).where(col(AccountPolicy.account_id) == tenant.account_id)
                              .values(default_lease_seconds=3600, max_lease_seconds=8 * 3600))
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(minutes=30))
    dev = await page_client(tenant.dev)

    shown = await dev.get(f"/leases/{lease_id}")
    done = await dev.post(f"/leases/{lease_id}/renew", {"extend": "max", "return_to": f"/leases/{lease_id}"})

    assert '<option value="28800"' in shown.text and '<option value="86400"' not in shown.text
    assert "at most 8 hours from now" in shown.text
    assert done.status_code == 303 and done.headers["location"] == f"/leases/{lease_id}?notice=renewed"
    expires = (await lease_row(api, lease_id)).expires_at
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(hours=8))) < timedelta(seconds=10)


async def test_an_unknown_renew_choice_is_refused_on_the_page(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    dev = await page_client(tenant.dev)

    refused = await dev.post(f"/leases/{lease_id}/renew", {"extend": "forever"})

    assert refused.status_code == 422 and "Choose from the list" in refused.text


async def test_shutting_down_is_confirmed_on_its_own_page_then_posted(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant, mode="enforce")
    _, lease_id = await make_lease(api, cloud, tenant.dev, instance_id="i-00000000shutmedown")
    dev = await page_client(tenant.dev)

    confirm = await dev.get(f"/leases/{lease_id}/shutdown")

    assert confirm.status_code == 200 and "stopped within moments" in confirm.text
    assert 'class="danger"' in confirm.text
    assert (await lease_row(api, lease_id)).status == "active"  # GET never acts

    done = await dev.post(f"/leases/{lease_id}/shutdown")

    assert done.status_code == 303 and done.headers["location"] == f"/leases?notice=shutdown&lease={lease_id}"
    row = await lease_row(api, lease_id)
    assert (row.status, row.version) == ("expired", 2)
    shown = await dev.get(done.headers["location"])
    assert "Shutting down box i-00000000shutmedown (i-00000000shutmedown)" in shown.text


async def test_shutting_down_in_observe_mode_says_nothing_changes_in_aws(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    dev = await page_client(tenant.dev)

    confirm = await dev.get(f"/leases/{lease_id}/shutdown")
    done = await dev.post(f"/leases/{lease_id}/shutdown")
    shown = await dev.get(done.headers["location"])

    assert "observe mode" in confirm.text and 'class="danger"' not in confirm.text
    assert "keeps running" in shown.text


async def test_shutting_down_a_reaped_lease_says_why_not(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, status="reaped")
    dev = await page_client(tenant.dev)

    refused = await dev.post(f"/leases/{lease_id}/shutdown")

    assert refused.status_code == 409 and "already" in refused.text
    assert (await lease_row(api, lease_id)).version == 1


async def test_the_detail_page_shows_the_audit_trail(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(hours=1))
    dev = await page_client(tenant.dev)
    await dev.post(f"/leases/{lease_id}/renew", {"extend": "3600"})

    shown = await dev.get(f"/leases/{lease_id}")

    assert shown.status_code == 200
    assert "lease.renewed" in shown.text and "you" in shown.text and "via: api" in shown.text


async def test_another_tenants_or_colleagues_lease_is_not_found(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    theirs = await make_cloud_account(api, other_tenant)
    cloud = await make_cloud_account(api, tenant)
    _, stranger = await make_lease(api, theirs, other_tenant.dev)
    _, colleagues = await make_lease(api, cloud, tenant.admin)
    dev = await page_client(tenant.dev)
    admin = await page_client(tenant.admin)

    for client, lease_id in ((dev, stranger), (dev, colleagues), (admin, stranger)):
        for response in (
            await client.get(f"/leases/{lease_id}"), await client.get(f"/leases/{lease_id}/shutdown"),
            await client.post(f"/leases/{lease_id}/shutdown"), await client.post(f"/leases/{lease_id}/renew", {"extend": "3600"}),
        ):
            assert response.status_code == 404, response.text
            assert "not found" in response.text.lower() and response.headers["content-type"].startswith("text/html")
    assert (await lease_row(api, stranger)).version == 1 and (await lease_row(api, colleagues)).version == 1


async def test_a_post_without_the_csrf_token_is_refused(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    dev = await page_client(tenant.dev)

    refused = await dev.post(f"/leases/{lease_id}/shutdown", csrf=False)

    assert refused.status_code == 403
    assert (await lease_row(api, lease_id)).status == "active"


async def test_signed_out_the_leases_page_sends_to_sign_in(api: Api) -> None:
    response = await api.client.get("/leases?state=expired")

    assert response.status_code == 303 and response.headers["location"].startswith("/login?next=/leases")


async def test_renewing_a_reaped_lease_says_why_not(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, status="reaped")
    dev = await page_client(tenant.dev)

    refused = await dev.post(f"/leases/{lease_id}/renew", {"extend": "3600"})

    assert refused.status_code == 409 and 'class="problem"' in refused.text and "cannot be renewed" in refused.text
    assert 'name="extend"' not in refused.text


async def test_the_list_is_paged_with_links_that_keep_the_filters(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant, regions=["us-east-1", "eu-west-1"])
    for n in range(60):
        await make_lease(api, cloud, tenant.dev, instance_id=f"i-{n:017x}", expires_in=timedelta(hours=1 + n))
    await make_lease(api, cloud, tenant.dev, region="eu-west-1")
    admin = await page_client(tenant.admin)

    first = await admin.get("/leases", region="us-east-1", owner=tenant.dev.email)
    owner = tenant.dev.email.replace("@", "%40")
    found = re.search(r'rel="next" href="/leases\?([^"]+)"', first.text)
    assert found is not None
    next_query = html.unescape(found.group(1))
    assert next_query.startswith(f"owner={owner}&region=us-east-1&cursor=") and next_query.endswith("&at=50")
    second = await admin.get("/leases", **dict(parse_qsl(next_query)))
    by_offset = await admin.get("/leases", region="us-east-1", owner=tenant.dev.email, offset="50")

    rows = 'data-label="Instance"'
    assert first.text.count(rows) == 50 and second.text.count(rows) == 10
    assert "60 leases." in first.text and "1–50 of 60" in first.text and "51–60 of 60" in second.text
    assert 'rel="prev"' not in first.text and 'rel="first"' not in first.text and 'rel="next"' not in second.text
    assert f'rel="first" href="/leases?owner={owner}&amp;region=us-east-1"' in second.text
    # Soonest expiry first, across the pages.
    assert f"i-{0:017x}" in first.text and f"i-{59:017x}" in second.text and f"i-{59:017x}" not in first.text
    # A renewal from the second page comes back to it.
    assert f'name="return_to" value="/leases?{html.escape(next_query)}"' in second.text
    # An offset (links made before cursors) still reaches the same page.
    assert by_offset.text.count(rows) == 10 and "51–60 of 60" in by_offset.text
    assert f'rel="prev" href="/leases?owner={owner}&amp;region=us-east-1"' in by_offset.text


async def test_an_unpriced_instance_and_an_endless_exemption_say_so(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    unpriced, _ = await make_lease(api, cloud, tenant.dev, instance_id="i-00000000000nprice")
    _, exempt = await make_lease(api, cloud, tenant.dev, instance_id="i-0000000000exempt1", status="exempt")
    async with transaction(api.sessions) as session:
        await session.execute(update(Resource).where(col(Resource.id) == unpriced).values(instance_type="x9.huge"))
        await session.execute(update(Lease).where(col(Lease.id) == exempt).values(expires_at=NEVER_EXPIRES))
    dev = await page_client(tenant.dev)

    listed = await dev.get("/leases")
    shown = await dev.get(f"/leases/{exempt}")

    assert listed.text.count("no price") == 1 and "no end date" in listed.text
    assert "$0.00" in listed.text or "under $0.01" in listed.text  # the exempt t3.micro, just leased
    assert shown.status_code == 200 and "no end date" in shown.text


async def test_an_instance_running_past_its_lease_says_so_in_the_api_and_on_the_page(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, past = await make_lease(api, cloud, tenant.dev, status="expired", expires_in=-timedelta(hours=3),
                               instance_id="i-00000000000000past")
    stopped_id, stopped = await make_lease(api, cloud, tenant.dev, status="expired", expires_in=-timedelta(hours=3))
    _, running = await make_lease(api, cloud, tenant.dev)
    async with transaction(api.sessions) as session:
        await session.execute(update(Resource).where(col(Resource.id) == stopped_id).values(state="stopped"))

    answers = {lease_id: (await api.client.get(f"/api/v1/leases/{lease_id}", headers=tenant.dev.headers)).json()
               for lease_id in (past, stopped, running)}
    page = await (await page_client(tenant.dev)).get("/leases")

    assert {lease_id: a["past_its_lease"] for lease_id, a in answers.items()} == {
        past: True, stopped: False, running: False
    }
    assert page.text.count("running past its lease") == 1


async def test_a_cursor_that_is_not_the_pages_own_is_a_422_page(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    for path in ("/leases", "/audit"):
        refused = await admin.get(path, cursor="not-a-cursor", at="50")
        assert refused.status_code == 422, path
        assert "cursor cannot be read" in refused.text and "first page" in refused.text, path
