"""The fake GitHub (zc_cli.fake_github) refuses what GitHub would: the sign-in tests
against it prove something only because it is strict."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.support.fake_github import CLIENT_ID, CLIENT_SECRET, FakeGitHub, running_fake_github
from tests.support.serving import serving_in_thread
from zc_cli.fake_github import FakeIdentity, create_fake_github, s256

ADA = FakeIdentity(login="ada", email="ada@bigdb.com", name="Ada Lovelace")


@pytest.fixture
async def fake_github() -> AsyncIterator[FakeGitHub]:
    async with running_fake_github() as fake:
        yield fake


async def test_the_fake_github_refuses_what_github_would(fake_github: FakeGitHub) -> None:
    fake_github.identities.append(ADA)
    verifier = "v" * 50
    params = {
        "client_id": CLIENT_ID, "redirect_uri": "http://zc.test/cb", "state": "s", "scope": "read:user user:email",
        "code_challenge": s256(verifier), "code_challenge_method": "S256",
    }
    authorize = f"{fake_github.url}/login/oauth/authorize"
    async with httpx.AsyncClient() as client:
        for broken in ({"client_id": "other"}, {"code_challenge_method": "plain"}, {"state": ""}):
            assert (await client.get(authorize, params={**params, **broken})).status_code == 400
        chosen = await client.post(authorize, data={**params, "login": "ada"})
        code = dict(parse_qsl(urlsplit(chosen.headers["location"]).query))["code"]
        token_url = f"{fake_github.url}/login/oauth/access_token"
        exchange = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "code": code,
                    "redirect_uri": "http://zc.test/cb", "code_verifier": verifier}
        json_please = {"Accept": "application/json"}

        wrong_secret = await client.post(token_url, data={**exchange, "client_secret": "nope"}, headers=json_please)
        assert wrong_secret.json()["error"] == "incorrect_client_credentials"
        granted = await client.post(token_url, data=exchange, headers=json_please)
        assert granted.json()["token_type"] == "bearer"
        replayed = await client.post(token_url, data=exchange, headers=json_please)
        assert replayed.json()["error"] == "bad_verification_code"

        assert (await client.get(f"{fake_github.url}/user")).status_code == 401
        bearer = {"Authorization": f"Bearer {granted.json()['access_token']}"}
        assert (await client.get(f"{fake_github.url}/user", headers=bearer)).json()["login"] == "ada"
        emails = (await client.get(f"{fake_github.url}/user/emails", headers=bearer)).json()
        assert emails == [{"email": "ada@bigdb.com", "primary": True, "verified": True, "visibility": "private"}]


def test_the_fake_github_runs_in_a_thread_for_synchronous_callers() -> None:
    app = create_fake_github(CLIENT_ID, CLIENT_SECRET, [ADA])
    with serving_in_thread(app) as url:
        assert httpx.get(f"{url}/user", timeout=5).status_code == 401
