"""`zerocloud-cli update cloudaccount`, `delete cloudaccount`, `delete user` and the invitation commands
(`create invitation`, `list invitations`, `revoke invitation`) against a real api."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.cli.conftest import Cli, RunningApi

OTHER_CLOUDACCOUNT = json.dumps({
    "name": "theirs", "cloudprovider": "AWS", "upstream_account_id": "222222222222",
    "assume_role_arn": "arn:aws:iam::222222222222:role/ZeroCloud",
})


def admin_token(database_url: str, email: str) -> str:
    """A second admin in no account yet, as `zerocloud-api create-admin` makes one."""
    from zc_api.auth.bootstrap import create_admin
    from zc_api.database import create_engine, session_maker, transaction

    async def create() -> str:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with transaction(session_maker(engine)) as session:
                _, token = await create_admin(session, email)
            return token
        finally:
            await engine.dispose()

    return asyncio.run(create())


@pytest.fixture
def other_tenant(api: RunningApi) -> tuple[Cli, dict[str, int]]:
    """Another customer: their admin's CLI, their account and cloud account."""
    other = Cli(api_url=api.url, token=admin_token(api.database_url, "admin@other.example.com"))
    account = other.json("create", "account", "--payload", '{"name": "Other"}')
    cloud = other.json(
        "create", "cloudaccount", "--accountID", str(account["id"]), "--payload", OTHER_CLOUDACCOUNT
    )
    return other, {"account": account["id"], "cloud_account": cloud["id"]}


# --- update account -----------------------------------------------------------------------


def test_an_admin_sets_and_removes_the_accounts_webhook(cli: Cli, onboarded: dict[str, int]) -> None:
    hook = "https://hooks.slack.test/services/T0/B0/x"

    set_it = cli.json("update", "account", "--webhook-url", hook)
    bad = cli("update", "account", "--webhook-url", "http://169.254.169.254/latest")
    removed = cli.json("update", "account", "--no-webhook")
    nothing = cli("update", "account")

    assert set_it["id"] == onboarded["account"] and set_it["webhook_url"] == hook
    assert bad.exit_code != 0 and "webhook_url" in bad.stderr
    assert removed["webhook_url"] is None
    assert nothing.exit_code == 2 and "--webhook-url" in nothing.stderr


# --- update cloudaccount -------------------------------------------------------------------


def test_switching_to_enforce_shows_in_the_api_and_says_what_it_means(
    cli: Cli, onboarded: dict[str, int]
) -> None:
    cloud_id = str(onboarded["cloud_account"])

    result = cli("update", "cloudaccount", cloud_id, "--mode", "enforce")

    assert result.exit_code == 0, result.stderr
    assert "enforce" in [line.split()[-1] for line in result.stdout.splitlines() if line.startswith("mode:")]
    [note] = [line for line in result.stdout.splitlines() if line.startswith("Enforce mode:")]
    assert "stop or terminate" in note and "protection" in note and "blast-radius cap" in note
    assert cli.json("get", "cloudaccount", cloud_id)["mode"] == "enforce"
    audit = cli.json("list", "audit", "--action", "cloud_account.updated")["data"]
    assert [event["subject_id"] for event in audit] == [onboarded["cloud_account"]]


def test_switching_back_with_json_prints_only_the_apis_json(cli: Cli, onboarded: dict[str, int]) -> None:
    cloud_id = str(onboarded["cloud_account"])

    enforced = cli("update", "cloudaccount", cloud_id, "--mode", "enforce", "--json")
    observed = cli.json("update", "cloudaccount", cloud_id, "--mode", "observe")

    assert enforced.exit_code == 0, enforced.stderr
    assert json.loads(enforced.stdout)["mode"] == "enforce"  # stdout is the JSON alone
    assert "blast-radius cap" in enforced.stderr  # and the person still reads the note
    assert (observed["id"], observed["mode"]) == (onboarded["cloud_account"], "observe")
    assert cli.json("get", "cloudaccount", cloud_id)["mode"] == "observe"


def test_name_and_regions_change_and_the_mode_stays(cli: Cli, onboarded: dict[str, int]) -> None:
    cloud_id = str(onboarded["cloud_account"])

    result = cli("update", "cloudaccount", cloud_id, "--name", "prod", "--regions", "us-east-1, eu-west-1")

    assert result.exit_code == 0, result.stderr
    assert "Enforce mode" not in result.stdout
    shown = cli.json("get", "cloudaccount", cloud_id)
    assert (shown["name"], shown["regions"], shown["mode"]) == ("prod", ["us-east-1", "eu-west-1"], "observe")


