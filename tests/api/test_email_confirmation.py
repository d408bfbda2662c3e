"""Address confirmation: nothing is mailed to an address before its owner follows the
single-use link sent to it. Asking queues the mail (without the link, which the
notifier has minted as it sends); GET shows the address and changes nothing; POST
confirms once; a used, expired, unknown or outdated link gets a page that says which.
And ingestion gives no lease to an unconfirmed owner: it goes to the admin, with why."""

from __future__ import annotations

import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlmodel import col

from zc_common.internal_api import PeopleLinkKind
from zc_common.messages import EmailConfirmationRequested, LeaseChanged, utcnow

from tests.api.factories import Api, Caller, Tenant, make_cloud_account, make_user_token
from tests.api.records import audit_events, internal_client, outbox
from tests.api.test_ingest import change
from zc_api.confirmations import service as confirmations
from zc_api.database import transaction
from zc_api.ingest.service import apply_changes
from zc_api.models import EmailConfirmation, Lease, OutboxMessage, User

PUBLIC_URL = "http://127.0.0.1:8000"  # the settings' default


async def unconfirmed(api: Api, tenant: Tenant) -> Caller:
    return await make_user_token(
        api, tenant.account_id, email=f"joiner-{secrets.token_hex(3)}@bigdb.example", confirmed=False
    )


async def user_row(api: Api, user_id: int) -> User:
    async with transaction(api.sessions) as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


async def link_path(api: Api, user_id: int) -> str:
    """The page path (/confirm-email/<token>) the notifier would mail."""
    async with internal_client(api, "notifier") as client:
        link = await client.people_link(PeopleLinkKind.email_confirmation, user_id)
    assert link is not None and link.url.startswith(f"{PUBLIC_URL}/confirm-email/")
    return link.url.removeprefix(PUBLIC_URL)


async def test_request_queues_the_mail_without_a_link(api: Api, tenant: Tenant) -> None:
    joiner = await unconfirmed(api, tenant)

    async with transaction(api.sessions) as session:
        user = await session.get(User, joiner.user_id)
        assert user is not None
        queued = await confirmations.request(session, user=user)

    [message] = await outbox(api, EmailConfirmationRequested)
    assert queued is not None and message.message_id == queued.message_id
    assert (message.user_id, message.account_id, message.email) == (joiner.user_id, tenant.account_id, joiner.email)
    assert not any("token" in name or "url" in name for name in EmailConfirmationRequested.model_fields)
    assert len(await audit_events(api, action="email.confirmation_requested", subject_id=joiner.user_id)) == 1
    # An address already confirmed needs no mail.
    async with transaction(api.sessions) as session:
        admin = await session.get(User, tenant.admin.user_id)
        assert admin is not None
        assert await confirmations.request(session, user=admin) is None
    assert len(await outbox(api, EmailConfirmationRequested)) == 1


async def test_the_page_changes_nothing_and_the_post_confirms_once(api: Api, tenant: Tenant) -> None:
    joiner = await unconfirmed(api, tenant)
    path = await link_path(api, joiner.user_id)
    token = path.rsplit("/", 1)[1]

    pages = [await api.client.get(path) for _ in range(3)]  # mail scanners, then the person

    for page in pages:
        assert page.status_code == 200, page.text
        assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
        assert joiner.email in page.text and f"Confirm {joiner.email}</button>" in page.text
        assert '<form method="post">' in page.text and "<script" not in page.text
    assert (await user_row(api, joiner.user_id)).email_confirmed_at is None
    async with transaction(api.sessions) as session:
        stored = (await session.scalars(select(EmailConfirmation.token_hash))).all()
        bodies = (await session.scalars(select(OutboxMessage.body))).all()
    assert token not in stored and not any(token in body for body in bodies)

    done = await api.client.post(path)

    assert done.status_code == 200 and f"{joiner.email} is confirmed" in done.text
    assert (await user_row(api, joiner.user_id)).email_confirmed_at is not None
    [event] = await audit_events(api, action="email.confirmed", subject_id=joiner.user_id)
    assert event.actor == f"user:{joiner.user_id}" and event.details["email"] == joiner.email

    twice = await api.client.post(path)
    later = await api.client.get(path)

    assert twice.status_code == 410 and "already used" in twice.text
    assert later.status_code == 410
    assert len(await audit_events(api, action="email.confirmed", subject_id=joiner.user_id)) == 1
    # Confirmed, there is nothing more to mail: the notifier is told so and skips.
    async with internal_client(api, "notifier") as client:
        assert await client.people_link(PeopleLinkKind.email_confirmation, joiner.user_id) is None
        assert await client.people_link(PeopleLinkKind.email_confirmation, 999_999) is None


async def test_an_expired_link_is_refused(api: Api, tenant: Tenant) -> None:
    joiner = await unconfirmed(api, tenant)
    async with transaction(api.sessions) as session:
        link = await confirmations.mint_link(
            session, user_id=joiner.user_id, public_url=PUBLIC_URL, ttl_seconds=60, now=utcnow() - timedelta(minutes=2)
        )
    path = link.url.removeprefix(PUBLIC_URL)

    page, posted = await api.client.get(path), await api.client.post(path)

    for answer in (page, posted):
        assert answer.status_code == 410 and "expired" in answer.text
    assert (await user_row(api, joiner.user_id)).email_confirmed_at is None


