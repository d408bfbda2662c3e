"""The pages an emailed link opens share the web UI's layout and stylesheet, and keep
their stricter headers: no Referer (the token is in the URL), no indexing, no script."""

from __future__ import annotations

from zc_common.internal_api import LeaseAction, LeaseRef

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease
from tests.api.records import internal_client


async def test_link_pages_use_the_shared_layout_with_strict_headers(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant, mode="enforce")
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    async with internal_client(api, "notifier") as client:
        [answer] = await client.action_links([LeaseRef(lease_id=lease_id, version=1)])
    path = answer.links[LeaseAction.shutdown].split("/a/", 1)[1]

    pages = [await api.client.get(f"/a/{path}"), await api.client.post(f"/a/{path}"),
             await api.client.post(f"/a/{path}")]  # confirm, done, refused (used)

    assert [p.status_code for p in pages] == [200, 200, 410]
    for page in pages:
        assert '<link rel="stylesheet" href="/static/zc.css">' in page.text
        assert '<meta name="referrer" content="no-referrer">' in page.text
        assert "<style" not in page.text and "<script" not in page.text and "unsafe-inline" not in str(page.headers)
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["x-robots-tag"] == "noindex, nofollow"
        assert "form-action 'self';" in page.headers["content-security-policy"]
        assert '<a class="skip" href="#main">' in page.text and 'action="/logout"' not in page.text
    assert 'class="wide danger"' in pages[0].text and "stopped within moments" in pages[0].text
    assert "Shutting down" in pages[1].text and "already used" in pages[2].text
