"""The api's own metric: leases by state, counted in the database when /metrics is
scraped (one GROUP BY over the lease table's status index)."""

from __future__ import annotations

from prometheus_client import Gauge
from sqlalchemy import text

from zc_common.messages import LeaseStatus

from zc_api.runtime import ApiRuntime

LEASES = Gauge("zc_leases", "Leases by state (active, expired, reaping, reaped, released, exempt).", ["state"])

_COUNT_BY_STATUS = text("SELECT status, count(*) AS leases FROM lease GROUP BY status")


async def count_leases(runtime: ApiRuntime) -> None:
    """Bring the gauge up to date; every state is set, 0 when no lease is in it."""
    async with runtime.engine.connect() as connection:
        rows = (await connection.execute(_COUNT_BY_STATUS)).all()
    counts = {str(row.status): int(row.leases) for row in rows}
    for state in [status.value for status in LeaseStatus] + sorted(set(counts) - {s.value for s in LeaseStatus}):
        LEASES.labels(state).set(counts.get(state, 0))