async def test_a_link_for_an_address_since_changed_is_refused(api: Api, tenant: Tenant) -> None:
    joiner = await unconfirmed(api, tenant)
    path = await link_path(api, joiner.user_id)
    async with transaction(api.sessions) as session:
        await session.execute(update(User).where(col(User.id) == joiner.user_id).values(email="moved@bigdb.example"))

    posted = await api.client.post(path)

    assert posted.status_code == 409 and "moved@bigdb.example" in posted.text and joiner.email in posted.text
    assert (await user_row(api, joiner.user_id)).email_confirmed_at is None


async def test_an_unknown_link_is_refused(api: Api) -> None:
    for path in (f"/confirm-email/{secrets.token_urlsafe(32)}", "/confirm-email/short"):
        page, posted = await api.client.get(path), await api.client.post(path)
        assert page.status_code == posted.status_code == 404
        assert "not valid" in page.text and "not valid" in posted.text


# --- ingestion ---------------------------------------------------------------------------


async def test_a_lease_for_an_unconfirmed_owner_goes_to_the_admin_with_the_reason(api: Api, tenant: Tenant) -> None:
    joiner = await unconfirmed(api, tenant)
    cloud = await make_cloud_account(api, tenant)
    theirs = change(cloud["upstream_account_id"], tags={"owner": joiner.email.upper()})
    devs = change(cloud["upstream_account_id"], tags={"owner": tenant.dev.email})

    async with transaction(api.sessions) as session:
        await apply_changes(session, [theirs, devs], now=utcnow())

    async with transaction(api.sessions) as session:
        leases = {lease.created_by_message_id: lease for lease in (await session.scalars(select(Lease))).all()}
    given = leases[theirs.message_id]
    assert (given.owner_user_id, given.owner_email) == (tenant.admin.user_id, tenant.admin.email)
    assert given.owner_reason == f"{joiner.email} has not confirmed their address yet"
    assert leases[devs.message_id].owner_email == tenant.dev.email
    # Nothing about it is mailed to the unconfirmed address.
    assert joiner.email not in {message.lease.owner_email for message in await outbox(api, LeaseChanged)}


async def test_without_an_owner_the_lease_goes_to_a_confirmed_admin(api: Api, tenant: Tenant) -> None:
    second = await make_user_token(api, tenant.account_id, role="admin")
    async with transaction(api.sessions) as session:
        await session.execute(update(User).where(col(User.id) == tenant.admin.user_id).values(email_confirmed_at=None))
    cloud = await make_cloud_account(api, tenant)

    async with transaction(api.sessions) as session:
        await apply_changes(session, [change(cloud["upstream_account_id"], tags={})], now=utcnow())

    async with transaction(api.sessions) as session:
        [lease] = (await session.scalars(select(Lease))).all()
    assert (lease.owner_user_id, lease.owner_reason) == (second.user_id, "no owner tag")


# --- people an admin adds ----------------------------------------------------------------


async def test_a_person_an_admin_adds_is_mailed_a_link_and_owns_nothing_until_they_follow_it(
    api: Api, tenant: Tenant
) -> None:
    email = f"added-{secrets.token_hex(3)}@elsewhere.example"
    cloud = await make_cloud_account(api, tenant)

    added = await api.client.post(
        f"/api/v1/accounts/{tenant.account_id}/users", json={"email": email}, headers=tenant.admin.headers
    )

    assert added.status_code == 201, added.text
    user_id = added.json()["id"]
    assert added.json()["email_confirmed"] is False and added.json()["email_confirmed_at"] is None
    [asked] = await outbox(api, EmailConfirmationRequested)
    assert (asked.user_id, asked.account_id, asked.email) == (user_id, tenant.account_id, email)
    [event] = await audit_events(api, action="email.confirmation_requested", subject_id=user_id)
    assert event.actor == f"user:{tenant.admin.user_id}"

    # Before they confirm, an instance tagged with them is the admin's: nothing about it is mailed to them.
    before = change(cloud["upstream_account_id"], tags={"owner": email})
    async with transaction(api.sessions) as session:
        await apply_changes(session, [before], now=utcnow())
    [notice] = [m for m in await outbox(api, LeaseChanged) if m.lease.instance_id == before.instance_id]
    assert notice.lease.owner_email == tenant.admin.email
    assert email not in {message.lease.owner_email for message in await outbox(api, LeaseChanged)}

    # The link the notifier mails confirms the address; from then on they own their instances.
    path = await link_path(api, user_id)
    assert (await api.client.post(path)).status_code == 200
    assert (await user_row(api, user_id)).email_confirmed_at is not None
    after = change(cloud["upstream_account_id"], tags={"owner": email})
    async with transaction(api.sessions) as session:
        await apply_changes(session, [after], now=utcnow())
    [notice] = [m for m in await outbox(api, LeaseChanged) if m.lease.instance_id == after.instance_id]
    assert notice.lease.owner_email == email
