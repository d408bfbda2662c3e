"""Reading leases and resources: an admin sees the account's, a developer only their
own, and another tenant's are simply not there."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease, make_user_token


async def test_developer_sees_only_own_leases(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    colleague = await make_user_token(api, tenant.account_id)
    _, mine = await make_lease(api, cloud, tenant.dev)
    _, theirs = await make_lease(api, cloud, colleague)

    listed = (await api.client.get("/api/v1/leases", headers=tenant.dev.headers)).json()
    other = await api.client.get(f"/api/v1/leases/{theirs}", headers=tenant.dev.headers)

    assert [lease["id"] for lease in listed["data"]] == [mine] and listed["count"] == 1
    assert other.status_code == 404


async def test_admin_sees_every_lease_of_the_account(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    colleague = await make_user_token(api, tenant.account_id)
    _, first = await make_lease(api, cloud, tenant.dev)
    _, second = await make_lease(api, cloud, colleague)

    listed = (await api.client.get("/api/v1/leases", headers=tenant.admin.headers)).json()

    assert {lease["id"] for lease in listed["data"]} == {first, second}


async def test_lease_shows_its_instance(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    resource_id, lease_id = await make_lease(api, cloud, tenant.dev, instance_id="i-0123456789abcdef0")

    lease = (await api.client.get(f"/api/v1/leases/{lease_id}", headers=tenant.dev.headers)).json()

    assert lease["resource_id"] == resource_id
    assert lease["instance_id"] == "i-0123456789abcdef0"
    assert lease["instance_name"] == "box i-0123456789abcdef0"
    assert lease["instance_type"] == "t3.micro" and lease["region"] == "us-east-1"
    assert lease["owner_email"] == tenant.dev.email and lease["status"] == "active" and lease["version"] == 1


async def test_another_tenants_leases_and_resources_are_not_found(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await make_cloud_account(api, other_tenant)
    resource_id, lease_id = await make_lease(api, theirs, other_tenant.dev)

    for path in (f"/api/v1/leases/{lease_id}", f"/api/v1/resources/{resource_id}"):
        assert (await api.client.get(path, headers=tenant.admin.headers)).status_code == 404
    leases = (await api.client.get("/api/v1/leases", headers=tenant.admin.headers)).json()
    resources = (await api.client.get("/api/v1/resources", headers=tenant.admin.headers)).json()
    assert leases["count"] == 0 and resources["count"] == 0
    by_cloud = await api.client.get(
        "/api/v1/leases", params={"cloud_account_id": theirs["id"]}, headers=tenant.admin.headers
    )
    assert by_cloud.json()["count"] == 0


async def test_filters_narrow_the_list(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    colleague = await make_user_token(api, tenant.account_id)
    _, soon = await make_lease(api, cloud, tenant.dev, expires_in=timedelta(hours=1))
    _, later = await make_lease(api, cloud, colleague, expires_in=timedelta(days=5))
    _, released = await make_lease(api, cloud, tenant.dev, status="released")
    before = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()

    async def ids(**params: str) -> list[int]:
        page = (await api.client.get("/api/v1/leases", params=params, headers=tenant.admin.headers)).json()
        return [lease["id"] for lease in page["data"]]

    assert await ids(owner=colleague.email.upper()) == [later]
    assert await ids(status="released") == [released]
    assert await ids(expires_before=before, status="active") == [soon]
    assert await ids() == [soon, released, later]  # soonest expiry first


async def test_unknown_status_filter_is_422_naming_it(api: Api, tenant: Tenant) -> None:
    response = await api.client.get("/api/v1/leases", params={"status": "zombie"}, headers=tenant.admin.headers)

    assert response.status_code == 422
    assert response.json()["field"].endswith("status")


async def test_developer_sees_only_resources_they_hold_a_live_lease_on(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    colleague = await make_user_token(api, tenant.account_id)
    mine, _ = await make_lease(api, cloud, tenant.dev)
    theirs, _ = await make_lease(api, cloud, colleague)
    was_mine, _ = await make_lease(api, cloud, tenant.dev, status="released")

    listed = (await api.client.get("/api/v1/resources", headers=tenant.dev.headers)).json()

    assert [r["id"] for r in listed["data"]] == [mine]
    assert (await api.client.get(f"/api/v1/resources/{theirs}", headers=tenant.dev.headers)).status_code == 404
    assert (await api.client.get(f"/api/v1/resources/{was_mine}", headers=tenant.dev.headers)).status_code == 404
    admin = (await api.client.get("/api/v1/resources", headers=tenant.admin.headers)).json()
    assert {r["id"] for r in admin["data"]} == {mine, theirs, was_mine}


async def test_resource_filters(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant, regions=["us-east-1", "eu-west-1"])
    east, _ = await make_lease(api, cloud, tenant.dev, instance_id="i-00000000000000e1")
    west, _ = await make_lease(api, cloud, tenant.dev, region="eu-west-1")

    async def ids(**params: str) -> list[int]:
        page = (await api.client.get("/api/v1/resources", params=params, headers=tenant.admin.headers)).json()
        return [r["id"] for r in page["data"]]

    assert await ids(region="eu-west-1") == [west]
    assert await ids(instance_id="i-00000000000000e1") == [east]
    assert await ids(state="running", cloud_account_id=str(cloud["id"])) == [east, west]
    assert await ids(state="stopped") == []
