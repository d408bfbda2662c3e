"""The access log as an operator gets it: `zerocloud-api serve` in a process of its own,
its JSON log on stderr. A link's token or an OAuth code copied from that log is as good
as the mail or the browser it came from, so none may be in it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.credentials import API_CREDENTIALS
from tests.support.ports import free_port

BIN = Path(sys.executable).parent

pytestmark = pytest.mark.timeout(90)


@contextlib.contextmanager
def api_process(log: Path, **settings: str) -> Iterator[str]:
    """The api served by its console script; yields its URL once it answers."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ZC_")},
        "ZC_HTTP_HOST": "127.0.0.1", "ZC_HTTP_PORT": str(port), "ZC_LOG_LEVEL": "INFO",
        "ZC_INTERNAL_HOST": "127.0.0.1", "ZC_INTERNAL_PORT": str(free_port()),
        **{f"ZC_{key.upper()}": value for key, value in settings.items()},
    }
    with log.open("ab") as out:
        process = subprocess.Popen([str(BIN / "zerocloud-api"), "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def until_ready(url: str, log: Path) -> None:
    deadline = time.monotonic() + 40
    async with httpx.AsyncClient(timeout=5) as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"the api never answered:\n{log.read_text(errors='replace')[-4000:]}")  # noqa: ASYNC240
            await asyncio.sleep(0.1)


async def test_access_log_never_holds_a_link_token_or_an_oauth_code(
    tmp_path: Path, clean_database: str, amqp_url: str, exchange: str
) -> None:
    secrets_sent = {name: secrets.token_urlsafe(32) for name in ("action", "invitation", "confirmation", "code",
                                                                 "state", "next", "login_invitation")}
    targets = [
        f"/a/{secrets_sent['action']}",
        f"/invitations/{secrets_sent['invitation']}",
        f"/confirm-email/{secrets_sent['confirmation']}",
        f"/auth/github/callback?code={secrets_sent['code']}&state={secrets_sent['state']}",
        f"/login?next=%2Fa%2F{secrets_sent['next']}&invitation={secrets_sent['login_invitation']}",
    ]
    log = tmp_path / "api.log"
    settings = {
        "database_url": clean_database, "amqp_url": amqp_url, "amqp_exchange": exchange,
        **API_CREDENTIALS, "bootstrap_admin_token": f"zc_{secrets.token_urlsafe(32)}",
    }
    with api_process(log, **settings) as url:
        await until_ready(url, log)
        async with httpx.AsyncClient(base_url=url, timeout=10, follow_redirects=False) as http:
            for target in targets:
                await http.get(target)
            await http.post(f"/a/{secrets_sent['action']}")
            await http.get("/api/v1/invitations/7")  # an id, not a credential: kept

        async def logged() -> list[str]:
            lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
            return [line["msg"] for line in lines if line.get("logger") == "uvicorn.access"]

        deadline = time.monotonic() + 10
        while len(access := await logged()) < len(targets) + 2:
            assert time.monotonic() < deadline, f"access lines missing: {access}"
            await asyncio.sleep(0.1)

    text = log.read_text()
    for name, value in secrets_sent.items():
        assert value not in text, f"the {name} is in the api's log"
    assert any('"GET /a/[redacted] HTTP/1.1"' in line for line in access), access
    assert any('"POST /a/[redacted] HTTP/1.1"' in line for line in access), access
    assert any("/invitations/[redacted]" in line for line in access), access
    assert any("/confirm-email/[redacted]" in line for line in access), access
    assert any("/auth/github/callback?code=[redacted]&state=[redacted]" in line for line in access), access
    assert any("/login?next=[redacted]&invitation=[redacted]" in line for line in access), access
    assert any("/api/v1/invitations/7 " in line for line in access), access
