"""`zerocloud-cli lease renew|shutdown|exempt|owner` against a real api: each is the
api's lease action, and its refusals reach the person in the api's own words."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from tests.cli.conftest import Cli, RunningApi
from tests.support.confirmations import follow_confirmation_link

DAY = 86400


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def make_lease(database_url: str, *, cloud_account_id: int, owner_email: str) -> int:
    """A resource and its lease, as ingestion would record them (the CLI cannot make one)."""

    async def insert() -> int:
        connection = await asyncpg.connect(database_url)
        try:
            account_id, owner_id = await connection.fetchrow(
                "SELECT c.account_id, u.id FROM cloud_account c JOIN app_user u ON u.account_id = c.account_id"
                " WHERE c.id = $1 AND u.email = $2",
                cloud_account_id, owner_email,
            )
            now = datetime.now(timezone.utc)
            resource_id = await connection.fetchval(
                "INSERT INTO resource (account_id, cloud_account_id, region, instance_id, instance_type, state,"
                " tags, gone, observed_at) VALUES ($1, $2, 'us-east-1', $3, 't3.micro', 'running', '{}', false, $4)"
                " RETURNING id",
                account_id, cloud_account_id, f"i-{secrets.token_hex(8)}", now,
            )
            lease_id: int = await connection.fetchval(
                "INSERT INTO lease (resource_id, account_id, cloud_account_id, owner_user_id, owner_email,"
                " owner_reason, expires_at, version, status, over_quota)"
                " VALUES ($1, $2, $3, $4, $5, 'test', $6, 1, 'active', false) RETURNING id",
                resource_id, account_id, cloud_account_id, owner_id, owner_email, now + timedelta(days=1),
            )
            return lease_id
        finally:
            await connection.close()

    return asyncio.run(insert())


@pytest.fixture
def lease(cli: Cli, api: RunningApi, onboarded: dict[str, int]) -> int:
    """A lease of the bootstrap admin's, in the seed's cloud account."""
    me = cli.json("whoami")
    return make_lease(api.database_url, cloud_account_id=onboarded["cloud_account"], owner_email=me["email"])


def test_renew_for_a_duration_and_until_a_time(cli: Cli, lease: int) -> None:
    before = at(cli.json("get", "lease", str(lease))["expires_at"])

    by_duration = cli.json("lease", "renew", str(lease), "--for", "1d12h")
    until = (datetime.now(timezone.utc) + timedelta(days=5)).replace(microsecond=0)
    to_time = cli.json("lease", "renew", str(lease), "--until", until.isoformat())

    assert by_duration["version"] == 2
    assert at(by_duration["expires_at"]) == before + timedelta(days=1, hours=12)
    assert to_time["version"] == 3 and at(to_time["expires_at"]) == until


def test_renew_past_the_max_shows_the_apis_reason(cli: Cli, lease: int) -> None:
    result = cli("lease", "renew", str(lease), "--for", "30d")

    assert result.exit_code == 1
    assert "HTTP 422" in result.stderr and "14 days (1209600 s)" in result.stderr
    assert cli.json("get", "lease", str(lease))["version"] == 1


def test_renew_needs_exactly_one_of_for_and_until(offline_cli: Cli) -> None:
    neither = offline_cli("lease", "renew", "1")
    both = offline_cli("lease", "renew", "1", "--for", "1d", "--until", "2030-01-01T00:00:00Z")
    bad = offline_cli("lease", "renew", "1", "--for", "three days")

    assert (neither.exit_code, both.exit_code, bad.exit_code) == (2, 2, 2)
    assert "--for DURATION or --until TIME" in neither.stderr
    assert "3d, 12h" in bad.stderr


def test_shutdown(cli: Cli, lease: int) -> None:
    result = cli("lease", "shutdown", str(lease))

    assert result.exit_code == 0, result.stderr
    shown = cli.json("get", "lease", str(lease))
    assert (shown["status"], shown["version"]) == ("expired", 2)


def test_exempt_with_and_without_an_end(cli: Cli, lease: int) -> None:
    until = (datetime.now(timezone.utc) + timedelta(days=40)).replace(microsecond=0)

    ended = cli.json("lease", "exempt", str(lease), "--reason", "load test", "--until", until.isoformat())
    endless = cli.json("lease", "exempt", str(lease), "--reason", "the build server")

    assert (ended["status"], ended["exempt_reason"], at(ended["expires_at"])) == ("exempt", "load test", until)
    assert (endless["status"], endless["exempt_reason"], endless["version"]) == ("exempt", "the build server", 3)


def test_owner_change(cli: Cli, api: RunningApi, lease: int, onboarded: dict[str, int]) -> None:
    alice = cli.json("create", "user", "--accountID", str(onboarded["account"]), "--email", "alice@bigdb.com")
    asyncio.run(follow_confirmation_link(api.url, api.internal_url, alice["id"]))  # nothing is mailed before

    changed = cli.json("lease", "owner", str(lease), "Alice@BigDB.com")
    unknown = cli("lease", "owner", str(lease), "nobody@bigdb.com")

    assert (changed["owner_email"], changed["version"]) == ("alice@bigdb.com", 2)
    assert unknown.exit_code == 1 and "not a user of this account" in unknown.stderr
