"""Signing in with GitHub, end to end against the fake GitHub: who gets in as what (the
sign-up rules), what is refused and why, the OAuth checks (state bound to the browser,
single use, PKCE), the session cookie, and signing out."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select, update
from sqlmodel import col

from zc_common.messages import utcnow
from zc_common.settings import ApiSettings

from tests.api.factories import Caller, running_api
from tests.fake_github_server import (  # noqa: F401  (fixtures, by their pytest names)
    FakeGitHub,
    WebApi,
    choose_identity,
    csrf_token,
    fake_github_fixture,
    finish_sign_in,
    running_web_api,
    sign_in,
    start_sign_in,
    web_api_fixture,
    web_settings,
)
from zc_api.auth.service import issue_token
from zc_api.database import transaction
from zc_api.invitations import service as invitations
from zc_api.models import (
    Account,
    AccountPolicy,
    AuditEvent,
    Invitation,
    LoginAttempt,
    OutboxMessage,
    User,
    WebSession,
)
from zc_api.web.login import safe_next
from zc_cli.fake_github import FakeIdentity

ADA = FakeIdentity(login="ada", email="ada@bigdb.com", name="Ada Lovelace")
BOB = FakeIdentity(login="bob", email="bob@bigdb.com", name="Bob")
EVE = FakeIdentity(login="eve", email="eve@evil.example")

NOT_INVITED = "is not invited to any ZeroCloud account and matches no account's allowed email addresses"
NOT_STARTED = "This sign-in link was not started here or has expired"


async def user_by_login(web_api: WebApi, login: str) -> User | None:
    async with transaction(web_api.api.sessions) as session:
        return await session.scalar(select(User).where(col(User.github_login) == login))


async def audit_actions(web_api: WebApi) -> list[str]:
    async with transaction(web_api.api.sessions) as session:
        return list(await session.scalars(select(AuditEvent.action).order_by(col(AuditEvent.id))))


async def token_for(web_api: WebApi, user: User) -> Caller:
    """An API token for a user who signed in on the web (as the tokens page would give)."""
    async with transaction(web_api.api.sessions) as session:
        token = await issue_token(session, user, "test")
    assert user.id is not None
    return Caller(user_id=user.id, email=user.email, token=token, account_id=user.account_id)


async def first_admin_allowing(web_api: WebApi, *patterns: str) -> Caller:
    """Ada signs in first (admin of a new account), then lets ``patterns`` in."""
    await sign_in(web_api, ADA)
    ada = await user_by_login(web_api, "ada")
    assert ada is not None and ada.account_id is not None
    admin = await token_for(web_api, ada)
    response = await web_api.api.client.patch(
        f"/api/v1/accounts/{ada.account_id}/policy", json={"allowed_email_patterns": list(patterns)},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    return admin


def set_cookies(response: httpx.Response) -> dict[str, SimpleCookie]:
    cookies: dict[str, SimpleCookie] = {}
    for header in response.headers.get_list("set-cookie"):
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(header)
        for name in cookie:
            cookies[name] = cookie
    return cookies


def text_of(response: httpx.Response) -> str:
    """The page's text as a person reads it (entities unescaped)."""
    return html.unescape(response.text)


def signed_in(browser: httpx.AsyncClient) -> bool:
    return any(name.endswith("zc_session") for name in browser.cookies.keys())


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


# --- the OAuth checks -------------------------------------------------------------------


async def test_a_callback_whose_state_is_not_this_browsers_is_refused(web_api: WebApi) -> None:
    web_api.github.identities.append(ADA)
    browser = web_api.browser()
    callback = await choose_identity(await start_sign_in(browser), "ada")
    parts = urlsplit(callback)
    query = dict(parse_qsl(parts.query))

    forged = await browser.get(f"{parts.path}?{urlencode({**query, 'state': 'not-the-one-i-started'})}")
    assert forged.status_code == 400 and NOT_STARTED in text_of(forged)
    assert not signed_in(browser)

    # The genuine callback, but in another browser (a link sent to a victim): refused too.
    elsewhere = web_api.browser()
    stolen = await finish_sign_in(elsewhere, callback)
    assert stolen.status_code == 400 and NOT_STARTED in text_of(stolen)
    assert not signed_in(elsewhere)
    async with transaction(web_api.api.sessions) as session:
        assert await session.scalar(select(WebSession.id)) is None


