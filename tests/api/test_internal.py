"""/internal/v1: what the ingestor and reaper read, through their own client, on the
internal listener only, each service with its own credential."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col

from zc_common.internal_api import InternalApi, InternalApiError
from zc_common.messages import CloudAccountMode

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease
from tests.support.credentials import INGESTOR_TOKEN, bearer
from zc_api.database import transaction
from zc_api.models import Resource


def internal_client(api: Api, token: str = INGESTOR_TOKEN) -> InternalApi:
    return InternalApi("http://zerocloud.internal", token, transport=httpx.ASGITransport(app=api.internal_app))


async def test_cloud_accounts_of_every_tenant_with_their_roles(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    mine = await make_cloud_account(api, tenant, regions=["eu-west-1"])
    theirs = await make_cloud_account(api, other_tenant)
    client = internal_client(api)
    try:
        everything = await client.cloud_accounts()
        only_theirs = await client.cloud_accounts(theirs["upstream_account_id"])
    finally:
        await client.close()

    assert {r.id for r in everything} == {mine["id"], theirs["id"]}
    record = next(r for r in everything if r.id == mine["id"])
    assert record.role.role_arn == mine["assume_role_arn"]
    assert record.role.external_id == mine["external_id"]
    assert record.regions == ["eu-west-1"] and record.mode == CloudAccountMode.observe
    assert [r.id for r in only_theirs] == [theirs["id"]]


async def test_known_instances_leave_out_gone_ones_and_other_regions(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant, regions=["us-east-1", "eu-west-1"])
    await make_lease(api, cloud, tenant.dev, instance_id="i-0000000000000001")
    gone_id, _ = await make_lease(api, cloud, tenant.dev, instance_id="i-0000000000000002")
    await make_lease(api, cloud, tenant.dev, instance_id="i-0000000000000003", region="eu-west-1")
    async with transaction(api.sessions) as session:
        await session.execute(
            update(Resource).where(col(Resource.id) == gone_id)
            .values(gone=True, state="terminated", observed_at=datetime.now(timezone.utc))
        )
    client = internal_client(api)
    try:
        known = await client.known_instances(cloud["id"], "us-east-1")
    finally:
        await client.close()

    assert known == ["i-0000000000000001"]


async def test_known_instances_of_an_unknown_cloud_account_is_an_error(api: Api) -> None:
    client = internal_client(api)
    try:
        with pytest.raises(InternalApiError, match="404") as refused:
            await client.known_instances(999999, "us-east-1")
        assert refused.value.status_code == 404
    finally:
        await client.close()


async def test_bad_upstream_filter_is_422(api: Api) -> None:
    response = await api.internal.get(
        "/internal/v1/cloudaccounts", params={"upstream_account_id": "12"}, headers=bearer("ingestor"),
    )

    assert response.status_code == 422
