"""The statements ingestion runs, one per table per step whatever the batch size: arrays
bound as parameters and unnested in SQL, so each statement has one fixed text
(prepared once per connection) and no parameter limit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.messages import ActionOnExpiry, CloudAccountMode, InstanceState, LeaseStatus, ResourceChange

from zc_api import bulk
from zc_api.cloudaccounts.claims import in_force
from zc_api.ingest.owners import NewLease
from zc_api.leases.policy import warn_at
from zc_api.models import AccountPolicy, AuditEvent, CloudAccount, Lease, Resource

# A snapshot-less change (AWS no longer lists the instance) is recorded as terminated.
UNLISTED_STATE = InstanceState.terminated

# The partial unique index that allows one live lease per resource (ON CONFLICT's target).
_LIVE_LEASE_INDEX = next(index for index in bulk.table(Lease).indexes if index.name == "uq_lease_live_resource")


@dataclass(frozen=True)
class CloudAccountRef:
    id: int
    account_id: int
    upstream_account_id: str
    name: str
    mode: CloudAccountMode
    action_on_expiry: ActionOnExpiry  # the account policy's


@dataclass(frozen=True)
class KnownResource:
    """A resource as recorded before this batch (locked until the transaction ends)."""

    id: int
    region: str
    state: InstanceState
    gone: bool
    instance_type: str | None
    name: str | None
    tags: dict[str, str]
    leased: bool  # holds a live lease
    last_lease_ended_at: datetime | None


_CLOUD = bulk.table(CloudAccount).alias("c")
_POLICY = bulk.table(AccountPolicy)
_CLOUD_ACCOUNTS = (
    sa.select(
        _CLOUD.c.id, _CLOUD.c.account_id, _CLOUD.c.upstream_account_id, _CLOUD.c.name, _CLOUD.c.mode,
        sa.func.coalesce(_POLICY.c.action_on_expiry, sa.literal(ActionOnExpiry.stop, _POLICY.c.action_on_expiry.type)),
    )
    .select_from(_CLOUD.outerjoin(_POLICY, _POLICY.c.account_id == _CLOUD.c.account_id))
    .where(_CLOUD.c.upstream_account_id == sa.any_(bulk.array("ids", _CLOUD.c.upstream_account_id)))
    .where(in_force(_CLOUD))
)


async def cloud_accounts(session: AsyncSession, upstream_ids: set[str]) -> dict[str, CloudAccountRef]:
    """The cloud accounts in force among ``upstream_ids`` (at most one each), by upstream id."""
    rows = await session.execute(_CLOUD_ACCOUNTS, {"ids": sorted(upstream_ids)})
    return {row.upstream_account_id: CloudAccountRef(*row) for row in rows}


_RESOURCE = bulk.table(Resource)
_LEASE = bulk.table(Lease)
_PAST_LEASE = _LEASE.alias("l")
_KEYS = bulk.unnest("k", _RESOURCE.c.cloud_account_id, _RESOURCE.c.instance_id)
_LOCK_KNOWN = (
    sa.select(
        _RESOURCE.c.id, _RESOURCE.c.cloud_account_id, _RESOURCE.c.instance_id, _RESOURCE.c.region,
        _RESOURCE.c.state, _RESOURCE.c.gone, _RESOURCE.c.instance_type, _RESOURCE.c.name, _RESOURCE.c.tags,
        sa.exists()
        .where(_PAST_LEASE.c.resource_id == _RESOURCE.c.id, bulk.is_live(_PAST_LEASE.c.status))
        .label("leased"),
        sa.select(sa.func.max(sa.func.coalesce(_PAST_LEASE.c.ended_at, _PAST_LEASE.c.reaped_at,
                                               _PAST_LEASE.c.updated_at)))
        .where(_PAST_LEASE.c.resource_id == _RESOURCE.c.id, sa.not_(bulk.is_live(_PAST_LEASE.c.status)))
        .scalar_subquery()
        .label("last_lease_ended_at"),
    )
    .join_from(
        _RESOURCE, _KEYS,
        sa.and_(_RESOURCE.c.cloud_account_id == _KEYS.c.cloud_account_id,
                _RESOURCE.c.instance_id == _KEYS.c.instance_id),
    )
    .order_by(_RESOURCE.c.id)
    .with_for_update(of=_RESOURCE)
)


async def lock_known(
    session: AsyncSession, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], KnownResource]:
    """The batch's resources as recorded, by (cloud account id, instance id); locked in id
    order, so concurrent batches touching the same instances queue up in one order."""
    rows = await session.execute(
        _LOCK_KNOWN, {"cloud_account_id": [k[0] for k in keys], "instance_id": [k[1] for k in keys]}
    )
    return {
        (row.cloud_account_id, row.instance_id): KnownResource(
            id=row.id, region=row.region, state=row.state, gone=row.gone, instance_type=row.instance_type, name=row.name,
            tags=row.tags, leased=row.leased, last_lease_ended_at=row.last_lease_ended_at,
        )
        for row in rows
    }


# An observation never overwrites a newer one, nor one of another region (the WHERE: a
# resource's region never changes); a snapshot-less one (AWS no longer lists the
# instance: instance_type is NULL) keeps what was known about it.
# Rows go in key order so that concurrent inserts of the same new instances cannot deadlock.
_OBSERVED = bulk.unnest(
    "v", *(_RESOURCE.c[key] for key in ("account_id", "cloud_account_id", "region", "instance_id", "instance_type",
                                        "state", "name", "tags", "launch_time", "gone", "observed_at"))
)
_NEW_RESOURCES = pg.insert(_RESOURCE).from_select(
    [*_OBSERVED.c.keys(), "first_seen_at"],
    sa.select(*_OBSERVED.c, sa.bindparam("now", type_=_RESOURCE.c.first_seen_at.type))
    .order_by(_OBSERVED.c.cloud_account_id, _OBSERVED.c.instance_id),
    include_defaults=False,
)
_SNAPSHOTLESS = _NEW_RESOURCES.excluded.instance_type.is_(None)
_UPSERT_RESOURCES = _NEW_RESOURCES.on_conflict_do_update(
    index_elements=[_RESOURCE.c.cloud_account_id, _RESOURCE.c.instance_id],
    set_={
        "instance_type": sa.func.coalesce(_NEW_RESOURCES.excluded.instance_type, _RESOURCE.c.instance_type),
        "state": _NEW_RESOURCES.excluded.state,
        "name": sa.case((_SNAPSHOTLESS, _RESOURCE.c.name), else_=_NEW_RESOURCES.excluded.name),
        "tags": sa.case((_SNAPSHOTLESS, _RESOURCE.c.tags), else_=_NEW_RESOURCES.excluded.tags),
        "launch_time": sa.func.coalesce(_NEW_RESOURCES.excluded.launch_time, _RESOURCE.c.launch_time),
        "gone": _NEW_RESOURCES.excluded.gone,
        "observed_at": _NEW_RESOURCES.excluded.observed_at,
    },
    where=sa.and_(_RESOURCE.c.observed_at < _NEW_RESOURCES.excluded.observed_at,
                  _RESOURCE.c.region == _NEW_RESOURCES.excluded.region),
).returning(
    _RESOURCE.c.id, _RESOURCE.c.cloud_account_id, _RESOURCE.c.instance_id, _RESOURCE.c.state, _RESOURCE.c.gone,
    bulk.xmax_is_zero(Resource).label("inserted"),
)


async def upsert_resources(
    session: AsyncSession, rows: Sequence[tuple[CloudAccountRef, ResourceChange]], now: datetime
) -> list[Any]:
    """Record each observation unless a newer one is recorded; returns the rows written
    (id, cloud_account_id, instance_id, state, gone, inserted)."""
    columns: dict[str, list[Any]] = {key: [] for key in _OBSERVED.c.keys()}
    for cloud, change in rows:
        instance = change.instance
        columns["account_id"].append(cloud.account_id)
        columns["cloud_account_id"].append(cloud.id)
        columns["region"].append(change.aws_region)
        columns["instance_id"].append(change.instance_id)
        columns["instance_type"].append(instance.instance_type if instance else None)
        columns["state"].append(instance.state if instance else UNLISTED_STATE)
        columns["name"].append(instance.name if instance else None)
        columns["tags"].append(instance.tags if instance else {})
        columns["launch_time"].append(instance.launch_time if instance else None)
        # Gone is what AWS said (terminated, shutting down, unlisted), whatever the flag.
        columns["gone"].append(change.gone or instance is None or instance.state.is_gone)
        columns["observed_at"].append(change.observed_at)
    return list((await session.execute(_UPSERT_RESOURCES, {**columns, "now": now})).all())


# ON CONFLICT ... DO NOTHING on the partial unique index is what makes a second live
# lease for the same resource impossible, whoever else is inserting one right now.
_PLANNED = bulk.unnest(
    "v", *(_LEASE.c[key] for key in ("resource_id", "account_id", "cloud_account_id", "owner_user_id", "owner_email",
                                     "owner_reason", "expires_at", "over_quota", "created_by_message_id", "warn_by"))
)
_NOW = sa.bindparam("now", type_=_LEASE.c.created_at.type)
_INSERT_LEASES = (
    pg.insert(_LEASE)
    .from_select(
        [*_PLANNED.c.keys(), "version", "status", "created_at", "updated_at"],
        sa.select(
            *_PLANNED.c, sa.literal(1, _LEASE.c.version.type), sa.literal(LeaseStatus.active, _LEASE.c.status.type),
            _NOW, _NOW,
        ).order_by(_PLANNED.c.resource_id),
        include_defaults=False,
    )
    .on_conflict_do_nothing(constraint=_LIVE_LEASE_INDEX)
    .returning(*(_LEASE.c[key] for key in ("id", "resource_id", "version", "status", "owner_email", "expires_at",
                                           "account_id", "cloud_account_id")))
)


async def insert_leases(
    session: AsyncSession, leases: Sequence[NewLease], message_ids: dict[int, UUID], now: datetime
) -> list[tuple[Any, NewLease]]:
    """Insert the leases (``message_ids``: the change that caused each, by resource id);
    returns only those really created, each with its plan."""
    if not leases:
        return []
    rows = await session.execute(
        _INSERT_LEASES,
        {
            "now": now,
            "resource_id": [lease.resource_id for lease in leases],
            "account_id": [lease.account_id for lease in leases],
            "cloud_account_id": [lease.cloud_account_id for lease in leases],
            "owner_user_id": [lease.owner.user_id for lease in leases],
            "owner_email": [lease.owner.email for lease in leases],
            "owner_reason": [lease.owner.reason[:500] for lease in leases],
            "expires_at": [lease.expires_at for lease in leases],
            "over_quota": [lease.over_quota for lease in leases],
            "created_by_message_id": [message_ids[lease.resource_id] for lease in leases],
            # The last warning the lease's first schedule plans (what lease_changed puts in
            # its warn_at): the reaper's claim waits for it to be delivered.
            "warn_by": [
                max(warn_at(lease.expires_at, lease.policy.warning_seconds, now=now), default=None) for lease in leases
            ],
        },
    )
    planned = {lease.resource_id: lease for lease in leases}
    return [(row, planned[row.resource_id]) for row in rows.all()]


_LIVE = (
    sa.select(_LEASE.c.id, _LEASE.c.status)
    .where(_LEASE.c.resource_id == sa.any_(bulk.array("resource_ids", _LEASE.c.resource_id)),
           bulk.is_live(_LEASE.c.status))
    .order_by(_LEASE.c.id)
    .with_for_update()
    .cte("live")
)
_RELEASE_LEASES = (
    sa.update(_LEASE)
    .values(status=LeaseStatus.released, version=_LEASE.c.version + 1, ended_at=_NOW, updated_at=_NOW, warn_by=None,
            warned_at=None)
    .where(_LEASE.c.id == _LIVE.c.id)
    .returning(*(_LEASE.c[key] for key in ("id", "resource_id", "version", "status", "owner_email", "expires_at",
                                           "account_id", "cloud_account_id")),
               _LIVE.c.status.label("previous_status"))
)


async def release_leases(session: AsyncSession, resource_ids: Sequence[int], now: datetime) -> list[Any]:
    """Release the live leases of these resources (a new version each); returns them."""
    if not resource_ids:
        return []
    rows = await session.execute(_RELEASE_LEASES, {"resource_ids": list(resource_ids), "now": now})
    return list(rows.all())


class AuditRows:
    """Audit events collected during a batch and written with one statement."""

    _COLUMNS = ("account_id", "actor", "action", "subject_type", "subject_id", "reason", "message_id", "details")
    _VALUES = bulk.unnest("v", *(bulk.table(AuditEvent).c[key] for key in _COLUMNS), serialized={"details"})
    _INSERT = pg.insert(bulk.table(AuditEvent)).from_select(
        [*_COLUMNS, "at"], sa.select(*_VALUES.c, sa.bindparam("now", type_=bulk.table(AuditEvent).c.at.type)),
        include_defaults=False,
    )

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, str, str, int, str | None, UUID, str]] = []

    def add(
        self, *, account_id: int, actor: str, message_id: UUID, action: str, subject_type: str,
        subject_id: int, reason: str | None, **details: Any,
    ) -> None:
        self.rows.append(
            (account_id, actor, action, subject_type, subject_id, reason, message_id,
             json.dumps(details, default=str))
        )

    async def insert(self, session: AsyncSession, now: datetime) -> None:
        if not self.rows:
            return
        columns = {name: list(column) for name, column in zip(self._COLUMNS, zip(*self.rows))}
        await session.execute(self._INSERT, {"now": now, **columns})
