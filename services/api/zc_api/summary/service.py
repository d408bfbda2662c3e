"""An account at a glance, for its admins: leases by status now, instances by lease state
day by day, and the spend avoided by reaping (priced with the shipped price table)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from sqlalchemy import TextClause, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotFound
from zc_common.messages import utcnow

from zc_api.auth.principal import Principal
from zc_api.models import Lease
from zc_api.pricing.service import AVOIDED_CAP, hourly_price

# The states the daily chart tells apart. reaped/released count only the leases that
# ended that day; the others every lease in that state at the end of the day.
DAY_STATES = ("active", "expired", "exempt", "reaped", "released")


def _account_of(caller: Principal) -> int:
    if caller.account_id is None:
        raise NotFound("you are not in an account yet")
    caller.require_admin(caller.account_id)
    return caller.account_id


async def counts_by_status(session: AsyncSession, *, caller: Principal) -> dict[str, int]:
    """How many of the account's leases are in each status now."""
    account_id = _account_of(caller)
    rows = await session.execute(
        select(col(Lease.status), func.count())
        .where(col(Lease.account_id) == account_id)
        .group_by(col(Lease.status))
    )
    return {status: int(count) for status, count in rows.all()}


@dataclass(frozen=True)
class Day:
    day: date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# The state a lease was in at the end of each day (or now, for today), read from its
# timestamps: created, expires, reaped and ended. A renewal moves expires_at, so a lease
# renewed after it expired counts as active on the days between; an exemption counts
# from the lease's start. The chart says so.
# Days are 24 hours from a UTC midnight (not '1 day', which PostgreSQL stretches or shrinks
# across a DST change when the session's time zone is not UTC). The number of days is
# written into the statement, so the planner knows the series has that many rows (with
# bound values it guesses 1,000, and with 20,000 leases the cost it then foresees makes
# PostgreSQL compile the query with JIT: 4 times as slow).
_STATES_PER_DAY = """
    WITH moments AS (
        SELECT CAST(:first AS timestamptz) + n * interval '24 hours' AS day_start,
               least(CAST(:first AS timestamptz) + (n + 1) * interval '24 hours', CAST(:now AS timestamptz)) AS at
        FROM generate_series(0, {last}) AS n
    ), leases AS (
        SELECT l.created_at, l.expires_at, l.ended_at, l.reaped_at, l.status
        FROM lease l
        WHERE l.account_id = :account_id AND l.created_at < CAST(:now AS timestamptz)
          AND (l.ended_at IS NULL OR l.ended_at >= CAST(:first AS timestamptz))
    )
    SELECT m.day_start, s.state, count(*) AS n
    FROM moments m
    JOIN leases l ON l.created_at < m.at AND (l.ended_at IS NULL OR l.ended_at >= m.day_start)
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN l.reaped_at IS NOT NULL AND l.reaped_at < m.at THEN 'reaped'
            WHEN l.ended_at IS NOT NULL AND l.ended_at < m.at THEN 'released'
            WHEN l.status = 'exempt' THEN 'exempt'
            WHEN l.expires_at <= m.at THEN 'expired'
            ELSE 'active'
        END AS state
    ) s
    GROUP BY m.day_start, s.state
"""


@functools.lru_cache(maxsize=8)
def _states_per_day(days: int) -> TextClause:
    return text(_STATES_PER_DAY.format(last=int(days) - 1))


async def states_per_day(
    session: AsyncSession, *, caller: Principal, days: int = 14, now: datetime | None = None
) -> list[Day]:
    """The account's instances by lease state at the end of each of the last ``days``
    days (UTC; today until now), oldest first."""
    account_id = _account_of(caller)
    now = now or utcnow()
    today = datetime.combine(now.astimezone(timezone.utc).date(), time(), tzinfo=timezone.utc)
    first = today - timedelta(days=days - 1)
    if days < 1:
        raise ValueError("days must be at least 1")
    rows = await session.execute(_states_per_day(days), {"account_id": account_id, "first": first, "now": now})
    counts: dict[date, dict[str, int]] = {
        (first + timedelta(days=i)).date(): dict.fromkeys(DAY_STATES, 0) for i in range(days)
    }
    for day_start, state, n in rows.all():
        counts[day_start.astimezone(timezone.utc).date()][state] = int(n)
    return [Day(day=day, counts=by_state) for day, by_state in sorted(counts.items())]


@dataclass
class SpendAvoided:
    """USD not spent because instances were reaped (see pricing.service.spend_avoided)."""

    total: Decimal = Decimal(0)
    this_month: Decimal = Decimal(0)
    reaped: int = 0
    unpriced: int = 0  # reaped instances whose type and region the price table does not know


# Per instance type and region: the seconds each reaped instance would otherwise have run
# (from the reap until now, at most AVOIDED_CAP, not past a restart: the first lease of the
# same resource created after the reap), in all and this month. The restarts are one hash
# join of the reaped leases with the account's leases, not a lookup per reaped lease (there
# is no index on lease.resource_id for all statuses: that was a scan of the table each).
_AVOIDED = text(
    """
    WITH reaped AS (
        SELECT l.id, l.resource_id, l.reaped_at
        FROM lease l
        WHERE l.account_id = :account_id AND l.status = 'reaped' AND l.reaped_at IS NOT NULL
    ), restarted AS (
        SELECT p.id, min(n.created_at) AS at
        FROM reaped p
        JOIN lease n ON n.resource_id = p.resource_id AND n.created_at > p.reaped_at
        WHERE n.account_id = :account_id
        GROUP BY p.id
    ), windows AS (
        SELECT p.resource_id, p.reaped_at, greatest(p.reaped_at, least(
            CAST(:now AS timestamptz), p.reaped_at + make_interval(secs => :cap_seconds), s.at
        )) AS until
        FROM reaped p
        LEFT JOIN restarted s ON s.id = p.id
    )
    SELECT r.instance_type, r.region, count(*) AS reaped,
           sum(extract(epoch FROM w.until - w.reaped_at)) AS seconds,
           sum(extract(epoch FROM greatest(w.until - greatest(w.reaped_at, CAST(:month AS timestamptz)),
                                           interval '0'))) AS month_seconds
    FROM windows w
    JOIN resource r ON r.id = w.resource_id
    GROUP BY r.instance_type, r.region
    """
)


async def spend_avoided(session: AsyncSession, *, caller: Principal, now: datetime | None = None) -> SpendAvoided:
    """Spend avoided by reaping, in all and in the current calendar month (UTC)."""
    account_id = _account_of(caller)
    now = now or utcnow()
    month = datetime.combine(now.astimezone(timezone.utc).date().replace(day=1), time(), tzinfo=timezone.utc)
    rows = await session.execute(
        _AVOIDED, {"account_id": account_id, "now": now, "month": month,
         "cap_seconds": AVOIDED_CAP.total_seconds()}
    )
    result = SpendAvoided()
    for instance_type, region, reaped, seconds, month_seconds in rows.all():
        result.reaped += int(reaped)
        price = hourly_price(instance_type, region)
        if price is None:
            result.unpriced += int(reaped)
            continue
        result.total += price * Decimal(seconds or 0) / 3600
        result.this_month += price * Decimal(month_seconds or 0) / 3600
    return result
