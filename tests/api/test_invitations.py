"""Invitations: an admin invites an address into their account with a role; the mail's
link (minted only when the notifier sends it, never on the outbox) opens a page that
starts the GitHub sign-in; the invitation is accepted once, and a revoked, expired or
used link gets a page that says which."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from zc_common.internal_api import PeopleLinkKind
from zc_common.messages import InvitationCreated, utcnow
from zc_common.settings import ApiSettings

from tests.api.factories import Api, Caller, Tenant, make_tenant, make_user_token, running_api
from tests.api.records import audit_events, internal_client, outbox
from tests.support.credentials import bearer
from zc_api.auth.tokens import hash_token
from zc_api.database import transaction
from zc_api.invitations import service as invitations
from zc_api.models import Invitation, OutboxMessage, User
from zc_api.single_use import LinkRefused, Refusal

PUBLIC_URL = "http://127.0.0.1:8000"  # the settings' default


@pytest.fixture
async def api(api_settings: Callable[..., ApiSettings]) -> AsyncIterator[Api]:
    """An api with GitHub sign-in configured, so the invitation page offers it."""
    async with running_api(
        api_settings(github_client_id="zc-test-client", github_client_secret="zc-test-secret")
    ) as started:
        yield started


async def invite(api: Api, tenant: Tenant, email: str, role: str = "dev", *, by: Caller | None = None) -> Any:
    caller = by or tenant.admin
    return await api.client.post(
        f"/api/v1/accounts/{tenant.account_id}/invitations", json={"email": email, "role": role},
        headers=caller.headers,
    )


async def invited(api: Api, tenant: Tenant, email: str | None = None, role: str = "dev") -> dict[str, Any]:
    response = await invite(api, tenant, email or f"new-{secrets.token_hex(4)}@bigdb.example", role)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def link_path(api: Api, invitation_id: int) -> str:
    """The page path (/invitations/<token>) the notifier would mail."""
    async with internal_client(api, "notifier") as client:
        link = await client.people_link(PeopleLinkKind.invitation, invitation_id)
    assert link is not None
    assert link.url.startswith(f"{PUBLIC_URL}/invitations/")
    return link.url.removeprefix(PUBLIC_URL)


async def listed(api: Api, tenant: Tenant, **params: str) -> list[dict[str, Any]]:
    response = await api.client.get(
        f"/api/v1/accounts/{tenant.account_id}/invitations", params=params, headers=tenant.admin.headers
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def row(api: Api, invitation_id: int) -> Invitation:
    async with transaction(api.sessions) as session:
        found = await session.get(Invitation, invitation_id)
    assert found is not None
    return found


async def accept_as(api: Api, invitation_id: int, email: str) -> User:
    async with transaction(api.sessions) as session:
        user = await session.scalar(select(User).where(col(User.email) == email))
        assert user is not None
        await invitations.accept(session, invitation_id=invitation_id, user=user)
    return user


# --- the admin's API ---------------------------------------------------------------------


async def test_admin_invites_lists_and_revokes(api: Api, tenant: Tenant) -> None:
    created = await invite(api, tenant, "  Newcomer@BigDB.example ", "admin")

    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["email"], body["role"], body["status"]) == ("newcomer@bigdb.example", "admin", "pending")
    assert body["invited_by_user_id"] == tenant.admin.user_id and body["account_id"] == tenant.account_id
    assert "token" not in str(sorted(body))
    [made] = await audit_events(api, action="invitation.created", subject_id=body["id"])
    assert made.actor == f"user:{tenant.admin.user_id}" and made.details["email"] == "newcomer@bigdb.example"
    assert [i["id"] for i in await listed(api, tenant)] == [body["id"]]
    assert [i["id"] for i in await listed(api, tenant, status="pending")] == [body["id"]]

    revoked = await api.client.delete(f"/api/v1/invitations/{body['id']}", headers=tenant.admin.headers)

    assert revoked.status_code == 204
    [shown] = await listed(api, tenant)
    assert shown["status"] == "revoked" and shown["revoked_at"] is not None
    assert await listed(api, tenant, status="pending") == []
    assert len(await audit_events(api, action="invitation.revoked", subject_id=body["id"])) == 1
    again = await api.client.delete(f"/api/v1/invitations/{body['id']}", headers=tenant.admin.headers)
    assert again.status_code == 404
    # Revoked, the address can be invited anew.
    assert (await invite(api, tenant, "newcomer@bigdb.example")).status_code == 201


async def test_a_developer_cannot_invite_list_or_revoke(api: Api, tenant: Tenant) -> None:
    body = await invited(api, tenant)

    assert (await invite(api, tenant, "friend@bigdb.example", by=tenant.dev)).status_code == 403
    listing = await api.client.get(f"/api/v1/accounts/{tenant.account_id}/invitations", headers=tenant.dev.headers)
    assert listing.status_code == 403
    revoking = await api.client.delete(f"/api/v1/invitations/{body['id']}", headers=tenant.dev.headers)
    assert revoking.status_code == 403
    assert (await row(api, body["id"])).revoked_at is None


async def test_another_tenants_admin_finds_nothing(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    body = await invited(api, tenant)
    stranger = other_tenant.admin

    assert (await invite(api, tenant, "spy@other.example", by=stranger)).status_code == 404
    listing = await api.client.get(f"/api/v1/accounts/{tenant.account_id}/invitations", headers=stranger.headers)
    assert listing.status_code == 404
    revoking = await api.client.delete(f"/api/v1/invitations/{body['id']}", headers=stranger.headers)
    assert revoking.status_code == 404
    assert (await row(api, body["id"])).revoked_at is None
    assert await listed(api, other_tenant) == []


async def test_a_user_or_a_pending_invitation_of_the_address_is_a_conflict(api: Api, tenant: Tenant) -> None:
    await invited(api, tenant, "twice@bigdb.example")

    again = await invite(api, tenant, "TWICE@bigdb.example")
    member = await invite(api, tenant, tenant.dev.email)
    nonsense = await invite(api, tenant, "not an address")
    bad_role = await invite(api, tenant, "someone@bigdb.example", "owner")

    assert again.status_code == 409 and "pending invitation" in again.json()["detail"]
    assert member.status_code == 409 and "already a user" in member.json()["detail"]
    assert nonsense.status_code == 422 and nonsense.json()["field"] == "email"
    assert bad_role.status_code == 422 and bad_role.json()["field"] == "role"
    assert len(await listed(api, tenant)) == 1


async def test_the_outbox_holds_invitation_created_without_any_token(api: Api, tenant: Tenant) -> None:
    body = await invited(api, tenant, "newcomer@bigdb.example", "dev")

    [message] = await outbox(api, InvitationCreated)

    assert isinstance(message, InvitationCreated)
    assert (message.invitation_id, message.account_id, message.email, message.role) == (
        body["id"], tenant.account_id, "newcomer@bigdb.example", "dev"
    )
    assert message.account_name.startswith("BigDB") and message.invited_by_email == tenant.admin.email
    assert message.expires_at == (await row(api, body["id"])).expires_at
    assert not any("token" in name for name in InvitationCreated.model_fields)
    # The link minted for the mail is nowhere on the outbox, and only its hash is stored.
    token = (await link_path(api, body["id"])).rsplit("/", 1)[1]
    async with transaction(api.sessions) as session:
        bodies = (await session.scalars(select(OutboxMessage.body))).all()
    assert bodies and not any(token in text for text in bodies)
    assert (await row(api, body["id"])).token_hash == hash_token(token)


async def test_invitation_expires_after_the_configured_time(api_settings: Callable[..., ApiSettings]) -> None:
    async with running_api(api_settings(invitation_ttl_seconds=3600)) as short:
        tenant = await make_tenant(short)
        before = utcnow()
        body = await invited(short, tenant)
        expires_at = (await row(short, body["id"])).expires_at
    assert before + timedelta(hours=1) <= expires_at <= utcnow() + timedelta(hours=1)


# --- the link and its page ---------------------------------------------------------------


async def test_people_link_mints_a_link_whose_page_shows_the_invitation(api: Api, tenant: Tenant) -> None:
    body = await invited(api, tenant, "newcomer@bigdb.example", "dev")
    path = await link_path(api, body["id"])
    token = path.rsplit("/", 1)[1]

    pages = [await api.client.get(path) for _ in range(2)]  # a mail scanner, then the person

    for page in pages:
        assert page.status_code == 200, page.text
        assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
        assert f"{tenant.admin.email} invited you to BigDB" in page.text and "as a developer" in page.text
        assert 'action="/login/github"' in page.text and 'method="post"' in page.text
        assert f'name="invitation" value="{token}"' in page.text
        assert "Sign in with GitHub to accept" in page.text and "<script" not in page.text
    assert (await row(api, body["id"])).accepted_at is None
    # A newer mail's link replaces the older one.
    newer = await link_path(api, body["id"])
    assert (await api.client.get(newer)).status_code == 200
    replaced = await api.client.get(path)
    assert replaced.status_code == 404 and "not valid" in replaced.text


async def test_people_links_are_for_the_notifier_only(api: Api, tenant: Tenant) -> None:
    body = await invited(api, tenant)
    request = {"kind": "invitation", "id": body["id"]}

    as_admin = await api.internal.post("/internal/v1/people-links", json=request, headers=tenant.admin.headers)
    as_ingestor = await api.internal.post("/internal/v1/people-links", json=request, headers=bearer("ingestor"))
    on_public = await api.client.post("/internal/v1/people-links", json=request, headers=bearer("notifier"))
    as_service = await api.internal.post("/internal/v1/people-links", json=request, headers=bearer("notifier"))
    unknown = await api.internal.post("/internal/v1/people-links", json={"kind": "invitation", "id": 999_999},
                                      headers=bearer("notifier"))

    assert (as_admin.status_code, as_ingestor.status_code, on_public.status_code) == (404, 404, 404)
    assert as_service.status_code == 200
    assert set(as_service.json()) == {"url", "expires_at"}
    assert unknown.status_code == 404 and unknown.json()["field"] == "id"


async def test_revoked_expired_used_and_unknown_links_get_their_page(api: Api, tenant: Tenant) -> None:
    revoked, expired, used = [await invited(api, tenant) for _ in range(3)]
    paths = {name: await link_path(api, body["id"]) for name, body in
             (("revoked", revoked), ("expired", expired), ("used", used))}
    await api.client.delete(f"/api/v1/invitations/{revoked['id']}", headers=tenant.admin.headers)
    async with transaction(api.sessions) as session:
        await session.execute(
            update(Invitation).where(col(Invitation.id) == expired["id"]).values(expires_at=utcnow() - timedelta(1))
        )
    joiner = await make_user_token(api, tenant.account_id, email=used["email"], confirmed=False)
    await accept_as(api, used["id"], joiner.email)

    answers = {name: await api.client.get(path) for name, path in paths.items()}
    answers["unknown"] = await api.client.get(f"/invitations/{secrets.token_urlsafe(32)}")
    answers["garbage"] = await api.client.get("/invitations/not-a-token")

    expected = {
        "revoked": (410, "withdrawn"), "expired": (410, "has expired"), "used": (410, "already accepted"),
        "unknown": (404, "not valid"), "garbage": (404, "not valid"),
    }
    for name, (status, words) in expected.items():
        page = answers[name]
        assert page.status_code == status, (name, page.text)
        assert words in page.text, name
        assert "Sign in with GitHub to accept" not in page.text, name
    # Nothing to mail for any of them any more: the notifier is told so and skips.
    async with internal_client(api, "notifier") as client:
        for body in (revoked, expired, used):
            assert await client.people_link(PeopleLinkKind.invitation, body["id"]) is None


async def test_accept_marks_it_accepted_once(api: Api, tenant: Tenant) -> None:
    body = await invited(api, tenant, "joiner@bigdb.example", "admin")
    joiner = await make_user_token(api, tenant.account_id, email="joiner@bigdb.example", confirmed=False)

    user = await accept_as(api, body["id"], joiner.email)

    accepted = await row(api, body["id"])
    assert accepted.accepted_at is not None and accepted.accepted_by_user_id == user.id
    [shown] = await listed(api, tenant)
    assert shown["status"] == "accepted"
    [event] = await audit_events(api, action="invitation.accepted", subject_id=body["id"])
    assert event.actor == f"user:{user.id}"
    async with transaction(api.sessions) as session:
        confirmed = await session.get(User, user.id)
    assert confirmed is not None and confirmed.email_confirmed_at is not None, "the mailed link proved the address"

    with pytest.raises(LinkRefused) as refused:
        await accept_as(api, body["id"], joiner.email)
    assert refused.value.reason is Refusal.used and refused.value.status_code == 410
    assert (await row(api, body["id"])).accepted_at == accepted.accepted_at
    revoking = await api.client.delete(f"/api/v1/invitations/{body['id']}", headers=tenant.admin.headers)
    assert revoking.status_code == 409


async def test_accept_refuses_a_revoked_or_expired_invitation(api: Api, tenant: Tenant) -> None:
    revoked, expired = await invited(api, tenant), await invited(api, tenant)
    await api.client.delete(f"/api/v1/invitations/{revoked['id']}", headers=tenant.admin.headers)
    async with transaction(api.sessions) as session:
        await session.execute(
            update(Invitation).where(col(Invitation.id) == expired["id"]).values(expires_at=utcnow())
        )

    for body, reason in ((revoked, Refusal.revoked), (expired, Refusal.expired)):
        await make_user_token(api, tenant.account_id, email=body["email"], confirmed=False)
        with pytest.raises(LinkRefused) as refused:
            await accept_as(api, body["id"], body["email"])
        assert refused.value.reason is reason
        assert (await row(api, body["id"])).accepted_at is None


async def test_without_github_sign_in_the_page_says_the_invitation_cannot_be_accepted_yet(
    api_settings: Callable[..., ApiSettings],
) -> None:
    async with running_api(api_settings()) as plain:
        tenant = await make_tenant(plain)
        body = await invited(plain, tenant)

        page = await plain.client.get(await link_path(plain, body["id"]))

    assert page.status_code == 200 and "not set up" in page.text
    assert "Sign in with GitHub to accept" not in page.text and 'name="invitation"' not in page.text
