"""What an instance costs, estimated from the price table shipped with ZeroCloud
(prices.csv: on-demand Linux list prices per instance type and region): the cost of a
lease's instance so far, and the spend avoided by reaping it."""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from importlib.resources import files

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.messages import InstanceState, LeaseStatus

from zc_api.models import AuditEvent, Lease, Resource

# Spend avoided by a reaped instance is counted at most this long: after a month nobody
# can claim it would still have been running.
AVOIDED_CAP = timedelta(days=30)
_HOUR = Decimal(3600)


@functools.lru_cache(maxsize=1)
def price_table() -> dict[tuple[str, str], Decimal]:
    """(instance type, region) → USD per hour, read once from prices.csv."""
    text = files("zc_api.pricing").joinpath("prices.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {(row["instance_type"].strip(), row["region"].strip()): Decimal(row["usd_per_hour"]) for row in rows}


def hourly_price(instance_type: str | None, region: str | None) -> Decimal | None:
    """The on-demand price per hour; None when the table does not know the pair."""
    if not instance_type or not region:
        return None
    return price_table().get((instance_type.strip().lower(), region.strip().lower()))


def _hours(start: datetime, end: datetime) -> Decimal:
    seconds = max((end - start).total_seconds(), 0.0)
    return Decimal(str(seconds)) / _HOUR


def _running(resource: Resource) -> bool:
    try:
        return InstanceState(resource.state).is_live
    except ValueError:
        return False


def billed_window(
    resource: Resource, lease: Lease, now: datetime, *, stopped_at: datetime | None = None
) -> tuple[datetime, datetime] | None:
    """When the lease's instance ran, as far as ZeroCloud knows: from its launch (or, if
    it was launched again after this lease began, from the lease's start; or when it was
    first seen) until now, or until it stopped, was reaped or the lease ended."""
    launched = resource.launch_time
    if launched is not None and lease.created_at is not None and launched > lease.created_at:
        launched = None  # a later start: not this lease's
    start = launched or lease.created_at or resource.first_seen_at
    if start is None:
        return None
    ends = [now, lease.reaped_at, lease.ended_at]
    if not _running(resource):
        # Stopped (or gone) by someone: it stopped costing when it stopped; the last
        # observation is the latest that can have been.
        ends.append(stopped_at or resource.observed_at)
    end = min(moment for moment in ends if moment is not None)
    return start, max(start, end)


def cost_so_far(
    resource: Resource, lease: Lease, now: datetime, *, stopped_at: datetime | None = None
) -> Decimal | None:
    """The estimated on-demand cost (USD) of the lease's instance so far; None when the
    price table has no price for its type and region."""
    price = hourly_price(resource.instance_type, resource.region)
    window = billed_window(resource, lease, now, stopped_at=stopped_at)
    if price is None or window is None:
        return None
    return price * _hours(*window)


def avoided_window(
    lease: Lease, now: datetime, *, restarted_at: datetime | None = None
) -> tuple[datetime, datetime] | None:
    """When a reaped instance would otherwise have kept running: from the reap until now,
    at most AVOIDED_CAP, and not past the moment it was started again (a new lease)."""
    if lease.status != LeaseStatus.reaped.value or lease.reaped_at is None:
        return None
    ends = [now, lease.reaped_at + AVOIDED_CAP]
    if restarted_at is not None and restarted_at > lease.reaped_at:
        ends.append(restarted_at)
    return lease.reaped_at, max(lease.reaped_at, min(ends))


def spend_avoided(
    resource: Resource, lease: Lease, now: datetime, *, restarted_at: datetime | None = None,
    since: datetime | None = None,
) -> Decimal | None:
    """What reaping the lease's instance saved (USD): its price for the hours from the
    reap until now, capped at 30 days (and at a restart); only the part after ``since``
    when given. Zero for a lease that was not reaped; None when there is no price."""
    window = avoided_window(lease, now, restarted_at=restarted_at)
    if window is None:
        return Decimal(0)
    price = hourly_price(resource.instance_type, resource.region)
    if price is None:
        return None
    start, end = window
    if since is not None:
        start = max(start, since)
    return price * _hours(start, max(start, end))


async def stopped_at(session: AsyncSession, resource_ids: Iterable[int]) -> dict[int, datetime]:
    """When each resource's state last changed (for a stopped one: when it stopped), from
    the audit log the ingestion writes."""
    ids = sorted(set(resource_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(col(AuditEvent.subject_id), func.max(col(AuditEvent.at)))
        .where(
            col(AuditEvent.subject_type) == "resource",
            col(AuditEvent.action) == "resource.state_changed",
            col(AuditEvent.subject_id).in_(ids),
        )
        .group_by(col(AuditEvent.subject_id))
    )
    return {subject_id: at for subject_id, at in rows.all() if subject_id is not None and at is not None}
