"""Signing in with GitHub, end to end against the fake GitHub: who gets in as what (the
sign-up rules), what is refused and why, and the page when GitHub is not configured.
The OAuth checks, the session cookie and signing out: test_sign_in_checks.py."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from zc_common.settings import ApiSettings

from tests.api.factories import running_api
from tests.api.sign_in_people import (
    ADA,
    BOB,
    EVE,
    NOT_INVITED,
    audit_actions,
    first_admin_allowing,
    signed_in,
    text_of,
    token_for,
    user_by_login,
)
from tests.support.fake_github import (  # noqa: F401  (fixtures, by their pytest names)
    WebApi,
    choose_identity,
    fake_github_fixture,
    finish_sign_in,
    sign_in,
    start_sign_in,
    web_api_fixture,
)
from zc_api.database import transaction
from zc_api.invitations import service as invitations
from zc_api.models import (
    Account,
    AccountPolicy,
    Invitation,
    OutboxMessage,
)
from zc_cli.fake_github import FakeIdentity

# --- who gets in ------------------------------------------------------------------------


async def test_first_person_becomes_admin_of_a_new_account(web_api: WebApi) -> None:
    browser = await sign_in(web_api, ADA)

    ada = await user_by_login(web_api, "ada")
    assert ada is not None and ada.role == "admin" and ada.account_id is not None
    assert (ada.email, ada.github_id, ada.name) == ("ada@bigdb.com", ADA.id, "Ada Lovelace")
    assert ada.email_confirmed_at is not None  # GitHub verified it; they are the operator
    async with transaction(web_api.api.sessions) as session:
        account = await session.get(Account, ada.account_id)
        policy = await session.get(AccountPolicy, ada.account_id)
    assert account is not None and account.name == "ada's account"
    assert policy is not None and policy.allowed_email_patterns == []

    start = await browser.get("/")
    assert (start.status_code, start.headers["location"]) == (303, "/summary")
    # The API is bearer-only: the page session is worth nothing there.
    me = await browser.get("/api/v1/users/me")
    assert me.status_code == 401
    assert "account.created" in await audit_actions(web_api)
    assert "user.signed_in" in await audit_actions(web_api)


async def test_returning_person_is_the_same_user_with_their_new_login(web_api: WebApi) -> None:
    await sign_in(web_api, ADA)
    before = await user_by_login(web_api, "ada")
    renamed = FakeIdentity(login="ada-l", email="ada@bigdb.com", id=ADA.id)
    browser = await sign_in(web_api, renamed)

    after = await user_by_login(web_api, "ada-l")
    assert before is not None and after is not None and after.id == before.id and after.role == "admin"
    assert (await browser.get("/")).headers["location"] == "/summary"
    async with transaction(web_api.api.sessions) as session:
        assert await session.scalar(select(Account.id).offset(1)) is None  # still one account


async def test_second_person_with_an_allowed_email_joins_as_developer_unconfirmed(web_api: WebApi) -> None:
    admin = await first_admin_allowing(web_api, "*@bigdb.com")

    browser = await sign_in(web_api, BOB)

    bob = await user_by_login(web_api, "bob")
    assert bob is not None
    assert (bob.account_id, bob.role, bob.email) == (admin.account_id, "dev", "bob@bigdb.com")
    assert bob.email_confirmed_at is None
    assert (await browser.get("/")).headers["location"] == "/leases"
    async with transaction(web_api.api.sessions) as session:
        queued = list(await session.scalars(select(OutboxMessage.type)))
    assert "EmailConfirmationRequested" in queued
    assert "email.confirmation_requested" in await audit_actions(web_api)


async def test_a_verified_secondary_address_can_match_the_allowed_patterns(web_api: WebApi) -> None:
    admin = await first_admin_allowing(web_api, "*@bigdb.com")
    carl = FakeIdentity(login="carl", email="carl@gmail.example", other_verified_emails=("carl@bigdb.com",))

    await sign_in(web_api, carl)

    user = await user_by_login(web_api, "carl")
    assert user is not None and (user.account_id, user.email) == (admin.account_id, "carl@bigdb.com")


async def test_a_disallowed_email_is_refused_with_a_page_saying_why(web_api: WebApi) -> None:
    await first_admin_allowing(web_api, "*@bigdb.com")
    web_api.github.identities.append(EVE)
    browser = web_api.browser()

    callback = await choose_identity(await start_sign_in(browser), "eve")
    response = await finish_sign_in(browser, callback)

    assert response.status_code == 403
    assert f"eve@evil.example {NOT_INVITED}" in text_of(response)
    assert "Ask your ZeroCloud admin for an invitation" in text_of(response)
    assert not signed_in(browser)
    assert await user_by_login(web_api, "eve") is None
    assert "signin.refused" in await audit_actions(web_api)


async def test_an_unverified_address_does_not_count(web_api: WebApi) -> None:
    await first_admin_allowing(web_api, "*@bigdb.com")
    web_api.github.identities.append(
        FakeIdentity(login="mallory", email="mallory@evil.example", unverified_emails=("mallory@bigdb.com",))
    )
    browser = web_api.browser()

    response = await finish_sign_in(browser, await choose_identity(await start_sign_in(browser), "mallory"))

    assert response.status_code == 403 and NOT_INVITED in text_of(response)


async def test_no_account_policy_without_patterns_lets_anyone_in(web_api: WebApi) -> None:
    await sign_in(web_api, ADA)  # an account whose policy has no patterns (any owner email for leases)
    browser = web_api.browser()
    web_api.github.identities.append(BOB)

    response = await finish_sign_in(browser, await choose_identity(await start_sign_in(browser), "bob"))

    assert response.status_code == 403 and NOT_INVITED in text_of(response)


async def test_github_without_a_verified_email_is_refused(web_api: WebApi) -> None:
    web_api.github.identities.append(FakeIdentity(login="nova", email="nova@bigdb.com", email_verified=False))
    browser = web_api.browser()

    response = await finish_sign_in(browser, await choose_identity(await start_sign_in(browser), "nova"))

    assert response.status_code == 403
    assert "Verify an email on GitHub first" in text_of(response)
    assert not signed_in(browser)


async def test_a_user_an_admin_added_is_linked_by_a_verified_email(web_api: WebApi) -> None:
    await sign_in(web_api, ADA)
    ada = await user_by_login(web_api, "ada")
    assert ada is not None
    admin = await token_for(web_api, ada)
    added = await web_api.api.client.post(
        f"/api/v1/accounts/{admin.account_id}/users", json={"email": "cleo@bigdb.com", "role": "admin"},
        headers=admin.headers,
    )
    assert added.status_code == 201, added.text
    cleo = FakeIdentity(login="cleo", email="cleo@home.example", other_verified_emails=("cleo@bigdb.com",))

    browser = await sign_in(web_api, cleo)

    user = await user_by_login(web_api, "cleo")
    assert user is not None and user.id == added.json()["id"]
    assert (user.github_id, user.role, user.email) == (cleo.id, "admin", "cleo@bigdb.com")
    assert (await browser.get("/")).headers["location"] == "/summary"
    assert "user.github_linked" in await audit_actions(web_api)


async def test_an_invitation_link_joins_its_account_with_its_role(web_api: WebApi) -> None:
    await sign_in(web_api, ADA)
    ada = await user_by_login(web_api, "ada")
    assert ada is not None
    admin = await token_for(web_api, ada)
    invited = await web_api.api.client.post(
        f"/api/v1/accounts/{admin.account_id}/invitations", json={"email": "dan@bigdb.com", "role": "admin"},
        headers=admin.headers,
    )
    assert invited.status_code == 201, invited.text
    async with transaction(web_api.api.sessions) as session:
        link = await invitations.mint_link(session, invitation_id=invited.json()["id"], public_url="http://x")
    token = link.url.rsplit("/", 1)[1]
    dan = FakeIdentity(login="dan", email="dan@personal.example")  # GitHub knows another address

    await sign_in(web_api, dan, invitation=token)

    user = await user_by_login(web_api, "dan")
    assert user is not None
    assert (user.account_id, user.role, user.email) == (admin.account_id, "admin", "dan@bigdb.com")
    assert user.email_confirmed_at is not None  # the mailed link proved the address
    async with transaction(web_api.api.sessions) as session:
        invitation = await session.get(Invitation, invited.json()["id"])
    assert invitation is not None and invitation.accepted_by_user_id == user.id
    # The link works once.
    again = await web_api.browser().post("/login/github", data={"invitation": token})
    assert again.status_code == 410 and "already accepted" in text_of(again)


# --- when GitHub sign-in is not configured -------------------------------------------------


async def test_without_a_github_app_the_page_says_how_to_enable_it(api_settings: Callable[..., ApiSettings]) -> None:
    async with running_api(api_settings()) as api:
        page = await api.client.get("/login")
        assert page.status_code == 200
        assert "ZC_GITHUB_CLIENT_ID" in text_of(page) and "ZC_GITHUB_CLIENT_SECRET" in text_of(page)
        assert "Sign in with GitHub</button>" not in text_of(page)
        started = await api.client.post("/login/github", data={})
        assert started.status_code == 503


async def test_the_sign_in_page_explains_and_offers_github(web_api: WebApi) -> None:
    page = await web_api.browser().get("/login", params={"next": "/leases"})
    assert page.status_code == 200
    assert "Sign in with GitHub</button>" in text_of(page)
    assert 'action="/login/github"' in text_of(page) and 'name="next" value="/leases"' in text_of(page)
    # The fake GitHub is served over http: the page's CSP must let the form go there.
    assert f"form-action {web_api.github.url}" in page.headers["content-security-policy"]
