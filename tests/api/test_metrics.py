"""The api's /metrics: leases by state, counted in the database at scrape time."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from zc_common.messages import LeaseStatus

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease


async def leases_gauge(api: Api) -> dict[str, float]:
    answer = await api.internal.get("/metrics")
    assert answer.status_code == 200, answer.text
    return {
        sample.labels["state"]: sample.value
        for family in text_string_to_metric_families(answer.text)
        if family.name == "zc_leases"
        for sample in family.samples
    }


async def leases_in_database(api: Api) -> dict[str, int]:
    async with api.sessions() as session:
        rows = (await session.execute(text("SELECT status, count(*) FROM lease GROUP BY status"))).all()
    return {str(status): int(count) for status, count in rows}


async def test_leases_gauge_matches_the_database_at_every_scrape(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    for status, count in [("active", 3), ("expired", 2), ("reaped", 1)]:
        for _ in range(count):
            await make_lease(api, cloud, tenant.dev, status=status)

    first = await leases_gauge(api)

    assert first == {status.value: float((await leases_in_database(api)).get(status.value, 0)) for status in LeaseStatus}
    assert (first["active"], first["expired"], first["reaped"], first["exempt"]) == (3, 2, 1, 0)

    await make_lease(api, cloud, tenant.dev, status="exempt")
    again = await leases_gauge(api)

    assert again["exempt"] == 1 and again["active"] == 3
