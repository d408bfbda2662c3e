"""The api's own metric: leases by state, counted in the database when /metrics is
scraped (one GROUP BY over the lease table's status index)."""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import Gauge

from zc_common.messages import LeaseStatus

from zc_api import bulk
from zc_api.models import Lease
from zc_api.runtime import ApiRuntime

LEASES = Gauge("zc_leases", "Leases by state (active, expired, reaping, reaped, released, exempt).", ["state"])

_LEASE = bulk.table(Lease)
_COUNT_BY_STATUS = sa.select(_LEASE.c.status, sa.func.count().label("leases")).group_by(_LEASE.c.status)


async def count_leases(runtime: ApiRuntime) -> None:
    """Bring the gauge up to date; every state is set, 0 when no lease is in it."""
    async with runtime.engine.connect() as connection:
        rows = (await connection.execute(_COUNT_BY_STATUS)).all()
    counts: dict[LeaseStatus, int] = {row.status: int(row.leases) for row in rows}  # read back as members
    for status in LeaseStatus:  # the CHECK constraint admits no other status
        LEASES.labels(status.value).set(counts.get(status, 0))
