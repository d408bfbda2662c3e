"""An account at a glance, for its admins: leases by status now, instances by lease state
day by day, and the spend avoided by reaping (priced with the shipped price table)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotFound
from zc_common.messages import utcnow

from zc_api import bulk
from zc_api.auth.principal import Principal
from zc_api.models import Lease, Resource
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
_LEASE = bulk.table(Lease)
_FIRST = sa.bindparam("first", type_=_LEASE.c.created_at.type)
_NOW = sa.bindparam("now", type_=_LEASE.c.created_at.type)
_DAY = sa.literal_column("interval '24 hours'", sa.Interval)


def _state_at(lease: sa.FromClause, at: sa.ColumnElement[datetime]) -> sa.ColumnElement[str]:
    def state(name: str) -> sa.ColumnElement[str]:
        return sa.literal_column(f"'{name}'", sa.String)

    return sa.case(
        (sa.and_(lease.c.reaped_at.is_not(None), lease.c.reaped_at < at), state("reaped")),
        (sa.and_(lease.c.ended_at.is_not(None), lease.c.ended_at < at), state("released")),
        (lease.c.status == sa.literal_column("'exempt'"), state("exempt")),
        (lease.c.expires_at <= at, state("expired")),
        else_=state("active"),
    )


@functools.lru_cache(maxsize=8)
def _states_per_day(days: int) -> sa.Select[datetime, str, int]:
    n = sa.func.generate_series(sa.literal_column("0"), sa.literal_column(str(int(days) - 1))).column_valued("n")
    moments = sa.select(
        (_FIRST + n * _DAY).label("day_start"),
        sa.func.least(_FIRST + (n + sa.literal_column("1")) * _DAY, _NOW).label("at"),
    ).cte("moments")
    leases = (
        sa.select(_LEASE.c.created_at, _LEASE.c.expires_at, _LEASE.c.ended_at, _LEASE.c.reaped_at, _LEASE.c.status)
        .where(
            _LEASE.c.account_id == sa.bindparam("account_id", type_=_LEASE.c.account_id.type),
            _LEASE.c.created_at < _NOW,
            sa.or_(_LEASE.c.ended_at.is_(None), _LEASE.c.ended_at >= _FIRST),
        )
        .cte("leases")
    )
    m, lease = moments.alias("m"), leases.alias("l")
    s = sa.select(_state_at(lease, m.c.at).label("state")).correlate(m, lease).lateral("s")
    return (
        sa.select(m.c.day_start, s.c.state, sa.func.count().label("n"))
        .select_from(
            m.join(lease, sa.and_(lease.c.created_at < m.c.at,
                                  sa.or_(lease.c.ended_at.is_(None), lease.c.ended_at >= m.c.day_start)))
            .join(s, sa.true())
        )
        .group_by(m.c.day_start, s.c.state)
    )


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
def _avoided() -> sa.Select[str | None, str, int, Decimal | None, Decimal | None]:
    account_id = sa.bindparam("account_id", type_=_LEASE.c.account_id.type)
    reaped = (
        sa.select(_LEASE.c.id, _LEASE.c.resource_id, _LEASE.c.reaped_at)
        .where(_LEASE.c.account_id == account_id, _LEASE.c.status == sa.literal_column("'reaped'"),
               _LEASE.c.reaped_at.is_not(None))
        .cte("reaped")
    )
    p, n = reaped.alias("p"), _LEASE.alias("n")
    restarted = (
        sa.select(p.c.id, sa.func.min(n.c.created_at).label("at"))
        .join_from(p, n, sa.and_(n.c.resource_id == p.c.resource_id, n.c.created_at > p.c.reaped_at))
        .where(n.c.account_id == account_id)
        .group_by(p.c.id)
        .cte("restarted")
    )
    s = restarted.alias("s")
    cap = sa.bindparam("cap", type_=sa.Interval)
    windows = (
        sa.select(
            p.c.resource_id, p.c.reaped_at,
            sa.func.greatest(p.c.reaped_at, sa.func.least(_NOW, p.c.reaped_at + cap, s.c.at)).label("until"),
        )
        .select_from(p.outerjoin(s, s.c.id == p.c.id))
        .cte("windows")
    )
    w, r = windows.alias("w"), bulk.table(Resource).alias("r")
    month = sa.bindparam("month", type_=_LEASE.c.created_at.type)
    in_month = sa.func.greatest(w.c.until - sa.func.greatest(w.c.reaped_at, month),
                                sa.literal_column("interval '0'", sa.Interval))
    return (
        sa.select(
            r.c.instance_type, r.c.region, sa.func.count().label("reaped"),
            sa.func.sum(sa.extract("epoch", w.c.until - w.c.reaped_at), type_=sa.Numeric()).label("seconds"),
            sa.func.sum(sa.extract("epoch", in_month), type_=sa.Numeric()).label("month_seconds"),
        )
        .join_from(w, r, r.c.id == w.c.resource_id)
        .group_by(r.c.instance_type, r.c.region)
    )


_AVOIDED = _avoided()


async def spend_avoided(session: AsyncSession, *, caller: Principal, now: datetime | None = None) -> SpendAvoided:
    """Spend avoided by reaping, in all and in the current calendar month (UTC)."""
    account_id = _account_of(caller)
    now = now or utcnow()
    month = datetime.combine(now.astimezone(timezone.utc).date().replace(day=1), time(), tzinfo=timezone.utc)
    rows = await session.execute(
        _AVOIDED, {"account_id": account_id, "now": now, "month": month, "cap": AVOIDED_CAP}
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
