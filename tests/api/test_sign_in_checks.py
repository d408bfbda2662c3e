"""Signing in with GitHub, its checks: state bound to the browser and used once, PKCE,
where the browser goes after, the session cookie and signing out, and what review found
(login CSRF, sign-in attempts kept, form size, the invitation page's form)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import select, update

from zc_common.messages import utcnow

from tests.api.sign_in_people import (
    ADA,
    NOT_STARTED,
    set_cookies,
    signed_in,
    text_of,
    token_for,
    user_by_login,
)
from tests.support.fake_github import (  # noqa: F401  (fixtures, by their pytest names)
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
from zc_api.database import transaction
from zc_api.invitations import service as invitations
from zc_api.models import (
    LoginAttempt,
    WebSession,
)
from zc_api.web.login import safe_next

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
