"""Every list is a page: a hard cap, the total count, and offsets that add up; the long
lists also page by cursor, with a count that stops at a cap."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col

from tests.api.factories import Api, Caller, Tenant, make_cloud_account, make_lease, make_user_token
from zc_api import pagination
from zc_api.database import transaction
from zc_api.models import Lease


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


# --- keyset cursors (leases, resources, audit events) --------------------------------------


async def _pages(api: Api, caller: Caller, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a list, following next_cursor from the first."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.client.get(path, params=query, headers=caller.headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, "the cursors never end"


async def _expiring_at(api: Api, moments: dict[int, datetime]) -> None:
    async with transaction(api.sessions) as session:
        for lease_id, moment in moments.items():
            await session.execute(update(Lease).where(col(Lease.id) == lease_id).values(expires_at=moment))


async def test_cursor_pages_hold_every_lease_once_soonest_first_ties_by_id(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    ids = [(await make_lease(api, cloud, tenant.dev))[1] for _ in range(7)]
    tie, later = datetime(2030, 1, 1, tzinfo=timezone.utc), datetime(2030, 1, 2, tzinfo=timezone.utc)
    # Four leases expiring at the same moment, straddling the pages; the first made last.
    await _expiring_at(api, {ids[0]: later, ids[1]: tie, ids[2]: tie, ids[3]: tie, ids[4]: tie,
                             ids[5]: tie - timedelta(hours=1), ids[6]: later})

    pages = await _pages(api, tenant.admin, "/api/v1/leases", limit=2)

    listed = [lease["id"] for page in pages for lease in page["data"]]
    assert listed == [ids[5], ids[1], ids[2], ids[3], ids[4], ids[0], ids[6]]
    assert [len(page["data"]) for page in pages] == [2, 2, 2, 1]
    assert all(page["count"] == 7 and page["count_at_least"] is False for page in pages)
    assert pages[-1]["next_cursor"] is None and all(page["offset"] == 0 for page in pages)


async def test_a_cursor_keeps_the_filters_it_is_given(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    active = [(await make_lease(api, cloud, tenant.dev, status="active", expires_in=timedelta(hours=n)))[1]
              for n in range(1, 6)]
    for n in range(1, 6):
        await make_lease(api, cloud, tenant.dev, status="released", expires_in=timedelta(hours=n, minutes=30))

    pages = await _pages(api, tenant.admin, "/api/v1/leases", status="active", limit=2)

    assert [lease["id"] for page in pages for lease in page["data"]] == active
    assert {lease["status"] for page in pages for lease in page["data"]} == {"active"}
    assert [page["count"] for page in pages] == [5, 5, 5]


async def test_resources_and_audit_events_page_by_cursor_too(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    resources = [(await make_lease(api, cloud, tenant.dev))[0] for _ in range(5)]
    for n in range(4):
        await api.client.patch(f"/api/v1/cloudaccounts/{cloud['id']}", json={"name": f"prod {n}"},
                               headers=tenant.admin.headers)
    everything = (await api.client.get("/api/v1/audit-events", params={"limit": 500},
                                       headers=tenant.admin.headers)).json()

    by_id = await _pages(api, tenant.admin, "/api/v1/resources", limit=2)
    newest_first = await _pages(api, tenant.admin, "/api/v1/audit-events", limit=2)

    assert [r["id"] for page in by_id for r in page["data"]] == resources
    events = [e["id"] for page in newest_first for e in page["data"]]
    assert len(events) >= 6 and events == [e["id"] for e in everything["data"]]


def _cursor(body: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()


async def test_a_cursor_that_is_not_one_the_api_made_is_422_naming_it(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    for _ in range(3):
        await make_lease(api, cloud, tenant.dev)
    real = (await api.client.get("/api/v1/leases", params={"limit": 1}, headers=tenant.admin.headers)).json()
    cut = real["next_cursor"][:-7]
    tampered = [
        "not a cursor!", "%%%%", cut, _cursor("x")[:-1] + "!", base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        _cursor([1, 2]), _cursor({"list": "leases:expires_at,id"}),
        _cursor({"list": "leases:expires_at,id", "after": ["2030-01-01T00:00:00+00:00"]}),
        _cursor({"list": "leases:expires_at,id", "after": ["tomorrow", 1]}),
        _cursor({"list": "leases:expires_at,id", "after": [12, 1]}),
        _cursor({"list": "leases:expires_at,id", "after": ["2030-01-01T00:00:00+00:00", -1]}),
        _cursor({"list": "leases:expires_at,id", "after": ["2030-01-01T00:00:00+00:00", 2**31]}),
        _cursor({"list": "leases:expires_at,id", "after": ["2030-01-01T00:00:00+00:00", True]}),
        _cursor({"list": "leases:expires_at,id", "after": ["9999-12-31T23:59:59-14:00", 1]}),
        _cursor({"list": "leases:expires_at,id", "after": ["2030-01-01T00:00:00+00:00", 1], "x": 1}),
    ]

    for cursor in tampered:
        response = await api.client.get("/api/v1/leases", params={"cursor": cursor}, headers=tenant.admin.headers)
        assert response.status_code == 422, (cursor, response.text)
        assert response.json()["field"].endswith("cursor") and "cursor" in response.json()["detail"], cursor
    too_long = await api.client.get("/api/v1/leases", params={"cursor": "a" * 257}, headers=tenant.admin.headers)
    assert too_long.status_code == 422 and too_long.json()["field"].endswith("cursor")


async def test_a_cursor_of_another_list_is_422_saying_so(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    for _ in range(3):
        await make_lease(api, cloud, tenant.dev)
    leases = (await api.client.get("/api/v1/leases", params={"limit": 1}, headers=tenant.admin.headers)).json()
    resources = (await api.client.get("/api/v1/resources", params={"limit": 1}, headers=tenant.admin.headers)).json()

    for path, cursor in (("/api/v1/resources", leases["next_cursor"]), ("/api/v1/audit-events", leases["next_cursor"]),
                         ("/api/v1/leases", resources["next_cursor"])):
        response = await api.client.get(path, params={"cursor": cursor}, headers=tenant.admin.headers)
        assert response.status_code == 422, (path, response.text)
        assert "another list" in response.json()["detail"], path


async def test_a_cursor_and_an_offset_together_are_422(api: Api, tenant: Tenant) -> None:
    cursor = _cursor({"list": "leases:expires_at,id", "after": ["2030-01-01T00:00:00+00:00", 1]})

    response = await api.client.get("/api/v1/leases", params={"cursor": cursor, "offset": 5},
                                    headers=tenant.admin.headers)

    assert response.status_code == 422 and response.json()["field"].endswith("offset")


async def test_a_cursor_never_reaches_another_tenants_rows(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    mine = await make_cloud_account(api, tenant)
    theirs = await make_cloud_account(api, other_tenant)
    made = [await make_lease(api, mine, tenant.dev, expires_in=timedelta(hours=n)) for n in (1, 3)]
    own_resources, own = {resource for resource, _ in made}, {lease for _, lease in made}
    for n in (2, 4):
        await make_lease(api, theirs, other_tenant.dev, expires_in=timedelta(hours=n))
    their_cursor = (await api.client.get("/api/v1/leases", params={"limit": 1},
                                         headers=other_tenant.admin.headers)).json()["next_cursor"]
    from_the_start = _cursor({"list": "leases:expires_at,id", "after": ["2000-01-01T00:00:00+00:00", 0]})

    for cursor in (their_cursor, from_the_start):
        page = (await api.client.get("/api/v1/leases", params={"cursor": cursor},
                                     headers=tenant.admin.headers)).json()
        assert {lease["id"] for lease in page["data"]} <= own and page["count"] == 2
    for caller in (tenant.admin, tenant.dev):
        pages = await _pages(api, caller, "/api/v1/resources", limit=1)
        assert {r["id"] for page in pages for r in page["data"]} == own_resources


async def test_counts_are_exact_up_to_the_cap_and_say_at_least_past_it(
    api: Api, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pagination, "COUNT_CAP", 3)
    cloud = await make_cloud_account(api, tenant)
    for status in ("active", "active", "active", "active", "released"):
        await make_lease(api, cloud, tenant.dev, status=status)

    async def page(path: str, **params: Any) -> dict[str, Any]:
        response = await api.client.get(path, params={"limit": 2, **params}, headers=tenant.admin.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    over = await page("/api/v1/leases")
    deep = await page("/api/v1/leases", cursor=over["next_cursor"])
    by_offset = await page("/api/v1/leases", offset=4)
    exact = await page("/api/v1/leases", status="released")
    at_the_cap = await page("/api/v1/leases", owner=tenant.dev.email, status="active", instance_id="i-none")

    assert (over["count"], over["count_at_least"]) == (3, True)
    assert (deep["count"], deep["count_at_least"]) == (3, True) and len(deep["data"]) == 2
    assert (by_offset["count"], by_offset["count_at_least"], len(by_offset["data"])) == (3, True, 1)
    assert (exact["count"], exact["count_at_least"]) == (1, False)
    assert (at_the_cap["count"], at_the_cap["count_at_least"]) == (0, False)
    assert (await page("/api/v1/resources"))["count_at_least"] is True
    for _ in range(3):
        await make_lease(api, cloud, tenant.dev, region="eu-west-1")
    exactly_the_cap = await page("/api/v1/resources", region="eu-west-1")
    assert (exactly_the_cap["count"], exactly_the_cap["count_at_least"]) == (3, False)