async def test_a_callback_works_once(web_api: WebApi) -> None:
    web_api.github.identities.append(ADA)
    browser = web_api.browser()
    callback = await choose_identity(await start_sign_in(browser), "ada")
    state = dict(parse_qsl(urlsplit(callback).query))["state"]
    assert (await finish_sign_in(browser, callback)).status_code == 303

    replay = web_api.browser()
    replay.cookies.set("zc_signin", state)  # even with the state cookie it carried
    response = await finish_sign_in(replay, callback)

    assert response.status_code == 400 and NOT_STARTED in text_of(response)
    assert not signed_in(replay)


async def test_an_expired_sign_in_is_refused(web_api: WebApi) -> None:
    web_api.github.identities.append(ADA)
    browser = web_api.browser()
    callback = await choose_identity(await start_sign_in(browser), "ada")
    async with transaction(web_api.api.sessions) as session:
        await session.execute(update(LoginAttempt).values(expires_at=utcnow() - timedelta(seconds=1)))

    response = await finish_sign_in(browser, callback)

    assert response.status_code == 400 and NOT_STARTED in text_of(response)


async def test_a_wrong_pkce_verifier_is_refused_by_github(web_api: WebApi) -> None:
    web_api.github.identities.append(ADA)
    browser = web_api.browser()
    callback = await choose_identity(await start_sign_in(browser), "ada")
    async with transaction(web_api.api.sessions) as session:
        await session.execute(update(LoginAttempt).values(code_verifier="x" * 86))

    response = await finish_sign_in(browser, callback)

    assert response.status_code == 400
    assert "GitHub did not accept the sign-in code" in text_of(response)
    assert not signed_in(browser)
    assert await user_by_login(web_api, "ada") is None


async def test_cancelling_at_github_shows_what_happened(web_api: WebApi) -> None:
    web_api.github.identities.append(ADA)
    browser = web_api.browser()

    callback = await choose_identity(await start_sign_in(browser), None, cancel=True)
    assert "error=access_denied" in callback
    response = await finish_sign_in(browser, callback)

    assert response.status_code == 400
    assert "You cancelled the sign-in on GitHub" in text_of(response)
    assert not signed_in(browser)


async def test_github_that_does_not_answer_is_a_page_not_a_500(
    clean_database: str, moto_url: str, fake_github: FakeGitHub
) -> None:
    fake_github.identities.append(ADA)
    # GitHub's token endpoint unreachable (nothing listens on port 9 of this host).
    api_settings = web_settings(clean_database, moto_url, fake_github, github_token_url="http://127.0.0.1:9/token")
    async with running_web_api(api_settings, fake_github) as web_api:
        browser = web_api.browser()
        response = await finish_sign_in(browser, await choose_identity(await start_sign_in(browser), "ada"))

    assert response.status_code == 502
    assert "Try again in a moment" in text_of(response)


async def test_the_authorize_url_carries_the_pkce_challenge_and_callback(web_api: WebApi) -> None:
    authorize = await start_sign_in(web_api.browser())

    params = dict(parse_qsl(urlsplit(authorize).query))
    assert authorize.startswith(f"{web_api.github.url}/login/oauth/authorize?")
    assert params["client_id"] == web_api.settings.github_client_id
    assert params["redirect_uri"] == "http://127.0.0.1:8000/auth/github/callback"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["scope"] == "read:user user:email"
    async with transaction(web_api.api.sessions) as session:
        attempt = await session.scalar(select(LoginAttempt))
    assert attempt is not None and attempt.state_hash != params["state"]  # stored hashed


