"""Reading leases: an admin sees the account's, a developer only their own."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import ColumnElement, Select, false, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotFound
from zc_common.messages import LIVE_LEASE_STATUSES, LeaseStatus

from zc_api.auth.principal import Principal
from zc_api.leases.policy import normalise_email
from zc_api.models import AuditEvent, Lease, Resource
from zc_api.pagination import KeysetRows, PageParams, SortKey, paginate_keyset

# Soonest expiry first; the id orders leases that expire at the same moment.
SOONEST_EXPIRY = SortKey(
    "leases:expires_at,id", (col(Lease.expires_at), col(Lease.id)), ("datetime", "int32")
)


def visible_to(caller: Principal) -> list[ColumnElement[bool]]:
    """The conditions under which ``caller`` may see a lease."""
    if caller.kind != "user" or caller.account_id is None:
        return [false()]
    conditions = [col(Lease.account_id) == caller.account_id]
    if not caller.is_admin:
        conditions.append(col(Lease.owner_user_id) == caller.user_id)
    return conditions


def _with_resource(caller: Principal) -> Select[Lease, Resource]:
    return (
        select(Lease, Resource)
        .join(Resource, col(Resource.id) == col(Lease.resource_id))
        .where(*visible_to(caller))
    )


async def get(session: AsyncSession, *, caller: Principal, lease_id: int) -> tuple[Lease, Resource]:
    row = (await session.execute(_with_resource(caller).where(col(Lease.id) == lease_id))).first()
    if row is None:
        raise NotFound(f"lease {lease_id} not found")
    return row[0], row[1]


async def get_all(
    session: AsyncSession,
    *,
    caller: Principal,
    page: PageParams,
    owner: str | None = None,
    status: LeaseStatus | None = None,
    cloud_account_id: int | None = None,
    expires_before: datetime | None = None,
    instance_id: str | None = None,
    region: str | None = None,
    live_only: bool = False,
) -> KeysetRows[Lease, Resource]:
    """Soonest expiry first. ``live_only``: the leases still holding their instance."""
    conditions = list(visible_to(caller))
    of_resource: list[ColumnElement[bool]] = []
    if owner is not None:
        conditions.append(col(Lease.owner_email) == normalise_email(owner))
    if status is not None:
        conditions.append(col(Lease.status) == status.value)
    if cloud_account_id is not None:
        conditions.append(col(Lease.cloud_account_id) == cloud_account_id)
    if expires_before is not None:
        if expires_before.tzinfo is None:  # a time without a zone is read as UTC
            expires_before = expires_before.replace(tzinfo=timezone.utc)
        conditions.append(col(Lease.expires_at) < expires_before)
    if instance_id is not None:
        of_resource.append(col(Resource.instance_id) == instance_id)
    if region is not None:
        of_resource.append(col(Resource.region) == region)
    if live_only:
        conditions.append(col(Lease.status).in_(sorted(s.value for s in LIVE_LEASE_STATUSES)))
    query = (
        select(Lease, Resource).join(Resource, col(Resource.id) == col(Lease.resource_id))
        .where(*conditions, *of_resource)
    )
    # The count needs the resource only when a filter is on it: without the join it reads
    # the lease index alone.
    counted = select(col(Lease.id)).where(*conditions)
    if of_resource:
        counted = counted.join(Resource, col(Resource.id) == col(Lease.resource_id)).where(*of_resource)
    return await paginate_keyset(session, query, page, SOONEST_EXPIRY, count_query=counted)


async def trail(session: AsyncSession, *, caller: Principal, lease_id: int, limit: int = 200) -> list[AuditEvent]:
    """What happened to a lease the caller can see (its owner too, not only admins):
    its audit events, oldest first."""
    lease, _ = await get(session, caller=caller, lease_id=lease_id)
    query = (
        select(AuditEvent)
        .where(
            col(AuditEvent.account_id) == lease.account_id, col(AuditEvent.subject_type) == "lease",
            col(AuditEvent.subject_id) == lease_id,
        )
        .order_by(col(AuditEvent.at), col(AuditEvent.id))
        .limit(limit)
    )
    return list((await session.scalars(query)).all())
