"""Action links (invariant 7): GET shows a confirmation page and changes nothing; POST
acts once, bound to the lease, its version and the action; a used, expired, forged or
stale link gets a page that says which, and nothing changes."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from zc_common.internal_api import LeaseAction, LeaseRef
from zc_common.messages import LeaseChange, LeaseChanged
from zc_common.settings import ApiSettings

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease, make_tenant, running_api
from tests.api.records import audit_events, internal_client, lease_row, outbox, tokens_of
from zc_api.database import transaction
from zc_api.links import service as links

PUBLIC_URL = "http://127.0.0.1:8000"  # the settings' default


async def mint(api: Api, lease_id: int, version: int = 1) -> dict[LeaseAction, str]:
    """The link paths (/a/<token>) the notifier would mail, by action."""
    async with internal_client(api, "notifier") as client:
        [answer] = await client.action_links([LeaseRef(lease_id=lease_id, version=version)])
    assert (answer.lease_id, answer.version) == (lease_id, version)
    for url in answer.links.values():
        assert url.startswith(f"{PUBLIC_URL}/a/")
    return {action: url.removeprefix(PUBLIC_URL) for action, url in answer.links.items()}


async def test_get_shows_the_lease_and_changes_nothing(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, instance_id="i-0123456789abcdef0")
    renew = (await mint(api, lease_id))[LeaseAction.renew]

    pages = [await api.client.get(renew) for _ in range(3)]  # a mail scanner, then the person

    for page in pages:
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
        assert "i-0123456789abcdef0" in page.text and tenant.dev.email in page.text
        assert '<form method="post">' in page.text and '<button type="submit"' in page.text
        assert "<script" not in page.text and 'name="viewport"' in page.text
    row = await lease_row(api, lease_id)
    assert (row.version, row.status) == (1, "active")
    assert [token.used_at for token in await tokens_of(api, lease_id)] == [None, None]
    assert await outbox(api, LeaseChanged) == []


async def test_post_renews_once_as_the_owner(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(hours=1))
    before = await lease_row(api, lease_id)
    renew = (await mint(api, lease_id))[LeaseAction.renew]

    done = await api.client.post(renew)

    assert done.status_code == 200 and "Renewed" in done.text
    row = await lease_row(api, lease_id)
    assert (row.version, row.status) == (2, "active")
    # The owner's default lease (the seed's 3 days) more.
    assert row.expires_at == before.expires_at + timedelta(days=3)
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.renewed and message.expire_at == row.expires_at
    assert message.actor == f"user:{tenant.dev.user_id}"
    [event] = await audit_events(api, action="lease.renewed", subject_id=lease_id)
    assert event.details["via"] == "action_link"
    used = [token for token in await tokens_of(api, lease_id) if token.action == "renew"]
    assert len(used) == 1 and used[0].used_at is not None

    twice = await api.client.post(renew)

    assert twice.status_code == 410 and "already used" in twice.text
    assert (await lease_row(api, lease_id)).version == 2
    assert len(await outbox(api, LeaseChanged)) == 1


async def test_a_renewal_by_link_stops_at_the_max_lease(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(days=13))
    renew = (await mint(api, lease_id))[LeaseAction.renew]

    done = await api.client.post(renew)

    assert done.status_code == 200
    expires_at = (await lease_row(api, lease_id)).expires_at
    assert abs((expires_at - datetime.now(timezone.utc) - timedelta(days=14)).total_seconds()) < 10


async def test_renewing_an_expired_lease_by_link_counts_from_now(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev, status="expired", expires_in=-timedelta(days=1))
    renew = (await mint(api, lease_id))[LeaseAction.renew]

    assert (await api.client.post(renew)).status_code == 200

    row = await lease_row(api, lease_id)
    assert row.status == "active"
    assert abs((row.expires_at - datetime.now(timezone.utc) - timedelta(days=3)).total_seconds()) < 10


async def test_shutdown_link_expires_the_lease_for_the_reaper(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant, mode="enforce")
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    shutdown = (await mint(api, lease_id))[LeaseAction.shutdown]

    confirm = await api.client.get(shutdown)
    done = await api.client.post(shutdown)

    assert confirm.status_code == 200 and "stopped" in confirm.text
    assert done.status_code == 200
    row = await lease_row(api, lease_id)
    assert (row.status, row.version) == ("expired", 2)
    [message] = await outbox(api, LeaseChanged)
    assert message.change is LeaseChange.shutdown_requested and message.expire_at == row.expires_at


async def test_a_link_of_an_older_version_is_refused(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    old = await mint(api, lease_id)
    # The owner renews from the mail's other link... then the first mail's shutdown link is stale.
    assert (await api.client.post(old[LeaseAction.renew])).status_code == 200

    shown = await api.client.get(old[LeaseAction.shutdown])
    used = await api.client.post(old[LeaseAction.shutdown])

    assert shown.status_code == 409 and used.status_code == 409
    assert "changed since the mail was sent" in used.text
    row = await lease_row(api, lease_id)
    assert (row.version, row.status) == (2, "active")
    assert len(await outbox(api, LeaseChanged)) == 1


async def test_an_expired_link_is_refused(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    long_ago = datetime.now(timezone.utc) - timedelta(days=4)
    async with transaction(api.sessions) as session:
        [answer] = await links.mint(
            session, refs=[LeaseRef(lease_id=lease_id, version=1)], wanted=[LeaseAction.renew],
            public_url="", ttl_seconds=3 * 86400, now=long_ago,
        )

    shown = await api.client.get(answer.links[LeaseAction.renew])
    used = await api.client.post(answer.links[LeaseAction.renew])

    assert shown.status_code == 410 and used.status_code == 410
    assert "expired" in used.text
    assert (await lease_row(api, lease_id)).version == 1
    assert await outbox(api, LeaseChanged) == []


async def test_links_last_as_long_as_the_settings_say(api_settings: Callable[..., ApiSettings]) -> None:
    async with running_api(api_settings(action_token_ttl_seconds=60)) as short:
        owner = await make_tenant(short)
        cloud = await make_cloud_account(short, owner)
        _, lease_id = await make_lease(short, cloud, owner.dev)
        await mint(short, lease_id)
        [token, _] = await tokens_of(short, lease_id)

    assert token.created_at is not None
    assert abs((token.expires_at - token.created_at).total_seconds() - 60) < 5


async def test_a_forged_link_is_refused(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    real = (await mint(api, lease_id))[LeaseAction.renew]
    altered = real[:-1] + ("A" if real[-1] != "A" else "B")

    for path in (f"/a/{secrets.token_urlsafe(32)}", altered, "/a/not-a-token", "/a/" + "x" * 500):
        shown = await api.client.get(path)
        used = await api.client.post(path)
        assert shown.status_code == 404 and used.status_code == 404, path
        assert "not valid" in used.text and used.headers["content-type"].startswith("text/html")
    assert (await lease_row(api, lease_id)).version == 1
    assert await outbox(api, LeaseChanged) == []


async def test_links_are_minted_only_for_the_current_version_and_what_it_allows(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, current = await make_lease(api, cloud, tenant.dev)
    _, reaped = await make_lease(api, cloud, tenant.dev, status="reaped")
    _, exempt = await make_lease(api, cloud, tenant.dev, status="exempt")

    async with internal_client(api, "notifier") as client:
        answer = await client.action_links(
            [LeaseRef(lease_id=current, version=1), LeaseRef(lease_id=current, version=9),
             LeaseRef(lease_id=reaped, version=1), LeaseRef(lease_id=exempt, version=1),
             LeaseRef(lease_id=999_999, version=1)]
        )

    by_lease = {(a.lease_id, a.version): set(a.links) for a in answer}
    assert by_lease == {
        (current, 1): {LeaseAction.renew, LeaseAction.shutdown},
        (exempt, 1): {LeaseAction.shutdown},
    }
    # Each link is its own single-use token.
    assert len(await tokens_of(api, current)) == 2


async def test_a_link_for_a_lease_the_reaper_claimed_is_refused(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant, mode="enforce")
    _, lease_id = await make_lease(api, cloud, tenant.dev, expires_in=-timedelta(minutes=1))
    renew = (await mint(api, lease_id))[LeaseAction.renew]
    async with internal_client(api, "reaper") as client:
        await client.claim([LeaseRef(lease_id=lease_id, version=1)])

    used = await api.client.post(renew)

    assert used.status_code == 409 and "reaper claimed it" in used.text
    assert (await lease_row(api, lease_id)).status == "reaping"
