"""Who may call what, on which listener: no token, a bad token, user tokens and each
service's own credential."""

from __future__ import annotations

import pytest

from tests.api.factories import Api, Tenant, make_cloud_account
from tests.support.credentials import SERVICE_TOKENS, bearer

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


@pytest.mark.parametrize("service", sorted(SERVICE_TOKENS))
@pytest.mark.parametrize("path", PUBLIC_READS)
async def test_service_credentials_do_not_see_public_routes(api: Api, tenant: Tenant, path: str, service: str) -> None:
    response = await api.client.get(path, headers=bearer(service))

    assert response.status_code == 404


async def test_service_credential_cannot_create_an_account(api: Api) -> None:
    response = await api.client.post("/api/v1/accounts", json={"name": "Evil"}, headers=bearer("reaper"))

    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/internal/v1/cloudaccounts", "/metrics"])
async def test_the_public_listener_has_no_internal_routes_or_metrics(
    api: Api, tenant: Tenant, path: str
) -> None:
    # The credential that works on the internal listener changes nothing here.
    response = await api.client.get(path, headers=bearer("ingestor"))

    assert response.status_code == 404
    assert (await api.internal.get(path, headers=bearer("ingestor"))).status_code == 200


async def test_the_public_openapi_documents_no_internal_route(api: Api) -> None:
    public = (await api.client.get("/openapi.json")).json()["paths"]
    internal = (await api.internal.get("/openapi.json")).json()["paths"]

    assert [p for p in public if p.startswith("/internal/") or p == "/metrics"] == []
    assert "/internal/v1/leases/claim" in internal and "/metrics" in internal


async def test_metrics_with_every_tenants_counts_are_on_the_internal_listener_only(api: Api) -> None:
    response = await api.internal.get("/metrics")

    assert response.status_code == 200 and "zc_leases" in response.text


# Which service each internal route is for; every other caller gets 404, as if it did not exist.
INTERNAL_ROUTES = [
    ("GET", "/internal/v1/cloudaccounts", {"ingestor", "reaper"}),
    ("GET", "/internal/v1/cloudaccounts/1/instances?region=us-east-1", {"ingestor"}),
    ("POST", "/internal/v1/cloudaccounts/event-arrivals", {"ingestor"}),
    ("POST", "/internal/v1/leases/claim", {"reaper"}),
    ("POST", "/internal/v1/leases/outcomes", {"reaper"}),
    ("POST", "/internal/v1/action-links", {"notifier"}),
    ("POST", "/internal/v1/people-links", {"notifier"}),
    ("POST", "/internal/v1/notifications/reserve", {"notifier"}),
    ("POST", "/internal/v1/notifications/sent", {"notifier"}),
    ("POST", "/internal/v1/notifications/recipients", {"notifier"}),
]


@pytest.mark.parametrize("service", sorted(SERVICE_TOKENS))
@pytest.mark.parametrize(("method", "path", "allowed"), INTERNAL_ROUTES)
async def test_each_service_credential_opens_only_its_own_routes(
    api: Api, method: str, path: str, allowed: set[str], service: str
) -> None:
    # An empty JSON object: an allowed caller gets past authorization to validation (422)
    # or an answer; a refused one gets 404 before the body is looked at.
    response = await api.internal.request(method, path, headers=bearer(service), json={} if method == "POST" else None)

    if service in allowed:
        assert response.status_code in (200, 404, 422), response.text
        assert response.status_code != 404 or "cloud account" in response.json()["detail"]
    else:
        assert response.status_code == 404, response.text
        assert response.json()["detail"] == "not found"


@pytest.mark.parametrize("who", ["admin", "dev"])
async def test_user_tokens_do_not_see_internal_routes(api: Api, tenant: Tenant, who: str) -> None:
    cloud = await make_cloud_account(api, tenant)
    headers = getattr(tenant, who).headers

    listed = await api.internal.get("/internal/v1/cloudaccounts", headers=headers)
    known = await api.internal.get(
        f"/internal/v1/cloudaccounts/{cloud['id']}/instances", params={"region": "us-east-1"}, headers=headers
    )

    assert (listed.status_code, known.status_code) == (404, 404)


async def test_internal_routes_without_a_token_are_401(api: Api) -> None:
    response = await api.internal.get("/internal/v1/cloudaccounts")

    assert response.status_code == 401
