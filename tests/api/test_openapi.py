"""The OpenAPI document: every route says what it does, what it answers and how it fails."""

from __future__ import annotations

from typing import Any

from tests.api.factories import Api

METHODS = {"get", "post", "put", "patch", "delete"}

# The routes of the api spec; each must be served (more may be, with the same care).
SPEC_ROUTES = {
    "POST /api/v1/accounts", "GET /api/v1/accounts", "GET /api/v1/accounts/{account_id}",
    "PATCH /api/v1/accounts/{account_id}", "GET /api/v1/accounts/{account_id}/policy",
    "PATCH /api/v1/accounts/{account_id}/policy", "POST /api/v1/accounts/{account_id}/cloudaccounts",
    "GET /api/v1/accounts/{account_id}/cloudaccounts", "GET /api/v1/cloudaccounts/{cloud_account_id}",
    "PATCH /api/v1/cloudaccounts/{cloud_account_id}", "POST /api/v1/cloudaccounts/{cloud_account_id}/verify",
    "POST /api/v1/accounts/{account_id}/users", "GET /api/v1/accounts/{account_id}/users",
    "GET /api/v1/users/me", "GET /api/v1/users/{user_id}", "PATCH /api/v1/users/{user_id}",
    "GET /api/v1/users/{user_id}/policy", "PUT /api/v1/users/{user_id}/policy",
    "POST /api/v1/tokens", "GET /api/v1/tokens", "DELETE /api/v1/tokens/{token_id}",
    "GET /api/v1/resources", "GET /api/v1/resources/{resource_id}",
    "GET /api/v1/leases", "GET /api/v1/leases/{lease_id}", "GET /api/v1/audit-events",
    "POST /api/v1/cloudevents", "POST /api/v1/sweeps", "GET /api/v1/sweeps/{sweep_id}",
    "GET /internal/v1/cloudaccounts", "GET /internal/v1/cloudaccounts/{cloud_account_id}/instances",
    "POST /internal/v1/sweeps/{sweep_id}/report",
}


async def _operations(api: Api) -> dict[str, dict[str, Any]]:
    """The public listener's document for /api/v1, the internal one's for /internal/v1."""
    public = (await api.client.get("/openapi.json")).json()
    internal = (await api.internal.get("/openapi.json")).json()
    return {
        f"{method.upper()} {path}": operation
        for document, prefix in ((public, "/api/v1/"), (internal, "/internal/v1/"))
        for path, item in document["paths"].items()
        if path.startswith(prefix)
        for method, operation in item.items()
        if method in METHODS
    }


async def test_every_route_has_a_summary_a_response_model_and_its_errors(api: Api) -> None:
    operations = await _operations(api)

    assert SPEC_ROUTES <= operations.keys(), SPEC_ROUTES - operations.keys()
    for name, operation in operations.items():
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert operation.get("summary"), name
        assert len(success) == 1, name
        if success != ["204"]:
            assert "schema" in responses[success[0]]["content"]["application/json"], name
        assert "401" in responses, name
        if "{" in name or "/internal/" in name:
            assert "404" in responses, name
        if operation.get("requestBody") or "parameters" in operation:
            assert "422" in responses, name
        for code, response in responses.items():
            if not code.startswith("2"):
                assert response["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody"), name


async def test_error_codes_a_route_can_answer_are_declared(api: Api) -> None:
    operations = await _operations(api)

    assert "409" in operations["POST /api/v1/accounts/{account_id}/cloudaccounts"]["responses"]
    assert "403" in operations["PATCH /api/v1/accounts/{account_id}/policy"]["responses"]
    assert "413" in operations["POST /api/v1/cloudevents"]["responses"]
    assert "requestBody" in operations["POST /api/v1/cloudevents"]
    assert {"202", "403", "404", "413", "422"} <= operations["POST /api/v1/sweeps"]["responses"].keys()
    assert {"200", "403", "404"} <= operations["GET /api/v1/sweeps/{sweep_id}"]["responses"].keys()


async def test_every_public_route_declares_the_refusals_any_request_can_get(api: Api) -> None:
    # 422: U+0000 in any header, path or query is refused on every route (the request
    # guard); 413: a body past the 4 MiB cap, on every route that reads one.
    operations = await _operations(api)

    for name, operation in operations.items():
        if not name.split(" ", 1)[1].startswith("/api/v1/"):
            continue
        assert "422" in operation["responses"], name
        if operation.get("requestBody"):
            assert "413" in operation["responses"], name


async def test_the_long_lists_document_their_cursor_and_capped_count(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    operations = await _operations(api)

    for path in ("/api/v1/leases", "/api/v1/resources", "/api/v1/audit-events"):
        parameters = {p["name"]: p for p in operations[f"GET {path}"]["parameters"]}
        assert "next_cursor" in parameters["cursor"]["description"], path
        assert parameters["cursor"]["schema"]["anyOf"][0]["maxLength"] == 256, path
        assert "cursor" in parameters["offset"]["description"], path
        ref = operations[f"GET {path}"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        fields = document["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]
        assert {"data", "count", "count_at_least", "limit", "offset", "next_cursor"} <= fields.keys(), path
        assert "lower bound" in fields["count_at_least"]["description"], path
        assert "last page" in fields["next_cursor"]["description"], path
