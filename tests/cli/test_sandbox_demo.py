"""The sandbox's demo (account, short-lease policy, developer, the fake AWS account in
enforce mode with its role in moto), made through the api's REST API — and made once:
a restart over the kept data finds it and changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from zc_common.aws import AwsAccess, CloudAccountRole

from tests.cli.conftest import RunningApi
from zc_cli.sandbox_demo import DEMO, MARKER_FILE, ensure_demo

CUSTOMER = "111111111111"


async def _call(api: RunningApi, method: str, path: str, body: Any = None, **params: Any) -> Any:
    async with httpx.AsyncClient(
        base_url=f"{api.url}/api/v1", headers={"Authorization": f"Bearer {api.admin_token}"}, timeout=30
    ) as client:
        response = await client.request(method, path, params=params, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def _get(api: RunningApi, path: str, **params: Any) -> Any:
    return await _call(api, "GET", path, **params)


async def _demo(api: RunningApi, moto: str, data_dir: Path) -> Any:
    return await ensure_demo(
        api_url=api.url, admin_token=api.admin_token, aws=AwsAccess(endpoint_url=moto, session_name="test"),
        customer_account_id=CUSTOMER, data_dir=data_dir,
    )


async def test_the_demo_is_made_through_the_api_with_short_leases_and_enforce_mode(
    api_on_moto: RunningApi, moto: str, tmp_path: Path
) -> None:
    demo = await _demo(api_on_moto, moto, tmp_path)

    assert demo.made_now and demo.verify_failures == ()
    account = await _get(api_on_moto, f"/accounts/{demo.account_id}")
    assert account["name"] == "Demo"
    policy = account["policy"]
    assert policy["default_lease_seconds"] == 600 and policy["max_lease_seconds"] == 86400
    assert policy["warning_seconds"] == [300, 60]
    assert policy["allowed_email_patterns"] == ["*@example.com"]
    me = await _get(api_on_moto, "/users/me")
    assert me["account_id"] == demo.account_id and me["role"] == "admin"
    users = (await _get(api_on_moto, f"/accounts/{demo.account_id}/users"))["data"]
    assert {(u["email"], u["role"]) for u in users} == {(me["email"], "admin"), ("alice@example.com", "dev")}
    cloud = await _get(api_on_moto, f"/cloudaccounts/{demo.cloud_account_id}")
    assert cloud["upstream_account_id"] == CUSTOMER and cloud["mode"] == "enforce"
    assert cloud["regions"] == ["us-east-1"]
    actions = [e["action"] for e in (await _get(api_on_moto, "/audit-events", limit=500))["data"]]
    assert "account.created" in actions and "cloud_account.verified" in actions  # as an admin's acts

    # The customer's role exists in the moto account, requiring ZeroCloud's external ID.
    aws = AwsAccess(endpoint_url=moto, session_name="test")
    inside = CloudAccountRole(f"arn:aws:iam::{CUSTOMER}:role/SandboxSetup", "test")
    async with aws.client("iam", role=inside) as iam:
        role = (await iam.get_role(RoleName="ZeroCloud"))["Role"]
    condition = role["AssumeRolePolicyDocument"]["Statement"][0]["Condition"]
    assert condition == {"StringEquals": {"sts:ExternalId": cloud["external_id"]}}


async def test_a_restart_finds_the_demo_and_changes_nothing(
    api_on_moto: RunningApi, moto: str, tmp_path: Path
) -> None:
    first = await _demo(api_on_moto, moto, tmp_path)
    audit_before = (await _get(api_on_moto, "/audit-events", limit=500))["count"]
    # The admin makes the demo their own; a restart must keep that.
    await _call(api_on_moto, "PATCH", f"/accounts/{first.account_id}/policy", {"default_lease_seconds": 1200})

    again = await _demo(api_on_moto, moto, tmp_path)

    assert not again.made_now
    assert (again.account_id, again.cloud_account_id) == (first.account_id, first.cloud_account_id)
    assert (await _get(api_on_moto, "/accounts"))["count"] == 1
    assert (await _get(api_on_moto, f"/accounts/{first.account_id}/users"))["count"] == 2
    assert (await _get(api_on_moto, f"/accounts/{first.account_id}/cloudaccounts"))["count"] == 1
    assert (await _get(api_on_moto, f"/accounts/{first.account_id}/policy"))["default_lease_seconds"] == 1200
    assert (await _get(api_on_moto, "/audit-events", limit=500))["count"] == audit_before + 1  # only the admin's edit


async def test_a_start_that_stopped_half_way_finishes_the_demo_without_duplicates(
    api_on_moto: RunningApi, moto: str, tmp_path: Path
) -> None:
    first = await _demo(api_on_moto, moto, tmp_path)
    (tmp_path / MARKER_FILE).unlink()  # as if the last start ended before the demo was complete

    again = await _demo(api_on_moto, moto, tmp_path)

    assert again.made_now
    assert (again.account_id, again.cloud_account_id) == (first.account_id, first.cloud_account_id)
    assert (await _get(api_on_moto, "/accounts"))["count"] == 1
    assert (await _get(api_on_moto, f"/accounts/{first.account_id}/users"))["count"] == 1 + len(DEMO.developers)
    assert (await _get(api_on_moto, f"/accounts/{first.account_id}/cloudaccounts"))["count"] == 1