@pytest.mark.parametrize(
    "next_path", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "/logout"]
)
async def test_a_next_that_leaves_the_site_is_ignored(web_api: WebApi, next_path: str) -> None:
    page = await web_api.browser().get("/login", params={"next": next_path})
    assert 'name="next" value="/"' in text_of(page)

    web_api.github.identities.append(ADA)
    browser = web_api.browser()
    callback = await choose_identity(await start_sign_in(browser, next_path=next_path), "ada")
    response = await finish_sign_in(browser, callback)

    assert (response.status_code, response.headers["location"]) == (303, "/")


async def test_a_local_next_is_where_the_sign_in_ends(web_api: WebApi) -> None:
    browser = await sign_in(web_api, ADA, next_path="/leases?status=active")
    # sign_in asserted the 303; check where it went by signing in again from a fresh browser.
    again = web_api.browser()
    callback = await choose_identity(await start_sign_in(again, next_path="/leases?status=active"), "ada")
    response = await finish_sign_in(again, callback)
    assert response.headers["location"] == "/leases?status=active"
    assert signed_in(browser)


def test_safe_next_keeps_only_paths_of_this_site() -> None:
    assert safe_next("/cloud-accounts/3?tab=x") == "/cloud-accounts/3?tab=x"
    for bad in (None, "", "leases", "//evil", "/\\evil", "http://evil/", "/\tx", "/login?next=/", "/auth/github/callback"):
        assert safe_next(bad) == "/"


# --- the session, its cookie, and signing out ---------------------------------------------


async def test_signing_out_ends_the_session_and_needs_the_csrf_token(web_api: WebApi) -> None:
    browser = await sign_in(web_api, ADA)
    cookies = dict(browser.cookies.items())

    refused = await browser.post("/logout", data={})
    assert refused.status_code == 403
    assert (await browser.get("/")).headers["location"] == "/summary"  # still signed in

    response = await browser.post("/logout", data={"csrf_token": await csrf_token(browser)})
    assert (response.status_code, response.headers["location"]) == (303, "/login?notice=signed-out")
    assert (await browser.get("/")).headers["location"] == "/login"
    page = await browser.get("/login?notice=signed-out")
    assert "You are signed out." in text_of(page)

    # The old cookie, kept by someone, is worth nothing now.
    stale = web_api.browser()
    for name, value in cookies.items():
        stale.cookies.set(name, value)
    assert (await stale.get("/")).headers["location"] == "/login"


async def test_signing_out_when_not_signed_in_goes_to_the_sign_in_page(web_api: WebApi) -> None:
    response = await web_api.browser().post("/logout", data={"csrf_token": "x"})
    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_cookies_are_httponly_samesite_lax_and_not_secure_over_http(web_api: WebApi) -> None:
    web_api.github.identities.append(ADA)
    browser = web_api.browser()
    started = await browser.post("/login/github", data={})
    state_cookie = set_cookies(started)["zc_signin"]["zc_signin"]
    assert state_cookie["httponly"] and state_cookie["samesite"].lower() == "lax" and not state_cookie["secure"]
    assert 0 < int(state_cookie["max-age"]) <= 600

    callback = await choose_identity(started.headers["location"], "ada")
    response = await finish_sign_in(browser, callback)
    session_cookie = set_cookies(response)["zc_session"]["zc_session"]
    assert session_cookie["httponly"] and session_cookie["samesite"].lower() == "lax"
    assert not session_cookie["secure"] and session_cookie["path"] == "/"


@pytest.fixture
async def https_web_api(clean_database: str, moto_url: str, fake_github: FakeGitHub) -> AsyncIterator[WebApi]:
    api_settings = web_settings(clean_database, moto_url, fake_github, public_url="https://zerocloud.test")
    async with running_web_api(api_settings, fake_github) as web_api:
        yield web_api


