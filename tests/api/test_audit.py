"""The audit log: every change made through the API, with who made it; admins only,
their own account only, newest first."""

from __future__ import annotations

from typing import Any

from tests.api.factories import Api, Tenant, make_cloud_account


async def _events(api: Api, tenant: Tenant, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/audit-events", params=params, headers=tenant.admin.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def test_changes_are_audited_with_the_caller_as_actor(api: Api, tenant: Tenant) -> None:
    actor = f"user:{tenant.admin.user_id}"
    cloud = await make_cloud_account(api, tenant)
    await api.client.patch(f"/api/v1/cloudaccounts/{cloud['id']}", json={"mode": "enforce"},
                           headers=tenant.admin.headers)
    user = (await api.client.post(f"/api/v1/accounts/{tenant.account_id}/users", json={"email": "new@bigdb.com"},
                                  headers=tenant.admin.headers)).json()
    await api.client.patch(f"/api/v1/accounts/{tenant.account_id}/policy", json={"default_lease_seconds": 3600},
                           headers=tenant.admin.headers)
    await api.client.put(f"/api/v1/users/{user['id']}/policy", json={"max_instances": 1},
                         headers=tenant.admin.headers)

    events = await _events(api, tenant)
    by_action = {e["action"]: e for e in events}

    assert by_action["account.created"]["subject_id"] == tenant.account_id
    assert by_action["cloud_account.created"]["subject_id"] == cloud["id"]
    assert by_action["cloud_account.updated"]["details"]["changes"]["mode"] == {"from": "observe", "to": "enforce"}
    assert by_action["user.created"]["details"]["email"] == "new@bigdb.com"
    assert by_action["account_policy.updated"]["details"]["changes"]["default_lease_seconds"]["to"] == 3600
    assert by_action["user_policy.updated"]["subject_id"] == user["id"]
    for action in ("account.created", "cloud_account.created", "cloud_account.updated", "user.created",
                   "account_policy.updated", "user_policy.updated"):
        assert by_action[action]["actor"] == actor, action
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)  # newest first


async def test_refused_change_leaves_no_audit_event(api: Api, tenant: Tenant) -> None:
    await api.client.patch(f"/api/v1/accounts/{tenant.account_id}/policy",
                           json={"default_lease_seconds": 30 * 24 * 3600}, headers=tenant.admin.headers)

    assert await _events(api, tenant, action="account_policy.updated") == []


async def test_filters_select_one_subject(api: Api, tenant: Tenant) -> None:
    first = await make_cloud_account(api, tenant)
    await make_cloud_account(api, tenant)

    events = await _events(api, tenant, subject_type="cloud_account", subject_id=first["id"])

    assert [e["action"] for e in events] == ["cloud_account.created"]


async def test_developer_cannot_read_the_audit_log(api: Api, tenant: Tenant) -> None:
    response = await api.client.get("/api/v1/audit-events", headers=tenant.dev.headers)

    assert response.status_code == 403


async def test_another_tenants_events_never_show(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    await make_cloud_account(api, other_tenant)

    events = await _events(api, tenant)

    assert events and all(e["account_id"] == tenant.account_id for e in events)
    assert "cloud_account.created" not in {e["action"] for e in events}
