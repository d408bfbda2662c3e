"""`zerocloud-api create-admin`: an admin in no account yet and their token, printed once —
as a sentence, or with --json as one JSON object a script can read."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from tests.api.factories import Api
from tests.support.credentials import API_CREDENTIALS
from zc_api.cli import app


@pytest.fixture
def env(clean_database: str) -> dict[str, str]:
    credentials = {f"ZC_{name.upper()}": value for name, value in API_CREDENTIALS.items()}
    return {"ZC_DATABASE_URL": clean_database, "ZC_AMQP_URL": "memory://", "ZC_BUS": "memory", **credentials}


def test_create_admin_prints_the_token_once(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["create-admin", "--email", "Ops@BigDB.com"], env=env)

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("admin ops@bigdb.com created; API token (shown once): zc_")


async def test_create_admin_json_gives_the_admin_and_a_working_token(env: dict[str, str], api: Api) -> None:
    # In a thread of its own: the command runs its own event loop, as from a shell.
    result = await asyncio.to_thread(CliRunner().invoke, app, ["create-admin", "--email", "Ops@BigDB.com", "--json"], env=env)

    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert {key: created[key] for key in ("email", "role", "account_id", "token_name")} == {
        "email": "ops@bigdb.com", "role": "admin", "account_id": None, "token_name": "create-admin"
    }
    me = await api.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {created['token']}"})
    assert me.status_code == 200, me.text
    assert (me.json()["id"], me.json()["role"]) == (created["id"], "admin")
