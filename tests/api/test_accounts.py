"""Accounts: the seed's payload, who becomes admin, and that tenants never see each other."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from tests.api.factories import SEED_ACCOUNT, Api, Tenant, make_account, make_admin
from zc_api.models import AccountPolicy

DAY = 24 * 3600


async def test_seed_payload_creates_account_with_three_day_default_lease(api: Api) -> None:
    admin = await make_admin(api)

    response = await api.client.post("/api/v1/accounts", json=SEED_ACCOUNT, headers=admin.headers)

    assert response.status_code == 201, response.text
    account = response.json()
    assert account["name"] == "BigDB"
    assert account["policy"]["default_lease_seconds"] == 3 * DAY
    assert account["policy"]["max_lease_seconds"] == 14 * DAY
    async with api.sessions() as session:
        stored = await session.scalar(select(AccountPolicy).where(AccountPolicy.account_id == account["id"]))
    assert stored is not None and stored.default_lease_seconds == 3 * DAY


async def test_seed_payload_with_fields_zerocloud_does_not_know_is_accepted(api: Api) -> None:
    admin = await make_admin(api)
    body = {**SEED_ACCOUNT, "plan": "enterprise"}

    response = await api.client.post("/api/v1/accounts", json=body, headers=admin.headers)

    assert response.status_code == 201, response.text


async def test_lease_units_set_the_default_lease_and_the_max_never_below_it(api: Api) -> None:
    _, short = await make_account(api, lease_expires_in=90, lease_expires_in_units="minutes")
    _, long = await make_account(api, lease_expires_in=30, lease_expires_in_units="days")

    assert short["policy"]["default_lease_seconds"] == 90 * 60
    assert long["policy"]["default_lease_seconds"] == 30 * DAY
    assert long["policy"]["max_lease_seconds"] == 30 * DAY


async def test_account_without_lease_fields_gets_three_days(api: Api) -> None:
    admin = await make_admin(api)

    response = await api.client.post("/api/v1/accounts", json={"name": "Plain"}, headers=admin.headers)

    assert response.json()["policy"]["default_lease_seconds"] == 3 * DAY


async def test_creator_becomes_admin_of_the_new_account(api: Api) -> None:
    admin, account = await make_account(api)

    me = (await api.client.get("/api/v1/users/me", headers=admin.headers)).json()

    assert me["account_id"] == account["id"]
    assert me["role"] == "admin"


async def test_second_account_for_the_same_user_is_a_conflict_naming_the_first(api: Api) -> None:
    admin, account = await make_account(api, name="First")

    response = await api.client.post("/api/v1/accounts", json=SEED_ACCOUNT, headers=admin.headers)

    assert response.status_code == 409
    assert f"account {account['id']} (First)" in response.json()["detail"]


async def test_two_creates_at_once_make_one_account(api: Api) -> None:
    admin = await make_admin(api)

    responses = await asyncio.gather(
        *(api.client.post("/api/v1/accounts", json=SEED_ACCOUNT, headers=admin.headers) for _ in range(2))
    )

    assert sorted(r.status_code for r in responses) == [201, 409]


async def test_missing_name_is_422_naming_the_field(api: Api) -> None:
    admin = await make_admin(api)

    response = await api.client.post(
        "/api/v1/accounts", json={"lease_expires_in": 3, "lease_expires_in_units": "days"}, headers=admin.headers
    )

    assert response.status_code == 422
    assert response.json()["field"] == "name"


async def test_unknown_lease_unit_is_422_naming_the_field(api: Api) -> None:
    admin = await make_admin(api)
    body = {**SEED_ACCOUNT, "lease_expires_in_units": "fortnights"}

    response = await api.client.post("/api/v1/accounts", json=body, headers=admin.headers)

    assert response.status_code == 422
    assert response.json()["field"] == "lease_expires_in_units"


async def test_lease_amount_without_units_is_422_naming_the_units(api: Api) -> None:
    admin = await make_admin(api)

    response = await api.client.post(
        "/api/v1/accounts", json={"name": "X", "lease_expires_in": 3}, headers=admin.headers
    )

    assert response.status_code == 422
    assert response.json()["field"] == "lease_expires_in_units"


async def test_list_shows_only_the_callers_account(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    response = await api.client.get("/api/v1/accounts", headers=tenant.dev.headers)

    page = response.json()
    assert page["count"] == 1
    assert [a["id"] for a in page["data"]] == [tenant.account_id]


async def test_another_tenants_account_is_not_found(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    url = f"/api/v1/accounts/{other_tenant.account_id}"

    got = await api.client.get(url, headers=tenant.admin.headers)
    patched = await api.client.patch(url, json={"name": "Mine now"}, headers=tenant.admin.headers)

    assert got.status_code == 404
    assert patched.status_code == 404
    mine = await api.client.get(url, headers=other_tenant.admin.headers)
    assert mine.json()["name"] != "Mine now"


async def test_admin_renames_the_account(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        f"/api/v1/accounts/{tenant.account_id}", json={"name": "BigDB Inc"}, headers=tenant.admin.headers
    )

    assert response.status_code == 200
    assert response.json()["name"] == "BigDB Inc"


async def test_developer_cannot_rename_the_account(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        f"/api/v1/accounts/{tenant.account_id}", json={"name": "Devs rule"}, headers=tenant.dev.headers
    )

    assert response.status_code == 403


async def test_patch_with_an_unknown_field_is_422_naming_it(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        f"/api/v1/accounts/{tenant.account_id}", json={"name": "X", "owner": "me"}, headers=tenant.admin.headers
    )

    assert response.status_code == 422
    assert response.json()["field"] == "owner"
