"""Removing a user, and moving someone who joined by pattern (issue 10, hole 7): an admin
removes a user and takes over their leases (each with a fresh notice period, so nothing
is reaped on a warning the removed person got); the removed address does not rejoin by
pattern; another account's invitation moves a person who only joined by pattern and owns
nothing, and never someone an admin chose or who holds a lease."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlmodel import col

from zc_common.messages import LeaseChange, LeaseChanged

from tests.api.factories import Api, Tenant, make_account, make_cloud_account, make_lease, make_user_token
from tests.api.records import audit_events, lease_row, outbox
from tests.api.test_signup import admit, identity
from zc_api.auth import signup
from zc_api.database import transaction
from zc_api.models import ApiToken, User


async def remove(api: Api, tenant: Tenant, user_id: int, *, by: str = "admin") -> object:
    caller = tenant.admin if by == "admin" else tenant.dev
    return await api.client.delete(f"/api/v1/users/{user_id}", headers=caller.headers)


async def user_row(api: Api, user_id: int) -> User | None:
    async with transaction(api.sessions) as session:
        return await session.get(User, user_id)


async def test_an_admin_removes_a_user_and_takes_over_their_leases_with_fresh_notice(
    api: Api, tenant: Tenant
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, soon = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(minutes=2))
    _, later = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(days=3))
    _, ended = await make_lease(api, cloud, tenant.dev, status="released")
    before = datetime.now(timezone.utc)

    response = await remove(api, tenant, tenant.dev.user_id)

    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert response.json() == {"id": tenant.dev.user_id, "email": tenant.dev.email, "leases_reowned": 2}  # type: ignore[attr-defined]
    for lease_id in (soon, later):
        lease = await lease_row(api, lease_id)
        assert (lease.owner_user_id, lease.owner_email) == (tenant.admin.user_id, tenant.admin.email)
        assert "was removed" in lease.owner_reason
    # The two-minute lease would be reaped on warnings the removed person got: it gets the
    # policy's notice period (longer than its longest warning) under its new owner.
    assert (await lease_row(api, soon)).expires_at > before + timedelta(days=1)
    assert (await lease_row(api, later)).expires_at < before + timedelta(days=3, minutes=1)
    assert (await lease_row(api, ended)).owner_email == tenant.dev.email  # history stays as it was
    changed = [m for m in await outbox(api, LeaseChanged) if m.change == LeaseChange.owner_changed]
    assert sorted(m.lease.lease_id for m in changed) == sorted([soon, later])
    assert all(m.lease.owner_email == tenant.admin.email for m in changed)
    [event] = await audit_events(api, action="user.removed", subject_id=tenant.dev.user_id)
    assert event.details["email"] == tenant.dev.email and event.details["leases_reowned"] == 2
    # The person is gone, with their tokens; the admin's view agrees.
    assert await user_row(api, tenant.dev.user_id) is None
    assert (await api.client.get("/api/v1/users/me", headers=tenant.dev.headers)).status_code == 401
    assert (await api.client.get(f"/api/v1/users/{tenant.dev.user_id}", headers=tenant.admin.headers)).status_code == 404
    async with transaction(api.sessions) as session:
        assert (await session.scalars(select(ApiToken).where(col(ApiToken.user_id) == tenant.dev.user_id))).all() == []


async def test_only_an_admin_of_the_account_removes_and_never_the_last_admin(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    assert (await remove(api, tenant, tenant.admin.user_id, by="dev")).status_code == 403  # type: ignore[attr-defined]
    theirs = await api.client.delete(f"/api/v1/users/{tenant.dev.user_id}", headers=other_tenant.admin.headers)
    assert theirs.status_code == 404
    alone = await remove(api, tenant, tenant.admin.user_id)
    assert alone.status_code == 409 and "only admin" in alone.json()["detail"]  # type: ignore[attr-defined]
    assert await user_row(api, tenant.admin.user_id) is not None
    assert await user_row(api, tenant.dev.user_id) is not None


async def test_an_admin_removing_themself_hands_their_leases_to_another_admin(api: Api, tenant: Tenant) -> None:
    second = await make_user_token(api, tenant.account_id, role="admin")
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.admin)

    response = await remove(api, tenant, tenant.admin.user_id)

    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    assert (await lease_row(api, lease_id)).owner_email == second.email


async def test_a_removed_address_does_not_rejoin_by_pattern_but_an_invitation_brings_it_back(
    api: Api, tenant: Tenant
) -> None:
    patterns = await api.client.patch(f"/api/v1/accounts/{tenant.account_id}/policy",
                                      json={"allowed_email_patterns": ["*@bigdb.com"]}, headers=tenant.admin.headers)
    assert patterns.status_code == 200, patterns.text
    joined = await admit(api, identity("kit", "kit@bigdb.com"))
    assert joined.user.account_id == tenant.account_id
    assert (await api.client.delete(f"/api/v1/users/{joined.user.id}", headers=tenant.admin.headers)).status_code == 200

    with pytest.raises(signup.SignUpRefused, match="is not invited"):
        await admit(api, identity("kit", "kit@bigdb.com"))
    others = await admit(api, identity("lou", "lou@bigdb.com"))  # the pattern still works for everyone else
    assert others.user.account_id == tenant.account_id

    invited = await api.client.post(f"/api/v1/accounts/{tenant.account_id}/invitations",
                                    json={"email": "kit@bigdb.com"}, headers=tenant.admin.headers)
    assert invited.status_code == 201, invited.text
    back = await admit(api, identity("kit", "kit@bigdb.com"), invitation_id=invited.json()["id"])
    assert (back.how, back.user.account_id) == ("invited", tenant.account_id)


# --- an invitation moves a person who joined by pattern --------------------------------------


async def joined_by_pattern(api: Api) -> tuple[Tenant, signup.Admission]:
    admin, account = await make_account(api)
    allowing = await api.client.patch(f"/api/v1/accounts/{account['id']}/policy",
                                      json={"allowed_email_patterns": ["*@bigdb.com"]}, headers=admin.headers)
    assert allowing.status_code == 200, allowing.text
    admission = await admit(api, identity("mo", "mo@bigdb.com"))
    assert admission.how == "allowed_email" and admission.user.account_id == account["id"]
    dev = await make_user_token(api, account["id"])
    return Tenant(account_id=account["id"], admin=admin, dev=dev), admission


async def invitation_to(api: Api, tenant: Tenant, email: str) -> int:
    response = await api.client.post(f"/api/v1/accounts/{tenant.account_id}/invitations",
                                     json={"email": email}, headers=tenant.admin.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_an_invitation_moves_a_person_who_joined_by_pattern_and_owns_nothing(
    api: Api, other_tenant: Tenant
) -> None:
    first, joined = await joined_by_pattern(api)
    invitation = await invitation_to(api, other_tenant, "mo@bigdb.com")

    moved = await admit(api, identity("mo", "mo@bigdb.com"), invitation_id=invitation)

    assert (moved.how, moved.user.id, moved.user.account_id) == ("invited", joined.user.id, other_tenant.account_id)
    [left] = await audit_events(api, action="user.left", subject_id=joined.user.id)
    assert left.account_id == first.account_id and "allowed email pattern" in (left.reason or "")
    listing = await api.client.get(f"/api/v1/accounts/{first.account_id}/users", headers=first.admin.headers)
    assert joined.user.id not in [user["id"] for user in listing.json()["data"]]


async def test_an_invitation_does_not_move_a_person_who_owns_a_lease(api: Api, other_tenant: Tenant) -> None:
    first, joined = await joined_by_pattern(api)
    cloud = await make_cloud_account(api, first)
    assert joined.user.id is not None
    owner = type(first.dev)(user_id=joined.user.id, email=joined.user.email, token="", account_id=first.account_id)
    await make_lease(api, cloud, owner)
    invitation = await invitation_to(api, other_tenant, "mo@bigdb.com")

    stayed = await admit(api, identity("mo", "mo@bigdb.com"), invitation_id=invitation)

    assert (stayed.how, stayed.user.account_id) == ("returning", first.account_id)


async def test_an_invitation_does_not_move_a_person_an_admin_added(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    added = await api.client.post(f"/api/v1/accounts/{tenant.account_id}/users",
                                  json={"email": "ned@bigdb.com", "role": "dev"}, headers=tenant.admin.headers)
    assert added.status_code == 201, added.text
    first = await admit(api, identity("ned", "ned@bigdb.com"))
    assert first.user.account_id == tenant.account_id
    invitation = await invitation_to(api, other_tenant, "ned@bigdb.com")

    stayed = await admit(api, identity("ned", "ned@bigdb.com"), invitation_id=invitation)

    assert (stayed.how, stayed.user.account_id) == ("returning", tenant.account_id)
