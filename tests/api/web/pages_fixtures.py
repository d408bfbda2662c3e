"""Page tests without the GitHub round trip: a browser session started directly for a
user the api factories made (tests/api/factories.py), so a page test can look at any
tenant's admin or developer in milliseconds. The sign-in itself is tested with the fake
GitHub (tests/api/test_github_login.py, tests/e2e/test_web_ui.py).

Use it in a test module with ``pytest_plugins = ["tests.api.web.pages_fixtures"]``::

    async def test_dev_sees_own_leases(page_client: PageClientFactory, tenant: Tenant) -> None:
        dev = await page_client(tenant.dev)
        response = await dev.get("/leases")
        done = await dev.post("/leases/1/renew", {"extend": "3600"})  # csrf_token added
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import Response
from sqlalchemy import select
from sqlmodel import col

from tests.api.factories import Api, Caller
from zc_api.database import transaction
from zc_api.models import User, WebSession
from zc_api.web.session import cookie_name, start_session


@dataclass
class PageClient:
    """A browser signed in as one user: GETs pages, POSTs forms with its CSRF token."""

    http: httpx.AsyncClient
    csrf_token: str
    user_id: int
    email: str

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params or None)

    async def post(self, path: str, form: dict[str, str] | None = None, *, csrf: bool = True) -> httpx.Response:
        data = dict(form or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf_token)
        return await self.http.post(path, data=data)


PageClientFactory = Callable[[Caller], Awaitable[PageClient]]


async def open_page_client(api: Api, caller: Caller) -> PageClient:
    """Start a web session for ``caller``'s user, as a finished sign-in would."""
    settings = api.app.state.runtime.settings
    response = Response()
    async with transaction(api.sessions) as session:
        user = await session.get(User, caller.user_id)
        assert user is not None, f"no user {caller.user_id}"
        await start_session(session, user=user, settings=settings, response=response)
        csrf = await session.scalar(
            select(col(WebSession.csrf_token)).where(col(WebSession.user_id) == user.id)
            .order_by(col(WebSession.id).desc()).limit(1)
        )
    name = cookie_name(settings)
    match = re.search(rf"{re.escape(name)}=([^;]+)", response.headers["set-cookie"])
    assert match is not None and csrf is not None
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://zerocloud.test", cookies={name: match.group(1)},
    )
    return PageClient(http=http, csrf_token=csrf, user_id=caller.user_id, email=caller.email)


@pytest.fixture
async def page_client(api: Api) -> AsyncIterator[PageClientFactory]:
    """``await page_client(caller)``: a browser signed in as that user (closed after the test)."""
    opened: list[PageClient] = []

    async def open_for(caller: Caller) -> PageClient:
        client = await open_page_client(api, caller)
        opened.append(client)
        return client

    yield open_for
    for client in opened:
        await client.http.aclose()
