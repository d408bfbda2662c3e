"""Fixtures for the web UI's page tests: people signed in through the real GitHub flow
(against the fake GitHub), so a page test holds exactly the cookie a browser would.

Fixtures (available to every test under tests/api/web/):
  ``fake_github`` -> FakeGitHub   the fake on a free port; ``.identities`` is the list it
                                  serves (append FakeIdentity objects), ``.url``.
  ``web_api``     -> WebApi       an api on a clean database signing in through
                                  ``fake_github``: ``.api`` (factories.Api: ``.client`` is the
                                  bearer JSON client, ``.sessions``), ``.settings``,
                                  ``.browser()`` (a new cookie-keeping client).

Helpers (import them from here or from tests.support.fake_github):
  ``await sign_in(web_api, FakeIdentity(login="alice", email="alice@bigdb.com"))``
      -> httpx.AsyncClient signed in as that person, by the real round trip (the first
         person on a fresh database becomes the admin of a new account).
  ``csrf_of(response)`` -> the csrf_token of a page's forms; ``await csrf_token(browser)``
      reads it from /login (a page every signed-in person has).
  ``start_sign_in`` / ``choose_identity`` / ``finish_sign_in``: the round trip step by step.

Example::

    async def test_admin_sees_summary(web_api: WebApi) -> None:
        admin = await sign_in(web_api, FakeIdentity(login="ada", email="ada@bigdb.com"))
        response = await admin.get("/summary")
        assert response.status_code == 200
        done = await admin.post("/policy", data={"csrf_token": csrf_of(response), ...})
"""

from __future__ import annotations

from tests.support.fake_github import (  # noqa: F401
    FakeGitHub,
    WebApi,
    choose_identity,
    csrf_of,
    csrf_token,
    fake_github_fixture,
    finish_sign_in,
    sign_in,
    start_sign_in,
    web_api_fixture,
)
from zc_cli.fake_github import FakeIdentity  # noqa: F401
