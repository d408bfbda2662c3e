"""Sweeps an admin asks for: only within their own account, only in regions a cloud
account watches, never two at once for one cloud account and region (racing requests
answer the same sweep and publish one SweepRequested), and the ingestor's reports seen
through GET."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import sqlalchemy as sa

from zc_common.messages import SweepRequested
from zc_common.settings import ApiSettings

from tests.api.factories import Api, Tenant, make_cloud_account, running_api
from tests.api.records import audit_events, outbox, post_internal
from zc_api.database import transaction

WEST = "eu-west-1"
EAST = "us-east-1"


async def ask(api: Api, tenant: Tenant, *, admin: bool = True, **body: Any) -> httpx.Response:
    caller = tenant.admin if admin else tenant.dev
    return await api.client.post("/api/v1/sweeps", json=body, headers=caller.headers)


async def report(api: Api, sweep_id: int, **body: Any) -> httpx.Response:
    return await post_internal(api, f"/sweeps/{sweep_id}/report", body)


async def test_admin_sweeps_one_cloud_account_region_through_the_outbox(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant, regions=[EAST, WEST])

    response = await ask(api, tenant, cloud_account_id=cloud["id"], region=WEST)

    assert response.status_code == 202, response.text
    [sweep] = response.json()["data"]
    assert (sweep["cloud_account_id"], sweep["region"], sweep["state"], sweep["already_running"]) == (
        cloud["id"], WEST, "requested", False
    )
    assert sweep["requested_by"] == f"user:{tenant.admin.user_id}"
    [message] = await outbox(api, SweepRequested)
    assert (message.cloud_account_id, message.region, message.sweep_id) == (cloud["id"], WEST, sweep["id"])
    assert len(await audit_events(api, action="sweep.requested", subject_id=sweep["id"])) == 1


async def test_without_a_cloud_account_every_region_of_every_own_cloud_account_is_swept(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    first = await make_cloud_account(api, tenant, regions=[EAST, WEST])
    second = await make_cloud_account(api, tenant)
    await make_cloud_account(api, other_tenant)

    response = await ask(api, tenant)

    assert response.status_code == 202, response.text
    targets = {(s["cloud_account_id"], s["region"]) for s in response.json()["data"]}
    assert targets == {(first["id"], EAST), (first["id"], WEST), (second["id"], EAST)}
    published = {(m.cloud_account_id, m.region) for m in await outbox(api, SweepRequested)}
    assert published == targets, "never another tenant's cloud account"


async def test_one_region_across_own_cloud_accounts(api: Api, tenant: Tenant) -> None:
    first = await make_cloud_account(api, tenant, regions=[EAST, WEST])
    await make_cloud_account(api, tenant)  # us-east-1 only

    response = await ask(api, tenant, region=WEST)

    assert [(s["cloud_account_id"], s["region"]) for s in response.json()["data"]] == [(first["id"], WEST)]


async def test_another_tenants_cloud_account_is_not_found(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = await make_cloud_account(api, other_tenant)

    response = await ask(api, tenant, cloud_account_id=theirs["id"])

    assert response.status_code == 404, response.text
    assert await outbox(api, SweepRequested) == []


async def test_a_developer_may_not_ask_for_a_sweep(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)

    one = await ask(api, tenant, admin=False, cloud_account_id=cloud["id"])
    every = await ask(api, tenant, admin=False)

    assert (one.status_code, every.status_code) == (403, 403)
    assert await outbox(api, SweepRequested) == []


async def test_a_region_the_cloud_account_does_not_watch_is_refused_by_name(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)

    response = await ask(api, tenant, cloud_account_id=cloud["id"], region=WEST)
    nowhere = await ask(api, tenant, region=WEST)

    assert response.status_code == 422, response.text
    assert response.json()["field"] == "region"
    assert WEST in response.json()["detail"] and EAST in response.json()["detail"]
    assert nowhere.status_code == 422 and nowhere.json()["field"] == "region"
    assert await outbox(api, SweepRequested) == []


async def test_an_account_without_cloud_accounts_has_nothing_to_sweep(api: Api, tenant: Tenant) -> None:
    response = await ask(api, tenant)

    assert response.status_code == 422
    assert "no cloud account" in response.json()["detail"]


async def test_out_of_range_input_is_422_never_500(api: Api, tenant: Tenant) -> None:
    for body in (
        {"cloud_account_id": 2**31}, {"cloud_account_id": 0}, {"region": "x" * 33}, {"region": "Mars"},
        {"cloud_account_id": 1, "colour": "red"}, {"region": ["us-east-1"]},
    ):
        response = await ask(api, tenant, **body)
        assert response.status_code == 422, (body, response.text)
    assert (await api.client.get(f"/api/v1/sweeps/{2**31}", headers=tenant.admin.headers)).status_code == 422


async def test_racing_requests_answer_one_sweep_and_publish_it_once(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)

    responses = await asyncio.gather(*(ask(api, tenant, cloud_account_id=cloud["id"]) for _ in range(6)))

    assert {r.status_code for r in responses} == {202}
    sweeps = [r.json()["data"][0] for r in responses]
    assert len({s["id"] for s in sweeps}) == 1
    assert sorted(s["already_running"] for s in sweeps) == [False] + [True] * 5
    [message] = await outbox(api, SweepRequested)
    assert message.sweep_id == sweeps[0]["id"]


async def test_a_running_sweep_is_answered_again_until_it_is_done(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    first = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"][0]
    assert (await report(api, first["id"], state="running")).status_code == 204

    again = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"][0]
    assert (again["id"], again["state"], again["already_running"]) == (first["id"], "running", True)

    assert (await report(api, first["id"], state="done", instances_seen=4, instances_gone=1)).status_code == 204
    after = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"][0]
    assert after["id"] != first["id"] and not after["already_running"]
    assert len(await outbox(api, SweepRequested)) == 2


async def test_a_finished_sweeps_counts_are_seen_through_get(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    [sweep] = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"]
    await report(api, sweep["id"], state="running")
    await report(api, sweep["id"], state="done", instances_seen=12, instances_gone=3)

    response = await api.client.get(f"/api/v1/sweeps/{sweep['id']}", headers=tenant.admin.headers)

    assert response.status_code == 200, response.text
    seen = response.json()
    assert (seen["state"], seen["instances_seen"], seen["instances_gone"], seen["error"]) == ("done", 12, 3, None)
    assert seen["started_at"] is not None and seen["finished_at"] >= seen["started_at"]


async def test_a_failed_sweep_says_why_and_a_late_report_changes_nothing(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    [sweep] = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"]

    await report(api, sweep["id"], state="failed", error="us-east-1: AccessDenied")
    late = await report(api, sweep["id"], state="done", instances_seen=1, instances_gone=0)

    assert late.status_code == 204
    seen = (await api.client.get(f"/api/v1/sweeps/{sweep['id']}", headers=tenant.admin.headers)).json()
    assert (seen["state"], seen["error"], seen["instances_seen"]) == ("failed", "us-east-1: AccessDenied", None)


async def test_reports_are_checked(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    [sweep] = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"]

    assert (await report(api, sweep["id"], state="requested")).status_code == 422
    assert (await report(api, sweep["id"], state="done", instances_seen=-1)).status_code == 422
    assert (await report(api, sweep["id"], state="failed", error="x" * 1001)).status_code == 422
    assert (await report(api, 999_999, state="running")).status_code == 404
    seen = (await api.client.get(f"/api/v1/sweeps/{sweep['id']}", headers=tenant.admin.headers)).json()
    assert seen["state"] == "requested"


async def test_a_sweep_is_seen_only_by_its_accounts_admins(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    [sweep] = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"]
    path = f"/api/v1/sweeps/{sweep['id']}"

    assert (await api.client.get(path, headers=other_tenant.admin.headers)).status_code == 404
    assert (await api.client.get(path, headers=tenant.dev.headers)).status_code == 403


async def test_a_sweep_silent_past_the_bound_no_longer_blocks_a_new_one(
    api_settings: Callable[..., ApiSettings], tenant: Tenant
) -> None:
    async with running_api(api_settings(sweep_stale_seconds=60)) as api:
        cloud = await make_cloud_account(api, tenant)
        [stuck] = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"]
        await report(api, stuck["id"], state="running")
        fresh = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"][0]
        assert fresh["already_running"], "within the bound it still holds"
        async with transaction(api.sessions) as session:
            await session.execute(
                sa.text("UPDATE sweep SET started_at = started_at - interval '61 seconds'")
            )

        again = (await ask(api, tenant, cloud_account_id=cloud["id"])).json()["data"][0]

        assert again["id"] != stuck["id"] and not again["already_running"]
        old = (await api.client.get(f"/api/v1/sweeps/{stuck['id']}", headers=tenant.admin.headers)).json()
        assert old["state"] == "failed" and "60 s" in old["error"]
        assert len(await outbox(api, SweepRequested)) == 2
