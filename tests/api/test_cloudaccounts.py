"""Cloud accounts: a generated external ID, one claim per AWS account in each tenant
(across tenants: test_cloud_account_claims.py), input checked field by field, and
tenants kept apart."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from zc_common.settings import ApiSettings

from tests.api.factories import (
    Api,
    Tenant,
    make_cloud_account,
    random_upstream,
    role_arn,
    running_api,
)

SEED_CLOUD_ACCOUNT = {
    "assume_role_arn": "arn:aws:iam::123456789012:role/ZeroCloud",
    "cloudprovider": "AWS",
    "name": "BigDB prod",
    "upstream_account_id": "123456789012",
}


def url(tenant: Tenant) -> str:
    return f"/api/v1/accounts/{tenant.account_id}/cloudaccounts"


async def test_seed_payload_onboards_with_a_generated_external_id(api: Api, tenant: Tenant) -> None:
    response = await api.client.post(url(tenant), json=SEED_CLOUD_ACCOUNT, headers=tenant.admin.headers)

    assert response.status_code == 201, response.text
    cloud = response.json()
    assert cloud["external_id"].startswith("zc-") and len(cloud["external_id"]) >= 30
    assert cloud["upstream_account_id"] == "123456789012"
    assert cloud["assume_role_arn"] == SEED_CLOUD_ACCOUNT["assume_role_arn"]
    assert cloud["mode"] == "observe"
    assert cloud["regions"] == ["us-east-1"]


async def test_every_cloud_account_gets_its_own_external_id(api: Api, tenant: Tenant) -> None:
    first = await make_cloud_account(api, tenant)
    second = await make_cloud_account(api, tenant)

    assert first["external_id"] != second["external_id"]


async def test_caller_chosen_external_id_is_refused(api: Api, tenant: Tenant) -> None:
    body = {**SEED_CLOUD_ACCOUNT, "assume_role_external_id": "my-own-id"}

    response = await api.client.post(url(tenant), json=body, headers=tenant.admin.headers)

    assert response.status_code == 422
    error = response.json()
    assert error["field"] == "assume_role_external_id"
    assert "confused-deputy" in error["detail"]
    assert "generates the external ID" in error["detail"]


async def test_caller_chosen_external_id_is_used_when_the_operator_allows_it(
    api: Api, api_settings: Callable[..., ApiSettings], tenant: Tenant
) -> None:
    body = {**SEED_CLOUD_ACCOUNT, "assume_role_external_id": "legacy-external-id"}
    async with running_api(api_settings(allow_supplied_external_id=True)) as permissive:
        response = await permissive.client.post(url(tenant), json=body, headers=tenant.admin.headers)

    assert response.status_code == 201, response.text
    assert response.json()["external_id"] == "legacy-external-id"


async def test_same_role_arn_twice_is_a_conflict(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    body = {**SEED_CLOUD_ACCOUNT, "upstream_account_id": cloud["upstream_account_id"],
            "assume_role_arn": cloud["assume_role_arn"]}

    response = await api.client.post(url(tenant), json=body, headers=tenant.admin.headers)

    assert response.status_code == 409
    assert response.json()["field"] == "assume_role_arn"


async def test_two_tenants_claiming_one_role_at_once_both_get_a_pending_claim(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    # Whoever verifies first holds it (test_cloud_account_claims.py); a 409 here would tell
    # anyone that the AWS account is onboarded, and keep its owner out for good.
    upstream = random_upstream()
    body = {**SEED_CLOUD_ACCOUNT, "upstream_account_id": upstream, "assume_role_arn": role_arn(upstream)}

    responses = await asyncio.gather(
        *(api.client.post(url(t), json=body, headers=t.admin.headers) for t in (tenant, other_tenant))
    )

    assert [r.status_code for r in responses] == [201, 201]
    assert {r.json()["status"] for r in responses} == {"pending_verification"}


async def test_role_of_another_aws_account_is_422(api: Api, tenant: Tenant) -> None:
    body = {**SEED_CLOUD_ACCOUNT, "assume_role_arn": "arn:aws:iam::999999999999:role/ZeroCloud"}

    response = await api.client.post(url(tenant), json=body, headers=tenant.admin.headers)

    assert response.status_code == 422
    assert response.json()["field"] == "assume_role_arn"
    assert "999999999999" in response.json()["detail"]


async def test_provider_other_than_aws_is_422(api: Api, tenant: Tenant) -> None:
    body = {**SEED_CLOUD_ACCOUNT, "cloudprovider": "GCP"}

    response = await api.client.post(url(tenant), json=body, headers=tenant.admin.headers)

    assert response.status_code == 422
    assert response.json()["field"] == "cloudprovider"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("upstream_account_id", "12345"),
        ("upstream_account_id", "12345678901a"),
        ("assume_role_arn", "arn:aws:iam::123456789012:user/ZeroCloud"),
        ("assume_role_arn", "ZeroCloud"),
        ("regions", ["mars-north-1x"]),
        ("regions", []),
        ("mode", "reap-everything"),
        ("name", ""),
    ],
)
async def test_bad_input_is_422_naming_the_field(api: Api, tenant: Tenant, field: str, value: object) -> None:
    body = {**SEED_CLOUD_ACCOUNT, field: value}

    response = await api.client.post(url(tenant), json=body, headers=tenant.admin.headers)

    assert response.status_code == 422
    assert response.json()["field"].split(".")[0] == field


async def test_developer_cannot_onboard(api: Api, tenant: Tenant) -> None:
    response = await api.client.post(url(tenant), json=SEED_CLOUD_ACCOUNT, headers=tenant.dev.headers)

    assert response.status_code == 403


async def test_another_tenants_cloud_accounts_are_not_found(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = await make_cloud_account(api, other_tenant)
    one = f"/api/v1/cloudaccounts/{theirs['id']}"
    me = tenant.admin.headers

    assert (await api.client.get(one, headers=me)).status_code == 404
    assert (await api.client.patch(one, json={"mode": "enforce"}, headers=me)).status_code == 404
    assert (await api.client.post(f"{one}/verify", headers=me)).status_code == 404
    assert (await api.client.get(url(other_tenant), headers=me)).status_code == 404
    assert (await api.client.post(url(other_tenant), json=SEED_CLOUD_ACCOUNT, headers=me)).status_code == 404
    still = await api.client.get(one, headers=other_tenant.admin.headers)
    assert still.json()["mode"] == "observe"


async def test_list_and_get_show_the_accounts_cloud_accounts(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)

    listed = (await api.client.get(url(tenant), headers=tenant.dev.headers)).json()
    got = (await api.client.get(f"/api/v1/cloudaccounts/{cloud['id']}", headers=tenant.dev.headers)).json()

    assert listed["count"] == 1 and listed["data"] == [cloud]
    assert got == cloud


async def test_admin_switches_to_enforce_and_changes_regions(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)

    response = await api.client.patch(
        f"/api/v1/cloudaccounts/{cloud['id']}", json={"mode": "enforce", "regions": ["eu-west-1", "us-east-1"]},
        headers=tenant.admin.headers,
    )

    assert response.status_code == 200
    assert response.json()["mode"] == "enforce"
    assert response.json()["regions"] == ["eu-west-1", "us-east-1"]


async def test_developer_cannot_switch_to_enforce(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)

    response = await api.client.patch(
        f"/api/v1/cloudaccounts/{cloud['id']}", json={"mode": "enforce"}, headers=tenant.dev.headers
    )

    assert response.status_code == 403


async def test_external_id_cannot_be_changed_by_patch(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)

    response = await api.client.patch(
        f"/api/v1/cloudaccounts/{cloud['id']}", json={"external_id": "mine"}, headers=tenant.admin.headers
    )

    assert response.status_code == 422
    assert response.json()["field"] == "external_id"


async def test_upstream_account_id_as_a_json_number_is_accepted(api: Api, tenant: Tenant) -> None:
    upstream = "4" + random_upstream()[1:]
    body = {**SEED_CLOUD_ACCOUNT, "upstream_account_id": int(upstream), "assume_role_arn": role_arn(upstream)}

    response = await api.client.post(url(tenant), json=body, headers=tenant.admin.headers)

    assert response.status_code == 201, response.text
    assert response.json()["upstream_account_id"] == upstream
