"""How long a sign-in lasts: it slides with use (session_ttl_seconds of inactivity ends
it), the cookie outlives any single ttl so the browser keeps sending it, and no sign-in
lasts more than 30 days however busy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlmodel import col

from tests.api.factories import Api, Tenant
from zc_api.database import transaction
from zc_api.models import WebSession
from zc_api.web.session import SESSION_MAX_AGE

if TYPE_CHECKING:
    from tests.api.web.pages_fixtures import PageClientFactory

pytest_plugins = ["tests.api.web.pages_fixtures"]


async def _age(api: Api, user_id: int, **moments: datetime) -> None:
    async with transaction(api.sessions) as session:
        await session.execute(update(WebSession).where(col(WebSession.user_id) == user_id).values(**moments))


async def test_a_sign_in_in_use_outlives_its_ttl_and_an_idle_one_ends(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    browser = await page_client(tenant.dev)
    ttl = timedelta(seconds=api.app.state.runtime.settings.session_ttl_seconds)
    now = datetime.now(timezone.utc)
    # Signed in longer ago than one ttl, last used 10 minutes ago: still signed in, and
    # this use moves the end a full ttl ahead.
    await _age(api, tenant.dev.user_id, created_at=now - 2 * ttl, last_seen_at=now - timedelta(minutes=10),
               expires_at=now + timedelta(minutes=1))
    assert (await browser.get("/leases")).status_code == 200
    async with api.sessions() as session:
        row = await session.scalar(select(WebSession).where(col(WebSession.user_id) == tenant.dev.user_id))
    assert row is not None and row.expires_at > now + ttl - timedelta(minutes=1)
    # Idle past its end: signed out (sent to /login).
    await _age(api, tenant.dev.user_id, expires_at=now - timedelta(seconds=1))
    idle = await browser.get("/leases")
    assert idle.status_code == 303 and idle.headers["location"].startswith("/login")


async def test_no_sign_in_lasts_past_the_maximum_age(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    browser = await page_client(tenant.dev)
    now = datetime.now(timezone.utc)
    await _age(api, tenant.dev.user_id, created_at=now - SESSION_MAX_AGE - timedelta(minutes=1),
               last_seen_at=now - timedelta(minutes=1), expires_at=now + timedelta(hours=1))

    response = await browser.get("/leases")

    assert response.status_code == 303 and response.headers["location"].startswith("/login")


async def test_the_cookie_lives_as_long_as_a_sign_in_can(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    from fastapi import Response

    from zc_api.models import User
    from zc_api.web.session import start_session

    response = Response()
    async with transaction(api.sessions) as session:
        user = await session.get(User, tenant.dev.user_id)
        assert user is not None
        await start_session(session, user=user, settings=api.app.state.runtime.settings, response=response)
    cookie = response.headers["set-cookie"].lower()
    assert f"max-age={int(SESSION_MAX_AGE.total_seconds())}" in cookie
    assert "httponly" in cookie and "samesite=lax" in cookie
