"""The sign-up rules called directly (zc_api.auth.signup): who a GitHub identity signs in
as when the web round trip is not the point — races, bootstrap admins, invitations found
by address, logins that moved. The round trip itself: test_github_login.py."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update

from zc_common.messages import utcnow

from tests.api.factories import Api, make_account
from zc_api.auth import signup
from zc_api.auth.bootstrap import create_admin
from zc_api.auth.github import GitHubIdentity
from zc_api.database import transaction
from zc_api.models import Account, AccountPolicy, User
from zc_cli.fake_github import FakeIdentity


def identity(login: str, email: str, *others: str, github_id: int | None = None) -> GitHubIdentity:
    return GitHubIdentity(
        github_id=github_id or FakeIdentity(login=login, email=email).id or 0, login=login, name=None,
        email=email, verified_emails=(email, *others),
    )


async def admit(api: Api, who: GitHubIdentity, invitation_id: int | None = None) -> signup.Admission:
    async with transaction(api.sessions) as session:
        return await signup.admit(session, identity=who, invitation_id=invitation_id, now=utcnow())


async def test_two_first_sign_ins_at_once_make_one_account(api: Api) -> None:
    results = await asyncio.gather(
        admit(api, identity("ada", "ada@bigdb.com")), admit(api, identity("bea", "bea@other.example")),
        return_exceptions=True,
    )

    admitted = [r for r in results if isinstance(r, signup.Admission)]
    refused = [r for r in results if isinstance(r, signup.SignUpRefused)]
    assert len(admitted) == 1 and len(refused) == 1, results
    assert admitted[0].how == "first_admin"
    async with transaction(api.sessions) as session:
        assert len((await session.scalars(select(Account.id))).all()) == 1


async def test_a_bootstrap_admin_without_an_account_signs_in_to_create_one(api: Api) -> None:
    await make_account(api)  # not a fresh installation
    async with transaction(api.sessions) as session:
        ops, _ = await create_admin(session, "ops@bigdb.com")

    admission = await admit(api, identity("ops", "ops@bigdb.com"))

    assert (admission.how, admission.user.id, admission.user.account_id) == ("bootstrap_admin", ops.id, None)


async def test_a_pending_invitation_for_a_verified_address_admits_without_the_link(api: Api) -> None:
    admin, account = await make_account(api)
    invited = await api.client.post(
        f"/api/v1/accounts/{account['id']}/invitations", json={"email": "fay@bigdb.com"}, headers=admin.headers
    )
    assert invited.status_code == 201, invited.text

    admission = await admit(api, identity("fay", "fay@home.example", "fay@bigdb.com"))

    assert admission.how == "invited"
    assert (admission.user.account_id, admission.user.email, admission.user.role) == (account["id"], "fay@bigdb.com", "dev")


async def test_a_revoked_invitation_carried_by_the_sign_in_is_refused(api: Api) -> None:
    admin, account = await make_account(api)
    invited = await api.client.post(
        f"/api/v1/accounts/{account['id']}/invitations", json={"email": "gus@bigdb.com"}, headers=admin.headers
    )
    revoked = await api.client.delete(f"/api/v1/invitations/{invited.json()['id']}", headers=admin.headers)
    assert revoked.status_code == 204, revoked.text

    with pytest.raises(signup.SignUpRefused, match="revoked"):
        await admit(api, identity("gus", "gus@bigdb.com"), invitation_id=invited.json()["id"])


async def test_a_github_login_now_held_by_someone_else_moves_to_them(api: Api) -> None:
    first = await admit(api, identity("kim", "kim@bigdb.com", github_id=11))
    # GitHub user 11 renamed away from "kim"; GitHub user 22 took the login.
    async with transaction(api.sessions) as session:
        await session.execute(update(AccountPolicy).values(allowed_email_patterns=["*@bigdb.com"]))

    second = await admit(api, identity("kim", "kim2@bigdb.com", github_id=22))

    async with transaction(api.sessions) as session:
        old = await session.get(User, first.user.id)
    assert old is not None and old.github_login is None and old.github_id == 11
    assert second.user.github_login == "kim" and second.user.id != first.user.id




async def test_an_invitation_carried_by_the_sign_in_beats_an_address_another_account_listed(api: Api) -> None:
    # Any admin may add any address to their own account: account A listing hal's address
    # first must not pull hal into A when hal follows account B's invitation link.
    admin_a, account_a = await make_account(api)
    admin_b, account_b = await make_account(api)
    listed = await api.client.post(
        f"/api/v1/accounts/{account_a['id']}/users", json={"email": "hal@bigdb.com", "role": "admin"},
        headers=admin_a.headers,
    )
    invited = await api.client.post(
        f"/api/v1/accounts/{account_b['id']}/invitations", json={"email": "hal@bigdb.com"}, headers=admin_b.headers
    )
    assert listed.status_code == 201 and invited.status_code == 201, (listed.text, invited.text)

    admission = await admit(api, identity("hal", "hal@bigdb.com"), invitation_id=invited.json()["id"])

    assert (admission.how, admission.user.account_id) == ("invited", account_b["id"])
    async with transaction(api.sessions) as session:
        left = await session.get(User, listed.json()["id"])
    assert left is not None and left.github_id is None  # A's entry was not linked to hal's GitHub account
