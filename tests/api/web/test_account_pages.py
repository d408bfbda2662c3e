"""The API tokens page (everyone), the summary and the audit log (admins): each for the
right role, each showing its own tenant's data only."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from sqlalchemy import update
from sqlmodel import col

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease
from zc_api.database import transaction
from zc_api.models import Lease

if TYPE_CHECKING:
    from tests.api.web.pages_fixtures import PageClientFactory

pytest_plugins = ["tests.api.web.pages_fixtures"]


# --- tokens -------------------------------------------------------------------------------


async def test_a_new_token_is_shown_once_and_works(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    dev = await page_client(tenant.dev)

    created = await dev.post("/tokens", {"name": "laptop"})

    assert created.status_code == 200
    token = re.search(r'id="token" class="secret wide" type="text" readonly value="(zc_[^"]+)"', created.text)
    assert token is not None
    assert f"zerocloud-cli login --api-url http://127.0.0.1:8000 --token {token.group(1)}" in created.text
    me = await api.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {token.group(1)}"})
    assert me.status_code == 200 and me.json()["email"] == tenant.dev.email
    listed = await dev.get("/tokens")
    assert "laptop" in listed.text and token.group(1)[:10] in listed.text and token.group(1) not in listed.text


async def test_a_token_needs_a_name(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    dev = await page_client(tenant.dev)

    refused = await dev.post("/tokens", {"name": "  "})

    assert refused.status_code == 422 and 'id="e-name"' in refused.text


async def test_revoking_a_token_stops_it_and_only_your_own(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    dev = await page_client(tenant.dev)
    admin = await page_client(tenant.admin)
    listed = await dev.get("/tokens")
    [token_id] = re.findall(r'action="/tokens/(\d+)/revoke"', listed.text)  # the factory's token

    assert (await admin.post(f"/tokens/{token_id}/revoke")).status_code == 404
    done = await dev.post(f"/tokens/{token_id}/revoke")

    assert done.status_code == 303 and done.headers["location"] == "/tokens?notice=revoked"
    assert (await api.client.get("/api/v1/users/me", headers=tenant.dev.headers)).status_code == 401
    assert "was revoked" in (await dev.get("/tokens?notice=revoked")).text


# --- summary ------------------------------------------------------------------------------


async def test_the_summary_counts_the_accounts_leases_and_draws_the_chart(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    theirs = await make_cloud_account(api, other_tenant)
    await make_lease(api, cloud, tenant.dev)
    await make_lease(api, cloud, tenant.dev, status="expired", expires_in=-timedelta(hours=1))
    _, reaped = await make_lease(api, cloud, tenant.dev, status="reaped")
    for _ in range(3):
        await make_lease(api, theirs, other_tenant.dev)
    async with transaction(api.sessions) as session:
        await session.execute(update(Lease).where(col(Lease.id) == reaped).values(
            reaped_at=Lease.created_at, ended_at=Lease.created_at))
    admin = await page_client(tenant.admin)

    shown = await admin.get("/summary")

    assert shown.status_code == 200
    assert '<span class="number">2</span> live instances' in shown.text
    assert '<span class="number">1</span> reaped' in shown.text
    assert '<span class="number">1</span> instances reaped' in shown.text
    assert "<svg" in shown.text and "<rect" in shown.text and "<script" not in shown.text
    assert "at most 30 days" in shown.text
    assert shown.headers["content-security-policy"].startswith("default-src 'none'")


async def test_the_start_page_sends_admins_to_the_summary_and_developers_to_their_leases(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)
    dev = await page_client(tenant.dev)

    assert (await admin.get("/")).headers["location"] == "/summary"
    assert (await dev.get("/")).headers["location"] == "/leases"
    nav = (await dev.get("/leases")).text
    assert 'href="/tokens"' in nav and 'href="/summary"' not in nav and 'href="/policy"' not in nav


async def test_admin_pages_are_403_for_developers(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    dev = await page_client(tenant.dev)

    for path in ("/summary", "/audit", "/users", "/policy", "/cloud-accounts"):
        response = await dev.get(path)
        assert response.status_code == 403, path
        assert "only an admin" in response.text and response.headers["content-type"].startswith("text/html")


# --- audit --------------------------------------------------------------------------------


async def test_the_audit_log_is_the_accounts_own_and_filters(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    theirs = await make_cloud_account(api, other_tenant)
    admin = await page_client(tenant.admin)

    everything = await admin.get("/audit")
    created = await admin.get("/audit", action="cloud_account.created")
    by_other = await admin.get("/audit", actor=f"user:{tenant.dev.user_id}")
    future = await admin.get("/audit", since="2999-01-01")
    bad = await admin.get("/audit", since="yesterday", subject_id="abc")

    assert everything.status_code == 200
    assert "cloud_account.created" in everything.text and "account.created" in everything.text
    assert f'href="/cloud-accounts/{cloud["id"]}"' in everything.text
    assert theirs["name"] not in everything.text and tenant.admin.email in everything.text
    assert "cloud_account.created" in created.text and ">account.created<" not in created.text
    assert "0 events" in by_other.text and "0 events" in future.text
    assert bad.status_code == 200 and 'id="e-since"' in bad.text and 'id="e-subject_id"' in bad.text


async def test_the_audit_log_pages_to_older_events_by_cursor(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    for n in range(55):
        await api.client.patch(f"/api/v1/cloudaccounts/{cloud['id']}", json={"name": f"prod {n}"},
                               headers=tenant.admin.headers)
    admin = await page_client(tenant.admin)

    newest = await admin.get("/audit", action="cloud_account.updated")
    found = re.search(r'rel="next" href="/audit\?([^"]+)"', newest.text)
    assert found is not None
    older = await admin.get("/audit", **dict(parse_qsl(html.unescape(found.group(1)))))

    assert "55 events" in newest.text and "1–50 of 55" in newest.text and 'rel="prev"' not in newest.text
    assert "51–55 of 55" in older.text and 'rel="next"' not in older.text
    assert 'rel="first" href="/audit?action=cloud_account.updated"' in older.text
    assert newest.text.count('data-label="Subject"') == 50 and older.text.count('data-label="Subject"') == 5