async def test_over_https_cookies_are_secure_with_the_host_prefix(https_web_api: WebApi) -> None:
    https_web_api.github.identities.append(ADA)
    browser = https_web_api.browser()
    started = await browser.post("/login/github", data={})
    assert set_cookies(started)["__Host-zc_signin"]["__Host-zc_signin"]["secure"]

    response = await finish_sign_in(browser, await choose_identity(started.headers["location"], "ada"))

    assert response.status_code == 303, response.text
    cookie = set_cookies(response)["__Host-zc_session"]["__Host-zc_session"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"].lower() == "lax" and cookie["path"] == "/"
    assert "domain" not in cookie or not cookie["domain"]
    assert (await browser.get("/")).headers["location"] == "/summary"


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


# --- found in review: login CSRF, retention, body size, the invitation page's CSP -----------


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
     {"Sec-Fetch-Site": "same-site", "Origin": "http://other.127.0.0.1:8000"}],
)
async def test_a_sign_in_started_from_another_site_is_refused(web_api: WebApi, headers: dict[str, str]) -> None:
    # Another site's page auto-posting this form (perhaps with an invitation of its own)
    # would sign the visitor in to an account they never chose: login CSRF.
    browser = web_api.browser()
    response = await browser.post("/login/github", data={"invitation": "x" * 43}, headers=headers)

    assert response.status_code == 403 and "another site" in text_of(response)
    assert not any(name.endswith("zc_signin") for name in browser.cookies.keys())
    async with transaction(web_api.api.sessions) as session:
        assert await session.scalar(select(LoginAttempt.state_hash)) is None


async def test_a_sign_in_started_from_this_site_by_a_browser_goes_to_github(web_api: WebApi) -> None:
    browser = web_api.browser()
    response = await browser.post(
        "/login/github", data={}, headers={"Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
    )
    assert response.status_code == 303 and response.headers["location"].startswith(web_api.github.url)


async def test_expired_sign_in_attempts_are_deleted_when_the_next_one_starts(web_api: WebApi) -> None:
    await start_sign_in(web_api.browser())
    async with transaction(web_api.api.sessions) as session:
        await session.execute(update(LoginAttempt).values(expires_at=utcnow() - timedelta(seconds=1)))

    await start_sign_in(web_api.browser())

    # An expired attempt can never finish: anonymous posts must not pile rows up for a day.
    async with transaction(web_api.api.sessions) as session:
        assert len((await session.scalars(select(LoginAttempt.state_hash))).all()) == 1


async def test_a_huge_form_is_refused_before_it_is_read(web_api: WebApi) -> None:
    field = "x" * 900_000  # each field under Starlette's 1 MB, together far more than any form needs
    browser = web_api.browser()

    declared = await browser.post("/login/github", data={"a": field, "b": field, "c": field})

    async def chunks() -> AsyncIterator[bytes]:
        for name in "abc":
            yield f"{name}={field}&".encode()

    streamed = await browser.post(
        "/login/github", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )

    assert declared.status_code == 413
    assert streamed.status_code == 413
    async with transaction(web_api.api.sessions) as session:
        assert await session.scalar(select(LoginAttempt.state_hash)) is None


async def test_the_invitation_page_lets_its_form_go_to_a_github_served_over_http(web_api: WebApi) -> None:
    await sign_in(web_api, ADA)
    ada = await user_by_login(web_api, "ada")
    assert ada is not None
    admin = await token_for(web_api, ada)
    invited = await web_api.api.client.post(
        f"/api/v1/accounts/{admin.account_id}/invitations", json={"email": "ivy@bigdb.com"}, headers=admin.headers
    )
    assert invited.status_code == 201, invited.text
    async with transaction(web_api.api.sessions) as session:
        link = await invitations.mint_link(session, invitation_id=invited.json()["id"], public_url="http://x")

    page = await web_api.browser().get(urlsplit(link.url).path)

    assert page.status_code == 200 and 'action="/login/github"' in page.text
    # The button posts here and is redirected to GitHub: the CSP must allow that redirect.
    assert f"form-action {web_api.github.url}" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
