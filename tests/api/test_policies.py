"""Account and user policies: admins change them within bounds, developers cannot."""

from __future__ import annotations

from tests.api.factories import Api, Tenant

DAY = 24 * 3600


def policy_url(tenant: Tenant) -> str:
    return f"/api/v1/accounts/{tenant.account_id}/policy"


async def test_admin_changes_only_the_fields_sent(api: Api, tenant: Tenant) -> None:
    before = (await api.client.get(policy_url(tenant), headers=tenant.admin.headers)).json()

    response = await api.client.patch(
        policy_url(tenant),
        json={"allowed_email_patterns": ["*@BigDB.com"], "action_on_expiry": "terminate",
              "warning_seconds": [3600, 86400, 3600], "max_instances_per_user": 5},
        headers=tenant.admin.headers,
    )

    assert response.status_code == 200, response.text
    after = response.json()
    assert after["allowed_email_patterns"] == ["*@bigdb.com"]
    assert after["action_on_expiry"] == "terminate"
    assert after["warning_seconds"] == [86400, 3600]
    assert after["max_instances_per_user"] == 5
    assert after["default_lease_seconds"] == before["default_lease_seconds"]
    assert after["owner_tag"] == before["owner_tag"]


async def test_lease_units_set_the_default_lease(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        policy_url(tenant), json={"lease_expires_in": 8, "lease_expires_in_units": "hours"},
        headers=tenant.admin.headers,
    )

    assert response.json()["default_lease_seconds"] == 8 * 3600


async def test_default_longer_than_max_is_422_naming_the_field(api: Api, tenant: Tenant) -> None:
    too_long = await api.client.patch(
        policy_url(tenant), json={"default_lease_seconds": 20 * DAY}, headers=tenant.admin.headers
    )
    too_short = await api.client.patch(
        policy_url(tenant), json={"max_lease_seconds": DAY}, headers=tenant.admin.headers
    )

    assert too_long.status_code == 422 and too_long.json()["field"] == "default_lease_seconds"
    assert too_short.status_code == 422 and too_short.json()["field"] == "max_lease_seconds"
    assert "3 days" in too_short.json()["detail"]
    unchanged = (await api.client.get(policy_url(tenant), headers=tenant.admin.headers)).json()
    assert (unchanged["default_lease_seconds"], unchanged["max_lease_seconds"]) == (3 * DAY, 14 * DAY)


async def test_raising_both_together_is_fine(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        policy_url(tenant), json={"default_lease_seconds": 20 * DAY, "max_lease_seconds": 30 * DAY},
        headers=tenant.admin.headers,
    )

    assert response.status_code == 200


async def test_null_for_a_required_policy_field_is_422(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(policy_url(tenant), json={"owner_tag": None}, headers=tenant.admin.headers)

    assert response.status_code == 422
    assert response.json()["field"] == "owner_tag"


async def test_unknown_policy_field_is_422_naming_it(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(policy_url(tenant), json={"max_lease_days": 3}, headers=tenant.admin.headers)

    assert response.status_code == 422
    assert response.json()["field"] == "max_lease_days"


async def test_developer_reads_but_cannot_patch_the_policy(api: Api, tenant: Tenant) -> None:
    read = await api.client.get(policy_url(tenant), headers=tenant.dev.headers)
    patched = await api.client.patch(
        policy_url(tenant), json={"default_lease_seconds": 13 * DAY}, headers=tenant.dev.headers
    )

    assert read.status_code == 200
    assert patched.status_code == 403
    assert (await api.client.get(policy_url(tenant), headers=tenant.dev.headers)).json() == read.json()


async def test_another_tenants_policy_is_not_found(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    read = await api.client.get(policy_url(other_tenant), headers=tenant.admin.headers)
    patched = await api.client.patch(
        policy_url(other_tenant), json={"default_lease_seconds": 60}, headers=tenant.admin.headers
    )

    assert (read.status_code, patched.status_code) == (404, 404)


async def test_user_policy_overrides_the_account_and_shows_the_effect(api: Api, tenant: Tenant) -> None:
    url = f"/api/v1/users/{tenant.dev.user_id}/policy"

    put = await api.client.put(
        url, json={"default_lease_seconds": DAY, "max_instances": 2}, headers=tenant.admin.headers
    )
    seen_by_dev = await api.client.get(url, headers=tenant.dev.headers)

    assert put.status_code == 200, put.text
    assert seen_by_dev.json() == put.json()
    assert put.json()["effective"] == {"default_lease_seconds": DAY, "max_lease_seconds": 14 * DAY, "max_instances": 2}


async def test_user_policy_default_above_max_is_422(api: Api, tenant: Tenant) -> None:
    response = await api.client.put(
        f"/api/v1/users/{tenant.dev.user_id}/policy", json={"default_lease_seconds": 15 * DAY},
        headers=tenant.admin.headers,
    )

    assert response.status_code == 422
    assert response.json()["field"] == "default_lease_seconds"


async def test_developer_cannot_set_policies_or_read_anothers(api: Api, tenant: Tenant) -> None:
    own = f"/api/v1/users/{tenant.dev.user_id}/policy"
    admins = f"/api/v1/users/{tenant.admin.user_id}/policy"

    put = await api.client.put(own, json={"max_instances": 100}, headers=tenant.dev.headers)
    read = await api.client.get(admins, headers=tenant.dev.headers)

    assert (put.status_code, read.status_code) == (403, 403)
