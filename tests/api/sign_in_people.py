"""What the sign-in tests share: the people who sign in at the fake GitHub, and small
readers of the database and of responses."""

from __future__ import annotations

import html
from http.cookies import SimpleCookie

import httpx
from sqlalchemy import select
from sqlmodel import col

from tests.api.factories import Caller
from tests.support.fake_github import (
    WebApi,
    sign_in,
)
from zc_api.auth.service import issue_token
from zc_api.database import transaction
from zc_api.models import (
    AuditEvent,
    User,
)
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
