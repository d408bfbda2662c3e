"""Who may call what: no token, a bad token, user tokens and the service token."""

from __future__ import annotations

import pytest

from tests.api.factories import SERVICE_TOKEN, Api, Tenant, make_cloud_account

SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}

PUBLIC_READS = [
    "/api/v1/accounts", "/api/v1/users/me", "/api/v1/tokens", "/api/v1/resources", "/api/v1/leases",
    "/api/v1/audit-events", "/api/v1/accounts/1", "/api/v1/accounts/1/policy", "/api/v1/accounts/1/users",
    "/api/v1/accounts/1/cloudaccounts", "/api/v1/cloudaccounts/1", "/api/v1/users/1", "/api/v1/users/1/policy",
    "/api/v1/leases/1", "/api/v1/resources/1",
]


@pytest.mark.parametrize("path", PUBLIC_READS)
async def test_no_token_is_401_with_www_authenticate(api: Api, path: str) -> None:
    response = await api.client.get(path)

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]


async def test_unknown_token_is_401(api: Api) -> None:
    response = await api.client.get("/api/v1/users/me", headers={"Authorization": "Bearer zc_not-a-real-token"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_no_token_on_a_write_is_401_before_the_body_is_judged(api: Api) -> None:
    response = await api.client.post("/api/v1/accounts", json={"bogus": True})

    assert response.status_code == 401


@pytest.mark.parametrize("path", PUBLIC_READS)
async def test_service_token_does_not_see_public_routes(api: Api, tenant: Tenant, path: str) -> None:
    response = await api.client.get(path, headers=SERVICE)

    assert response.status_code == 404


async def test_service_token_cannot_create_an_account(api: Api) -> None:
    response = await api.client.post("/api/v1/accounts", json={"name": "Evil"}, headers=SERVICE)

    assert response.status_code == 404


async def test_service_token_answers_on_internal_routes(api: Api, tenant: Tenant) -> None:
    response = await api.client.get("/internal/v1/cloudaccounts", headers=SERVICE)

    assert response.status_code == 200
    assert response.json() == {"data": [], "count": 0}


@pytest.mark.parametrize("who", ["admin", "dev"])
async def test_user_tokens_do_not_see_internal_routes(api: Api, tenant: Tenant, who: str) -> None:
    cloud = await make_cloud_account(api, tenant)
    headers = getattr(tenant, who).headers

    listed = await api.client.get("/internal/v1/cloudaccounts", headers=headers)
    known = await api.client.get(
        f"/internal/v1/cloudaccounts/{cloud['id']}/instances", params={"region": "us-east-1"}, headers=headers
    )

    assert (listed.status_code, known.status_code) == (404, 404)


async def test_internal_routes_without_a_token_are_401(api: Api) -> None:
    response = await api.client.get("/internal/v1/cloudaccounts")

    assert response.status_code == 401