def test_update_without_an_option_exits_2_saying_what_to_give(offline_cli: Cli) -> None:
    result = offline_cli("update", "cloudaccount", "1")

    assert result.exit_code == 2
    assert "give at least one of --mode, --name, --regions" in result.stderr
    assert result.stdout == ""


def test_update_with_a_bad_mode_or_no_region_exits_2(offline_cli: Cli) -> None:
    bad_mode = offline_cli("update", "cloudaccount", "1", "--mode", "reap")
    no_region = offline_cli("update", "cloudaccount", "1", "--regions", " , ")

    assert (bad_mode.exit_code, no_region.exit_code) == (2, 2)
    assert "--mode must be one of observe, enforce; got 'reap'" in bad_mode.stderr
    assert "--regions needs at least one region" in no_region.stderr


def test_a_bad_region_is_the_apis_422_naming_the_field(cli: Cli, onboarded: dict[str, int]) -> None:
    cloud_id = str(onboarded["cloud_account"])

    result = cli("update", "cloudaccount", cloud_id, "--regions", "us-east-1,mars-north-9x")

    assert result.exit_code == 1
    assert "HTTP 422" in result.stderr
    assert "regions" in result.stderr and "mars-north-9x" in result.stderr
    assert cli.json("get", "cloudaccount", cloud_id)["regions"] == ["us-east-1"]


def test_another_tenants_cloud_account_is_not_found_and_unchanged(
    cli: Cli, onboarded: dict[str, int], other_tenant: tuple[Cli, dict[str, int]]
) -> None:
    other, theirs = other_tenant
    their_cloud = str(theirs["cloud_account"])

    result = cli("update", "cloudaccount", their_cloud, "--mode", "enforce")

    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr and f"cloud account {their_cloud} not found" in result.stderr
    assert result.stdout == ""
    assert other.json("get", "cloudaccount", their_cloud)["mode"] == "observe"


# --- delete cloudaccount -------------------------------------------------------------------


def test_delete_cloudaccount_removes_it_and_keeps_its_audit(cli: Cli, onboarded: dict[str, int]) -> None:
    cloud_id = str(onboarded["cloud_account"])

    result = cli("delete", "cloudaccount", cloud_id, "--yes")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        f"cloud account {cloud_id} removed: 0 live lease(s) released, its role is no longer used; "
        "its audit trail is kept"
    )
    gone = cli("get", "cloudaccount", cloud_id)
    assert gone.exit_code == 1 and "HTTP 404" in gone.stderr
    audit = cli.json("list", "audit", "--action", "cloud_account.removed")["data"]
    assert [event["subject_id"] for event in audit] == [onboarded["cloud_account"]]
    again = cli("delete", "cloudaccount", cloud_id, "--yes")
    assert again.exit_code == 1 and "HTTP 404" in again.stderr


def test_delete_cloudaccount_asks_first_and_does_nothing_when_told_no(
    cli: Cli, onboarded: dict[str, int]
) -> None:
    cloud_id = str(onboarded["cloud_account"])

    declined = cli("delete", "cloudaccount", cloud_id, input="n\n")
    confirmed = cli("delete", "cloudaccount", cloud_id, "--json", input="y\n")

    assert declined.exit_code == 1
    assert f"Remove cloud account {cloud_id}" in declined.stderr
    assert confirmed.exit_code == 0, confirmed.stderr
    answer = confirmed.stdout[confirmed.stdout.index("{"):]  # CliRunner echoes the typed "y" to stdout
    assert json.loads(answer) == {"id": onboarded["cloud_account"], "leases_released": 0}


def test_another_tenants_cloud_account_cannot_be_deleted(
    cli: Cli, onboarded: dict[str, int], other_tenant: tuple[Cli, dict[str, int]]
) -> None:
    other, theirs = other_tenant
    their_cloud = str(theirs["cloud_account"])

    result = cli("delete", "cloudaccount", their_cloud, "--yes")

    assert result.exit_code == 1 and "HTTP 404" in result.stderr
    assert other.json("get", "cloudaccount", their_cloud)["id"] == theirs["cloud_account"]


# --- delete user ---------------------------------------------------------------------------


