"""Every list is a page: a hard cap, the total count, and offsets that add up."""

from __future__ import annotations

from tests.api.factories import Api, Tenant, make_user_token


async def test_limit_above_the_cap_is_422_naming_it(api: Api, tenant: Tenant) -> None:
    response = await api.client.get("/api/v1/leases", params={"limit": 501}, headers=tenant.admin.headers)

    assert response.status_code == 422
    assert response.json()["field"].endswith("limit")


async def test_negative_offset_is_422(api: Api, tenant: Tenant) -> None:
    response = await api.client.get("/api/v1/leases", params={"offset": -1}, headers=tenant.admin.headers)

    assert response.status_code == 422


async def test_pages_add_up_to_the_count(api: Api, tenant: Tenant) -> None:
    for _ in range(5):
        await make_user_token(api, tenant.account_id)
    url = f"/api/v1/accounts/{tenant.account_id}/users"

    everyone = (await api.client.get(url, params={"limit": 500}, headers=tenant.admin.headers)).json()
    pages = [
        (await api.client.get(url, params={"limit": 3, "offset": offset}, headers=tenant.admin.headers)).json()
        for offset in (0, 3, 6)
    ]

    assert everyone["count"] == 7 and len(everyone["data"]) == 7
    assert [page["count"] for page in pages] == [7, 7, 7]
    assert [len(page["data"]) for page in pages] == [3, 3, 1]
    assert [page["offset"] for page in pages] == [0, 3, 6] and pages[0]["limit"] == 3
    assert [u["id"] for page in pages for u in page["data"]] == [u["id"] for u in everyone["data"]]


async def test_offset_past_the_end_is_an_empty_page_with_the_count(api: Api, tenant: Tenant) -> None:
    page = (
        await api.client.get(
            f"/api/v1/accounts/{tenant.account_id}/users", params={"offset": 100}, headers=tenant.admin.headers
        )
    ).json()

    assert page["data"] == [] and page["count"] == 2
