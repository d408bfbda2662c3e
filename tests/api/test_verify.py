"""Verifying a cloud account against the moto server: what works is reported ok, and
what cannot work is a failing check with the reason, never a 500."""

from __future__ import annotations

import socket
from collections.abc import Callable

from zc_common.settings import ApiSettings

from tests.api.factories import Api, Tenant, make_cloud_account, running_api
from tests.support.aws_doubles import deploy_stack


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_role_in_moto_verifies_ok(api: Api, moto: str, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant, regions=["us-east-1", "eu-west-1"])
    for region in cloud["regions"]:
        await deploy_stack(moto, cloud, region)

    response = await api.client.post(f"/api/v1/cloudaccounts/{cloud['id']}/verify", headers=tenant.admin.headers)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is True
    assert [c["name"] for c in report["checks"]] == [
        "assume_role", "caller_identity", "describe_instances:us-east-1", "describe_instances:eu-west-1",
        "events_topic:us-east-1", "events_topic:eu-west-1", "claim",
    ]
    assert all(c["ok"] for c in report["checks"])
    assert cloud["upstream_account_id"] in report["checks"][1]["detail"]


async def test_region_aws_does_not_serve_is_a_failing_check(api: Api, moto: str, tenant: Tenant) -> None:
    # A well-formed region name that does not exist: moto (like AWS) cannot answer in it.
    cloud = await make_cloud_account(api, tenant, regions=["us-east-1", "xx-nowhere-1"])

    report = (
        await api.client.post(f"/api/v1/cloudaccounts/{cloud['id']}/verify", headers=tenant.admin.headers)
    ).json()

    assert report["ok"] is False
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["assume_role"]["ok"] and checks["describe_instances:us-east-1"]["ok"]
    assert checks["describe_instances:xx-nowhere-1"]["ok"] is False
    assert checks["describe_instances:xx-nowhere-1"]["detail"]


async def test_unreachable_aws_endpoint_fails_assume_role_and_skips_the_rest(
    api: Api, api_settings: Callable[..., ApiSettings], tenant: Tenant
) -> None:
    cloud = await make_cloud_account(api, tenant)
    unreachable = api_settings(aws_endpoint_url=f"http://127.0.0.1:{_closed_port()}", aws_max_attempts=1)

    async with running_api(unreachable) as offline:
        response = await offline.client.post(
            f"/api/v1/cloudaccounts/{cloud['id']}/verify", headers=tenant.admin.headers
        )

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is False
    assume, *rest = report["checks"]
    assert assume["name"] == "assume_role" and assume["ok"] is False
    assert "connect" in assume["detail"].lower()
    assert rest and all(not c["ok"] and c["detail"].startswith("skipped") for c in rest)


async def test_developer_cannot_verify(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)

    response = await api.client.post(f"/api/v1/cloudaccounts/{cloud['id']}/verify", headers=tenant.dev.headers)

    assert response.status_code == 403