def test_delete_user_removes_them_and_says_whose_their_leases_are_now(
    cli: Cli, onboarded: dict[str, int], other_tenant: tuple[Cli, dict[str, int]]
) -> None:
    user = cli.json("create", "user", "--email", "gone@bigdb.com", "--role", "dev")
    other, _ = other_tenant
    theirs = other("delete", "user", str(user["id"]), "--yes")

    declined = cli("delete", "user", str(user["id"]), input="n\n")
    result = cli("delete", "user", str(user["id"]), "--yes")

    assert theirs.exit_code == 1 and "HTTP 404" in theirs.stderr  # another tenant cannot touch them
    assert declined.exit_code == 1 and f"Remove user {user['id']}" in declined.stderr
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        f"user {user['id']} (gone@bigdb.com) removed: 0 live lease(s) are now yours; the audit trail is kept"
    )
    assert "gone@bigdb.com" not in [u["email"] for u in cli.json("list", "users")["data"]]
    [event] = cli.json("list", "audit", "--action", "user.removed")["data"]
    assert event["subject_id"] == user["id"]


# --- invitations ---------------------------------------------------------------------------


def test_invitation_create_list_revoke_round_trip(cli: Cli, onboarded: dict[str, int]) -> None:
    account_id = str(onboarded["account"])

    created = cli(
        "create", "invitation", "--accountID", account_id, "--email", "Carol@BigDB.com", "--role", "admin"
    )
    assert created.exit_code == 0, created.stderr
    assert "carol@bigdb.com" in created.stdout and "pending" in created.stdout
    carol_id = next(
        line.split()[-1] for line in created.stdout.splitlines() if line.split()[:1] == ["id:"]
    )
    assert f"zerocloud-cli revoke invitation {carol_id}" in created.stdout
    dave = cli.json("create", "invitation", "--email", "dave@bigdb.com")  # default: the caller's account
    assert (dave["account_id"], dave["role"], dave["status"]) == (onboarded["account"], "dev", "pending")

    pending = cli.json("list", "invitations", "--accountID", account_id, "--status", "pending")
    assert {(row["email"], row["role"]) for row in pending["data"]} == {
        ("carol@bigdb.com", "admin"), ("dave@bigdb.com", "dev"),
    }
    table = cli("list", "invitations").stdout.splitlines()
    assert table[0].split()[:4] == ["ID", "EMAIL", "ROLE", "STATUS"]
    assert len(table) == 3

    revoked = cli("revoke", "invitation", carol_id)

    assert revoked.exit_code == 0, revoked.stderr
    assert revoked.stdout.strip() == f"invitation {carol_id} revoked: its link no longer works"
    still = cli.json("list", "invitations", "--status", "pending")["data"]
    assert [row["email"] for row in still] == ["dave@bigdb.com"]
    gone = cli.json("list", "invitations", "--status", "revoked")["data"]
    assert [(row["id"], row["email"]) for row in gone] == [(int(carol_id), "carol@bigdb.com")]
    again = cli("revoke", "invitation", carol_id)
    assert again.exit_code == 1
    assert "HTTP 404" in again.stderr and "already revoked" in again.stderr


def test_inviting_someone_already_invited_is_the_apis_409(cli: Cli, onboarded: dict[str, int]) -> None:
    cli.json("create", "invitation", "--email", "erin@bigdb.com")

    again = cli("create", "invitation", "--email", "erin@bigdb.com")

    assert again.exit_code == 1
    assert "HTTP 409" in again.stderr


def test_another_tenants_invitations_are_out_of_reach(
    cli: Cli, onboarded: dict[str, int], other_tenant: tuple[Cli, dict[str, int]]
) -> None:
    other, theirs = other_tenant
    invitation = other.json("create", "invitation", "--email", "frank@other.example.com")

    revoke = cli("revoke", "invitation", str(invitation["id"]))
    listed = cli("list", "invitations", "--accountID", str(theirs["account"]))

    assert revoke.exit_code == 1 and "HTTP 404" in revoke.stderr
    assert listed.exit_code == 1 and listed.stdout == ""
    assert other.json("list", "invitations")["data"][0]["status"] == "pending"


def test_invitation_options_are_checked_before_asking(offline_cli: Cli) -> None:
    no_email = offline_cli("create", "invitation", "--accountID", "1")
    bad_role = offline_cli("create", "invitation", "--email", "a@b.com", "--role", "owner")
    bad_status = offline_cli("list", "invitations", "--status", "open")

    assert (no_email.exit_code, bad_role.exit_code, bad_status.exit_code) == (2, 2, 2)
    assert "--email" in no_email.stderr
    assert "--role must be one of admin, dev" in bad_role.stderr
    assert "--status must be one of pending, accepted, revoked, expired" in bad_status.stderr


def test_help_lists_the_new_commands(offline_cli: Cli) -> None:
    root = offline_cli("--help").stdout
    assert "update" in root and "revoke" in root and "delete" in root
    assert "cloudaccount" in offline_cli("delete", "--help").stdout
    assert "invitation" in offline_cli("create", "--help").stdout
    assert "invitations" in offline_cli("list", "--help").stdout
