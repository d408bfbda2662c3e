"""`zerocloud-cli get policy` and `update policy` against a real api: every field the API's
policy update takes has an option (the list comes from the API's own schema), each reaches
the api, and what the api refuses comes back as its message."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from tests.cli.conftest import Cli, RunningApi
from zc_api.policies.schemas import AccountPolicyUpdate
from zc_cli.main import app
from zc_cli.policy import POLICY_OPTIONS


def _update_policy_options() -> set[str]:
    root: Any = typer.main.get_command(app)
    command = root.commands["update"].commands["policy"]
    return {name for param in command.params for name in param.opts}


def test_every_field_of_the_apis_policy_update_has_an_option() -> None:
    fields = set(AccountPolicyUpdate.model_fields)

    assert fields - POLICY_OPTIONS.keys() == set(), "fields the CLI cannot set: add an option to `update policy`"
    assert POLICY_OPTIONS.keys() - fields == set(), "options for fields the API no longer has"
    assert set(POLICY_OPTIONS.values()) <= _update_policy_options()


def test_get_policy_shows_the_accounts_policy(cli: Cli, onboarded: dict[str, int]) -> None:
    shown = cli("get", "policy")
    policy = cli.json("get", "policy")

    assert shown.exit_code == 0, shown.stderr
    assert "default_lease_seconds:" in shown.stdout and "action_on_expiry:" in shown.stdout
    assert policy["account_id"] == onboarded["account"]
    assert policy["default_lease_seconds"] == 3 * 86400


def test_update_policy_sets_every_field(cli: Cli, onboarded: dict[str, int]) -> None:
    updated = cli.json(
        "update", "policy",
        "--default-lease", "2d", "--max-lease", "1w", "--owner-tag", "Owner-Email",
        "--allowed-email-pattern", "*@bigdb.com", "--allowed-email-pattern", "ops@example.com",
        "--max-instances-per-user", "4", "--over-quota-grace", "30m", "--action-on-expiry", "terminate",
        "--warning", "1h", "--warning", "1d", "--blast-radius-percent", "20", "--blast-radius-per-hour", "7",
    )

    assert {key: updated[key] for key in (
        "default_lease_seconds", "max_lease_seconds", "owner_tag", "allowed_email_patterns",
        "max_instances_per_user", "over_quota_grace_seconds", "action_on_expiry", "warning_seconds",
        "blast_radius_percent", "blast_radius_per_hour",
    )} == {
        "default_lease_seconds": 2 * 86400, "max_lease_seconds": 7 * 86400, "owner_tag": "Owner-Email",
        "allowed_email_patterns": ["*@bigdb.com", "ops@example.com"], "max_instances_per_user": 4,
        "over_quota_grace_seconds": 1800, "action_on_expiry": "terminate", "warning_seconds": [86400, 3600],
        "blast_radius_percent": 20, "blast_radius_per_hour": 7,
    }
    assert cli.json("get", "policy") == updated


def test_the_default_lease_in_units_as_create_account_takes_it(cli: Cli, onboarded: dict[str, int]) -> None:
    updated = cli.json("update", "policy", "--lease-expires-in", "5", "--lease-expires-in-units", "hours")

    assert updated["default_lease_seconds"] == 5 * 3600


def test_lists_and_the_quota_can_be_cleared(cli: Cli, onboarded: dict[str, int]) -> None:
    cli.json("update", "policy", "--allowed-email-pattern", "*@bigdb.com", "--max-instances-per-user", "2")

    cleared = cli.json("update", "policy", "--no-allowed-email-patterns", "--no-max-instances-per-user", "--no-warnings")

    assert (cleared["allowed_email_patterns"], cleared["max_instances_per_user"], cleared["warning_seconds"]) == (
        [], None, []
    )


def test_what_the_api_refuses_is_said(cli: Cli, onboarded: dict[str, int]) -> None:
    longer = cli("update", "policy", "--default-lease", "30d", "--max-lease", "1d")
    close = cli("update", "policy", "--warning", "60", "--warning", "90")

    assert longer.exit_code == 1 and "HTTP 422" in longer.stderr and "maximum lease" in longer.stderr
    assert close.exit_code == 1 and "warning_seconds" in close.stderr


def test_what_the_command_line_gets_wrong_is_refused_before_any_request(offline_cli: Cli) -> None:
    for args, said in (
        ((), "nothing to change"),
        (("--default-lease", "soon"), "--default-lease must be a duration"),
        (("--action-on-expiry", "explode"), "--action-on-expiry must be one of stop, terminate"),
        (("--warning", "1h", "--no-warnings"), "not both"),
        (("--max-instances-per-user", "3", "--no-max-instances-per-user"), "not both"),
        (("--lease-expires-in-units", "fortnights"), "--lease-expires-in-units must be one of"),
    ):
        result = offline_cli("update", "policy", *args)
        assert result.exit_code == 2, (args, result.stderr)
        assert said in result.stderr, (args, result.stderr)


def developer_token(database_url: str, account_id: int) -> str:
    """A developer of the account with an API token of their own."""
    from zc_common.messages import Role, utcnow

    from zc_api.auth.service import issue_token
    from zc_api.database import create_engine, session_maker, transaction
    from zc_api.models import User

    async def create() -> str:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with transaction(session_maker(engine)) as session:
                user = User(account_id=account_id, email="dev@example.com", role=Role.dev, email_confirmed_at=utcnow())
                session.add(user)
                await session.flush()
                return await issue_token(session, user, "test")
        finally:
            await engine.dispose()

    return asyncio.run(create())


def test_a_developer_may_read_but_not_change_the_policy(api: RunningApi, onboarded: dict[str, int]) -> None:
    developer = Cli(api_url=api.url, token=developer_token(api.database_url, onboarded["account"]))

    policy = developer.json("get", "policy")
    refused = developer("update", "policy", "--max-lease", "30d")

    assert policy["account_id"] == onboarded["account"]
    assert refused.exit_code == 1 and "HTTP 403" in refused.stderr
