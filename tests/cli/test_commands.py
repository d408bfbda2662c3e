"""The CLI against a real api: the seed's commands make the objects, get/list show them,
and every error answer reaches the person with the api's own message."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

from zc_common.cloudevents import state_change_event

from tests.cli.conftest import CUSTOMER, ROLE_ARN, SEED_ACCOUNT, SEED_CLOUDACCOUNT, Cli, RunningApi
from tests.support.aws_doubles import deploy_stack

INSTANCE = "i-0123456789abcdef0"


def test_seed_commands_create_the_account_and_the_cloud_account(cli: Cli) -> None:
    created = cli("create", "account", "--payload", SEED_ACCOUNT)
    assert created.exit_code == 0, created.stderr
    assert "BigDB" in created.stdout
    [account] = cli.json("list", "accounts")["data"]
    assert account["name"] == "BigDB"

    cloud = cli("create", "cloudaccount", "--accountID", str(account["id"]), "--payload", SEED_CLOUDACCOUNT)

    assert cloud.exit_code == 0, cloud.stderr
    assert CUSTOMER in cloud.stdout
    assert "sts:ExternalId = zc-" in cloud.stdout  # what to put in the trust policy
    [record] = cli.json("list", "cloudaccounts", "--accountID", str(account["id"]))["data"]
    assert record["upstream_account_id"] == CUSTOMER
    assert record["assume_role_arn"] == ROLE_ARN
    assert record["name"] == "dev"
    assert record["mode"] == "observe"
    assert record["external_id"].startswith("zc-")


def test_get_and_list_show_them_as_tables(cli: Cli, onboarded: dict[str, int]) -> None:
    account_id, cloud_id = str(onboarded["account"]), str(onboarded["cloud_account"])

    listed = cli("list", "accounts")
    header, row = listed.stdout.splitlines()
    assert header.split()[:2] == ["ID", "NAME"]
    assert row.split()[:2] == [account_id, "BigDB"]

    clouds = cli("list", "cloudaccounts", "--accountID", account_id).stdout.splitlines()
    assert "AWS ACCOUNT" in clouds[0]
    assert CUSTOMER in clouds[1] and "observe" in clouds[1]
    assert cli("list", "cloudaccounts").stdout.splitlines() == clouds  # default: the caller's account

    shown = cli("get", "account", account_id).stdout
    assert "name:" in shown and "BigDB" in shown
    assert "policy.default_lease_seconds:" in shown and str(3 * 86400) in shown
    cloud = cli("get", "cloudaccount", cloud_id).stdout.splitlines()
    assert f"upstream_account_id: {CUSTOMER}" in [" ".join(line.split()) for line in cloud]


def test_get_and_list_print_the_apis_json(cli: Cli, onboarded: dict[str, int]) -> None:
    account = cli.json("get", "account", str(onboarded["account"]))
    assert account["name"] == "BigDB"
    assert account["policy"]["default_lease_seconds"] == 3 * 86400

    page = cli.json("list", "accounts", "--limit", "1")
    assert (page["count"], page["limit"], page["offset"]) == (1, 1, 0)

    cloud = cli.json("get", "cloudaccount", str(onboarded["cloud_account"]))
    assert cloud["account_id"] == onboarded["account"]
    assert cloud["regions"] == ["us-east-1"]


def test_create_and_list_users(cli: Cli, onboarded: dict[str, int]) -> None:
    account_id = str(onboarded["account"])

    by_flags = cli.json(
        "create", "user", "--accountID", account_id, "--email", "Alice@BigDB.com", "--role", "dev"
    )
    by_payload = cli.json(
        "create", "user", "--account-id", account_id, "--payload", '{"email": "bob@bigdb.com"}'
    )

    assert (by_flags["email"], by_flags["role"]) == ("alice@bigdb.com", "dev")
    assert by_payload["role"] == "dev"
    emails = {user["email"] for user in cli.json("list", "users", "--accountID", account_id)["data"]}
    assert {"alice@bigdb.com", "bob@bigdb.com"} <= emails
    assert "alice@bigdb.com" in cli("get", "user", str(by_flags["id"])).stdout

    again = cli("create", "user", "--accountID", account_id, "--email", "alice@bigdb.com")
    assert again.exit_code == 1
    assert "HTTP 409" in again.stderr


def test_caller_supplied_external_id_is_refused_with_the_apis_reason(
    cli: Cli, onboarded: dict[str, int]
) -> None:
    payload = json.dumps({
        "name": "prod", "cloudprovider": "AWS", "upstream_account_id": "222222222222",
        "assume_role_arn": "arn:aws:iam::222222222222:role/ZeroCloud", "assume_role_external_id": "mine",
    })

    result = cli("create", "cloudaccount", "--accountID", str(onboarded["account"]), "--payload", payload)

    assert result.exit_code == 1
    assert "HTTP 422" in result.stderr
    assert "assume_role_external_id" in result.stderr
    assert result.stdout == ""
    assert cli.json("list", "cloudaccounts")["count"] == 1


def test_without_a_token_the_apis_401_message_is_shown(cli: Cli) -> None:
    result = cli("list", "accounts", token=None)

    assert result.exit_code == 1
    assert "HTTP 401" in result.stderr
    assert "API token is required" in result.stderr  # the api's own words
    assert "zerocloud-cli login" in result.stderr  # and what to do


def test_another_tenants_object_is_not_found(cli: Cli, onboarded: dict[str, int]) -> None:
    result = cli("get", "cloudaccount", str(onboarded["cloud_account"] + 1000))

    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr


def test_create_cloudevent_from_flags_posts_a_state_change_event(cli: Cli, onboarded: dict[str, int]) -> None:
    result = cli(
        "create", "cloudevent", "--instance-id", INSTANCE, "--state", "running", "--account", CUSTOMER,
        "--region", "us-east-1",
    )

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("accepted:")
    assert INSTANCE in result.stdout and CUSTOMER in result.stdout

    answer = cli.json("create", "cloudevent", "--instance-id", INSTANCE, "--account", CUSTOMER)
    assert answer["accepted"] is True
    assert answer["account_id"] == CUSTOMER
    assert answer["region"] == "us-east-1"
    assert answer["instance_ids"] == [INSTANCE]


def test_create_cloudevent_from_a_file_and_from_stdin(
    cli: Cli, onboarded: dict[str, int], tmp_path: Path
) -> None:
    event = state_change_event(account_id=CUSTOMER, region="us-east-1", instance_id=INSTANCE, state="stopped")
    sns = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(event)}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))

    from_file = cli.json("create", "cloudevent", "--file", str(path))
    from_dash = cli.json("create", "cloudevent", "--file", "-", input=json.dumps(sns))
    piped = cli.json("create", "cloudevent", input=json.dumps(event))

    assert [a["instance_ids"] for a in (from_file, from_dash, piped)] == [[INSTANCE]] * 3


def test_cloudevent_of_an_account_not_onboarded_is_refused(cli: Cli, onboarded: dict[str, int]) -> None:
    result = cli("create", "cloudevent", "--instance-id", INSTANCE, "--account", "999999999999")

    assert result.exit_code == 1
    assert "HTTP 422" in result.stderr
    assert "not onboarded" in result.stderr


def test_login_checks_and_stores_the_token(api: RunningApi, cli_home: Path) -> None:
    cli = Cli()  # no ZC_API_URL, no ZC_API_TOKEN: only what login stores

    refused = cli("login", "--token", "zc_" + "n" * 40, "--api-url", api.url)
    assert refused.exit_code == 1
    assert not (cli_home / "token").exists()

    result = cli("login", "--api-url", api.url, input=api.admin_token + "\n")  # asked for, not echoed

    assert result.exit_code == 0, result.stderr
    assert "admin" in result.stdout
    assert api.admin_token not in result.stdout
    token_file = cli_home / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == api.admin_token
    assert cli.json("list", "accounts")["count"] == 0  # the stored token and api are used
    assert cli("whoami").exit_code == 0
    assert cli("logout").exit_code == 0
    assert cli("list", "accounts", "--api-url", api.url).exit_code == 1  # 401 again


def test_create_token_shows_it_once_and_it_works(cli: Cli, api: RunningApi) -> None:
    created = cli.json("create", "token", "--name", "laptop")

    assert created["token"]
    me = Cli(api_url=api.url, token=created["token"]).json("whoami")
    assert me["role"] == "admin"
    listed = cli("list", "tokens")
    assert "laptop" in listed.stdout
    assert created["token"] not in listed.stdout


def test_verify_reports_failed_checks_and_exits_1(cli: Cli, onboarded: dict[str, int]) -> None:
    # This api's AWS does not answer: assuming the role must fail, and say so.
    result = cli("verify", "cloudaccount", str(onboarded["cloud_account"]))

    assert result.exit_code == 1
    assert "assume_role" in result.stdout
    assert "some checks failed" in result.stdout


def test_verify_passes_against_moto(api_on_moto: RunningApi, moto: str) -> None:
    cli = Cli(api_url=api_on_moto.url, token=api_on_moto.admin_token)
    account = cli.json("create", "account", "--payload", SEED_ACCOUNT)
    cloud = cli.json("create", "cloudaccount", "--accountID", str(account["id"]), "--payload", SEED_CLOUDACCOUNT)
    asyncio.run(deploy_stack(moto, cloud, "us-east-1"))  # the region's topic, which verify binds

    result = cli("verify", "cloudaccount", str(cloud["id"]))

    assert result.exit_code == 0, result.stdout + result.stderr
    assert "all checks passed" in result.stdout
    report = cli.json("verify", "cloudaccount", str(cloud["id"]))
    assert report["ok"] is True
    assert "assume_role" in [check["name"] for check in report["checks"]]


def test_list_leases_and_resources_and_audit(cli: Cli, onboarded: dict[str, int]) -> None:
    leases = cli.json("list", "leases", "--status", "active", "--expires-before", "2100-01-01T00:00:00Z")
    assert leases["count"] == 0
    assert cli.json("list", "resources", "--cloud-account", str(onboarded["cloud_account"]))["count"] == 0
    assert cli("list", "leases").stdout.strip() == "(none)"
    audit = cli.json("list", "audit")
    assert audit["count"] >= 1  # at least the cloud account's onboarding is in the log
    assert cli("list", "audit").exit_code == 0


def test_without_an_account_the_default_account_is_explained(cli: Cli) -> None:
    result = cli("list", "cloudaccounts")

    assert result.exit_code == 2
    assert "you do not belong to an account yet" in result.stderr


def test_list_audit_pages_on_by_the_cursor_its_footer_names(cli: Cli, onboarded: dict[str, int]) -> None:
    first = cli.json("list", "audit", "--limit", "1")
    footer = cli("list", "audit", "--limit", "1").stdout.splitlines()[-1]

    assert first["next_cursor"] and footer.endswith(f"next page: --cursor {first['next_cursor']}")
    second = cli.json("list", "audit", "--limit", "1", "--cursor", first["next_cursor"])
    assert second["data"][0]["id"] < first["data"][0]["id"] and second["count"] == first["count"]
