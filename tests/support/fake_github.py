"""Signing people in through the fake GitHub (zc_cli.fake_github) in tests: the fake on a
free port, an api whose settings point at it, browsers (httpx clients keeping cookies),
and the real sign-in round trip step by step.

Fixtures are defined here once, under their pytest names (``fake_github``, ``web_api``),
and imported where they are needed (tests/api/web/conftest.py, test modules outside it).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from zc_common.settings import ApiSettings

from tests.api.factories import Api, running_api, settings
from zc_cli.fake_github import FakeGitHubState, FakeIdentity, create_fake_github, github_settings
from zc_cli.local_server import serving

CLIENT_ID = "zc-test-github-client"
CLIENT_SECRET = "zc-test-github-secret-" + "g" * 20


@dataclass
class FakeGitHub:
    """The fake GitHub, running. Add people to ``identities`` (the list the fake serves)."""

    url: str
    app: FastAPI
    identities: list[FakeIdentity]

    @property
    def state(self) -> FakeGitHubState:
        state: FakeGitHubState = self.app.state.fake
        return state

    def api_settings(self) -> dict[str, str]:
        """ApiSettings overrides that send the api's GitHub sign-in here."""
        return github_settings(self.url, CLIENT_ID, CLIENT_SECRET)


@contextlib.asynccontextmanager
async def running_fake_github(identities: list[FakeIdentity] | None = None, **options: Any) -> AsyncIterator[FakeGitHub]:
    people = identities if identities is not None else []
    app = create_fake_github(CLIENT_ID, CLIENT_SECRET, people, **options)
    async with serving(app) as url:
        yield FakeGitHub(url=url, app=app, identities=people)


def web_settings(database_url: str, moto_url: str, fake: FakeGitHub, **overrides: Any) -> ApiSettings:
    """Api settings (tests/api/factories.settings) with GitHub sign-in sent to ``fake``."""
    return settings(database_url, moto_url, **{**fake.api_settings(), **overrides})


@dataclass
class WebApi:
    """A running api that signs people in through ``github``. ``api.client`` is the plain
    JSON client (bearer tokens); ``browser()`` makes a cookie-keeping client for pages."""

    api: Api
    github: FakeGitHub
    settings: ApiSettings
    _browsers: list[httpx.AsyncClient] = field(default_factory=list)

    def browser(self) -> httpx.AsyncClient:
        """A new browser (its own cookies) on the api's public URL; closed after the test.
        Redirects are not followed, so tests see each step."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.api.app), base_url=self.settings.public_url
        )
        self._browsers.append(client)
        return client

    async def close(self) -> None:
        for client in self._browsers:
            await client.aclose()


@contextlib.asynccontextmanager
async def running_web_api(api_settings: ApiSettings, fake: FakeGitHub) -> AsyncIterator[WebApi]:
    async with running_api(api_settings) as api:
        web = WebApi(api=api, github=fake, settings=api_settings)
        try:
            yield web
        finally:
            await web.close()


@pytest.fixture(name="fake_github")
async def fake_github_fixture() -> AsyncIterator[FakeGitHub]:
    """The fake GitHub on a free port, nobody in it yet: append FakeIdentity objects to
    ``fake_github.identities`` (or let ``sign_in`` add them)."""
    async with running_fake_github() as fake:
        yield fake


@pytest.fixture(name="web_api")
async def web_api_fixture(clean_database: str, moto_url: str, fake_github: FakeGitHub) -> AsyncIterator[WebApi]:
    """An api on a clean database whose GitHub sign-in goes to ``fake_github``."""
    async with running_web_api(web_settings(clean_database, moto_url, fake_github), fake_github) as web:
        yield web


# --- the sign-in, step by step ---------------------------------------------------------


async def start_sign_in(browser: httpx.AsyncClient, *, next_path: str | None = None, invitation: str | None = None) -> str:
    """Press "Sign in with GitHub": the URL of GitHub's authorize page the api sends the browser to."""
    form = {key: value for key, value in (("next", next_path), ("invitation", invitation)) if value is not None}
    response = await browser.post("/login/github", data=form)
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def choose_identity(authorize_url: str, login: str | None, *, cancel: bool = False) -> str:
    """At the fake GitHub: open the authorize page, then pick ``login`` (or cancel). The
    URL GitHub sends the browser back to (the api's callback)."""
    async with httpx.AsyncClient() as github:
        page = await github.get(authorize_url)
        assert page.status_code == 200, page.text
        form = dict(parse_qsl(urlsplit(authorize_url).query))
        form.update({"cancel": "1"} if cancel else {"login": login or ""})
        base = authorize_url.split("?", 1)[0]
        chosen = await github.post(base, data=form)
        assert chosen.status_code == 302, chosen.text
        return chosen.headers["location"]


async def finish_sign_in(browser: httpx.AsyncClient, callback_url: str) -> httpx.Response:
    """Follow GitHub's redirect back to the api's callback in ``browser``."""
    parts = urlsplit(callback_url)
    return await browser.get(parts.path + (f"?{parts.query}" if parts.query else ""))


async def sign_in(
    web_api: WebApi, identity: FakeIdentity, *, next_path: str | None = None, invitation: str | None = None,
    browser: httpx.AsyncClient | None = None,
) -> httpx.AsyncClient:
    """The whole round trip as a browser does it; returns the browser, now holding the
    session cookie (it fails the test if the sign-in was refused). ``identity`` is added to
    the fake GitHub if it is not there yet."""
    if all(known.login != identity.login for known in web_api.github.identities):
        web_api.github.identities.append(identity)
    browser = browser or web_api.browser()
    authorize_url = await start_sign_in(browser, next_path=next_path, invitation=invitation)
    callback = await choose_identity(authorize_url, identity.login)
    response = await finish_sign_in(browser, callback)
    assert response.status_code == 303, f"sign-in of {identity.login} refused: {response.text}"
    return browser


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(page: httpx.Response | str) -> str:
    """The csrf_token a page's forms carry (every signed-in page has one: the sign-out form)."""
    text = page if isinstance(page, str) else page.text
    match = _CSRF.search(text)
    assert match is not None, "no csrf_token on this page"
    return match.group(1)


async def csrf_token(browser: httpx.AsyncClient, path: str = "/login") -> str:
    """The signed-in browser's CSRF token, read from a page (default: one every signed-in
    person can open)."""
    response = await browser.get(path)
    return csrf_of(response)
