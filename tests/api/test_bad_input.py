"""Bad input is a 422 naming the field, never a 500 and never an undocumented code: ids
and offsets past their column types, times out of range once in UTC, U+0000 anywhere
(path, query, header, body), bodies that are not JSON; pages likewise (``²`` is a digit
to ``str.isdigit()``, not to ``int()``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease

if TYPE_CHECKING:
    from tests.api.web.pages_fixtures import PageClientFactory

pytest_plugins = ["tests.api.web.pages_fixtures"]

JSON = {"Content-Type": "application/json"}


def _refused(response: object, field: str) -> None:
    status, body = response.status_code, response.json()  # type: ignore[attr-defined]
    assert status == 422, (status, body)
    assert body["field"] == field, body
    assert body["detail"].startswith(f"{field}: "), body


@pytest.mark.parametrize(("method", "path", "field"), [
    ("GET", "/api/v1/leases/2147483648", "path.lease_id"),
    ("GET", "/api/v1/resources/99999999999999999999", "path.resource_id"),
    ("GET", "/api/v1/cloudaccounts/2147483648", "path.cloud_account_id"),
    ("PATCH", "/api/v1/users/2147483648", "path.user_id"),
    ("DELETE", "/api/v1/tokens/2147483648", "path.token_id"),
    ("DELETE", "/api/v1/invitations/-1", "path.invitation_id"),
    ("GET", "/api/v1/accounts/0", "path.account_id"),
    ("GET", "/api/v1/leases?offset=100000000000000000000", "query.offset"),
    ("GET", "/api/v1/leases?cloud_account_id=2147483648", "query.cloud_account_id"),
    ("GET", "/api/v1/audit-events?subject_id=2147483648", "query.subject_id"),
])
async def test_an_id_or_offset_past_its_column_is_a_422_naming_it(
    api: Api, tenant: Tenant, method: str, path: str, field: str
) -> None:
    response = await api.client.request(method, path, json={} if method == "PATCH" else None,
                                        headers=tenant.admin.headers)
    _refused(response, field)


async def test_the_largest_id_a_column_holds_is_simply_not_found(api: Api, tenant: Tenant) -> None:
    response = await api.client.get("/api/v1/leases/2147483647", headers=tenant.admin.headers)
    assert response.status_code == 404, response.text


@pytest.mark.parametrize(("path", "field"), [
    ("/api/v1/leases?expires_before=9999-12-31T23:59:59-14:00", "query.expires_before"),
    ("/api/v1/audit-events?since=0001-01-01T00:00:00%2B14:00", "query.since"),
])
async def test_a_time_out_of_range_once_in_utc_is_a_422_naming_it(
    api: Api, tenant: Tenant, path: str, field: str
) -> None:
    response = await api.client.get(path, headers=tenant.admin.headers)
    _refused(response, field)
    assert "out of range once converted to UTC" in response.json()["detail"]


async def test_a_renewal_or_exemption_until_out_of_range_is_a_422(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    renew = await api.client.post(f"/api/v1/leases/{lease_id}/renew", json={"until": "9999-12-31T23:59:59-14:00"},
                                  headers=tenant.admin.headers)
    exempt = await api.client.post(
        f"/api/v1/leases/{lease_id}/exempt", json={"reason": "demo", "until": "9999-12-31T23:00:00-01:00"},
        headers=tenant.admin.headers,
    )
    _refused(renew, "until")
    _refused(exempt, "until")


async def test_a_time_in_range_after_the_shift_still_works(api: Api, tenant: Tenant) -> None:
    response = await api.client.get("/api/v1/leases", params={"expires_before": "9999-12-31T09:00:00+09:00"},
                                    headers=tenant.admin.headers)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/tokens", b'{"name": "laptop\\u0000"}', "name"),
    ("/api/v1/accounts", b'{"name": "BigDB\\u0000", "lease_expires_in": 3, "lease_expires_in_units": "days"}',
     "name"),
    ("/api/v1/accounts/{account}/cloudaccounts",
     b'{"name": "prod", "upstream_account_id": "123456789012", "assume_role_arn": '
     b'"arn:aws:iam::123456789012:role/ZeroCloud", "regions": ["us-east-1", "eu-\\u0000"]}', "regions.1"),
    ("/api/v1/cloudevents", b'{"id": "\\u0000", "detail": {}}', "id"),
])
async def test_nul_in_a_json_body_is_a_422_naming_the_field(
    api: Api, tenant: Tenant, path: str, body: bytes, field: str
) -> None:
    response = await api.client.post(path.format(account=tenant.account_id), content=body,
                                     headers={**JSON, **tenant.admin.headers})
    _refused(response, field)
    assert "U+0000" in response.json()["detail"]


async def test_an_escaped_backslash_before_u0000_is_text_not_nul(api: Api, tenant: Tenant) -> None:
    response = await api.client.post("/api/v1/tokens", content=b'{"name": "C:\\\\u0000"}',
                                     headers={**JSON, **tenant.admin.headers})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "C:\\u0000"


async def test_nul_in_the_query_the_path_or_a_header_is_a_422_naming_it(api: Api, tenant: Tenant) -> None:
    query = await api.client.get("/api/v1/leases?owner=ada%00@bigdb.com", headers=tenant.admin.headers)
    path = await api.client.get("/api/v1/leases/1%00", headers=tenant.admin.headers)
    header = await api.client.get("/api/v1/users/me", headers={**tenant.admin.headers, "X-Request-Id": "a\x00b"})

    _refused(query, "query.owner")
    _refused(path, "path")
    _refused(header, "header.x-request-id")


@pytest.mark.parametrize("body", [b"\xff\xfe{", b'{"name": ', b"not json"])
async def test_a_body_that_is_not_json_is_a_documented_422(api: Api, tenant: Tenant, body: bytes) -> None:
    response = await api.client.post("/api/v1/tokens", content=body, headers={**JSON, **tenant.admin.headers})
    _refused(response, "body")
    assert "not JSON" in response.json()["detail"]


async def test_a_value_past_a_bound_no_route_declares_is_a_422_not_a_500(api: Api, tenant: Tenant) -> None:
    # The policy routes keep plain ints (their schemas are another change's): the database's
    # refusal of the value is the last line of defence, and it answers 422 too.
    response = await api.client.get("/api/v1/users/2147483648/policy", headers=tenant.admin.headers)
    assert response.status_code == 422, response.text
    assert "out of range" in response.json()["detail"]


# --- pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [
    "/leases?cloud_account=%C2%B2", "/leases?cloud_account=99999999999999999999", "/audit?subject_id=%C2%B2",
    "/audit?subject_id=99999999999999999999", "/audit?since=0001-01-01T00:00%2B14:00",
])
async def test_a_page_given_a_number_it_cannot_use_says_so(
    page_client: PageClientFactory, tenant: Tenant, path: str
) -> None:
    admin = await page_client(tenant.admin)
    response = await admin.http.get(path)
    assert response.status_code == 200, response.text


async def test_a_page_refuses_a_renewal_by_a_superscript_number(
    api: Api, page_client: PageClientFactory, tenant: Tenant
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    dev = await page_client(tenant.dev)
    response = await dev.post(f"/leases/{lease_id}/renew", {"extend": "²"})
    assert response.status_code == 422, response.text


async def test_a_page_refuses_nul_in_a_form_with_a_page(page_client: PageClientFactory, tenant: Tenant) -> None:
    dev = await page_client(tenant.dev)
    response = await dev.post("/tokens", {"name": "laptop\x00"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "U+0000" in response.text


async def test_a_page_id_past_its_column_is_not_a_500(page_client: PageClientFactory, tenant: Tenant) -> None:
    admin = await page_client(tenant.admin)
    response = await admin.http.get("/leases/2147483648")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("text/html")
