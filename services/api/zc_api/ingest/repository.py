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

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.messages import InstanceState, LeaseStatus, ResourceChange

from zc_api.cloudaccounts.claims import in_force_sql
from zc_api.ingest.owners import NewLease
from zc_api.models import LIVE_STATUSES_SQL

# A snapshot-less change (AWS no longer lists the instance) is recorded as terminated.
UNLISTED_STATE = InstanceState.terminated.value


@dataclass(frozen=True)
class CloudAccountRef:
    id: int
    account_id: int
    upstream_account_id: str
    name: str
    mode: str
    action_on_expiry: str  # the account policy's


@dataclass(frozen=True)
class KnownResource:
    """A resource as recorded before this batch (locked until the transaction ends)."""

    id: int
    region: str
    state: str
    gone: bool
    instance_type: str | None
    name: str | None
    tags: dict[str, str]
    leased: bool  # holds a live lease
    last_lease_ended_at: datetime | None


_CLOUD_ACCOUNTS = text(
    "SELECT c.id, c.account_id, c.upstream_account_id, c.name, c.mode, coalesce(p.action_on_expiry, 'stop')"
    " FROM cloud_account c LEFT JOIN account_policy p ON p.account_id = c.account_id"
    " WHERE c.upstream_account_id = ANY(CAST(:ids AS text[])) AND " + in_force_sql("c")
)


async def cloud_accounts(session: AsyncSession, upstream_ids: set[str]) -> dict[str, CloudAccountRef]:
    """The cloud accounts in force among ``upstream_ids`` (at most one each), by upstream id."""
    rows = await session.execute(_CLOUD_ACCOUNTS, {"ids": sorted(upstream_ids)})
    return {row.upstream_account_id: CloudAccountRef(*row) for row in rows}


_LOCK_KNOWN = text(
    f"""
    SELECT r.id, r.cloud_account_id, r.instance_id, r.region, r.state, r.gone, r.instance_type, r.name, r.tags,
           EXISTS (SELECT 1 FROM lease l WHERE l.resource_id = r.id AND l.{LIVE_STATUSES_SQL}) AS leased,
           (SELECT max(coalesce(l.ended_at, l.reaped_at, l.updated_at)) FROM lease l
             WHERE l.resource_id = r.id AND NOT l.{LIVE_STATUSES_SQL}) AS last_lease_ended_at
    FROM resource r
    JOIN unnest(CAST(:cloud_account_ids AS int[]), CAST(:instance_ids AS text[]))
         AS k(cloud_account_id, instance_id)
      ON r.cloud_account_id = k.cloud_account_id AND r.instance_id = k.instance_id
    ORDER BY r.id
    FOR UPDATE OF r
    """
)


async def lock_known(
    session: AsyncSession, keys: Sequence[tuple[int, str]]
) -> dict[tuple[int, str], KnownResource]:
    """The batch's resources as recorded, by (cloud account id, instance id); locked in id
    order, so concurrent batches touching the same instances queue up in one order."""
    rows = await session.execute(
        _LOCK_KNOWN, {"cloud_account_ids": [k[0] for k in keys], "instance_ids": [k[1] for k in keys]}
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
_UPSERT_RESOURCES = text(
    """
    INSERT INTO resource AS r (account_id, cloud_account_id, region, instance_id, instance_type, state, name,
                               tags, launch_time, gone, first_seen_at, observed_at)
    SELECT v.account_id, v.cloud_account_id, v.region, v.instance_id, v.instance_type, v.state, v.name,
           v.tags, v.launch_time, v.gone, CAST(:now AS timestamptz), v.observed_at
    FROM unnest(CAST(:account_ids AS int[]), CAST(:cloud_account_ids AS int[]), CAST(:regions AS text[]),
                CAST(:instance_ids AS text[]), CAST(:instance_types AS text[]), CAST(:states AS text[]),
                CAST(:names AS text[]), CAST(:tags AS jsonb[]), CAST(:launch_times AS timestamptz[]),
                CAST(:gones AS boolean[]), CAST(:observed_ats AS timestamptz[]))
         AS v(account_id, cloud_account_id, region, instance_id, instance_type, state, name, tags,
              launch_time, gone, observed_at)
    ORDER BY v.cloud_account_id, v.instance_id
    ON CONFLICT (cloud_account_id, instance_id) DO UPDATE SET
        instance_type = coalesce(excluded.instance_type, r.instance_type),
        state = excluded.state,
        name = CASE WHEN excluded.instance_type IS NULL THEN r.name ELSE excluded.name END,
        tags = CASE WHEN excluded.instance_type IS NULL THEN r.tags ELSE excluded.tags END,
        launch_time = coalesce(excluded.launch_time, r.launch_time),
        gone = excluded.gone,
        observed_at = excluded.observed_at
    WHERE r.observed_at < excluded.observed_at AND r.region = excluded.region
    RETURNING r.id, r.cloud_account_id, r.instance_id, r.state, r.gone, (r.xmax = 0) AS inserted
    """
)


async def upsert_resources(
    session: AsyncSession, rows: Sequence[tuple[CloudAccountRef, ResourceChange]], now: datetime
) -> list[Any]:
    """Record each observation unless a newer one is recorded; returns the rows written
    (id, cloud_account_id, instance_id, state, gone, inserted)."""
    columns: dict[str, list[Any]] = {
        name: [] for name in ("account_ids", "cloud_account_ids", "regions", "instance_ids", "instance_types",
                              "states", "names", "tags", "launch_times", "gones", "observed_ats")
    }
    for cloud, change in rows:
        instance = change.instance
        columns["account_ids"].append(cloud.account_id)
        columns["cloud_account_ids"].append(cloud.id)
        columns["regions"].append(change.aws_region)
        columns["instance_ids"].append(change.instance_id)
        columns["instance_types"].append(instance.instance_type if instance else None)
        columns["states"].append(instance.state.value if instance else UNLISTED_STATE)
        columns["names"].append(instance.name if instance else None)
        columns["tags"].append(json.dumps(instance.tags if instance else {}))
        columns["launch_times"].append(instance.launch_time if instance else None)
        # Gone is what AWS said (terminated, shutting down, unlisted), whatever the flag.
        columns["gones"].append(change.gone or instance is None or instance.state.is_gone)
        columns["observed_ats"].append(change.observed_at)
    return list((await session.execute(_UPSERT_RESOURCES, {**columns, "now": now})).all())


# ON CONFLICT ... DO NOTHING on the partial unique index is what makes a second live
# lease for the same resource impossible, whoever else is inserting one right now.
_INSERT_LEASES = text(
    f"""
    INSERT INTO lease (resource_id, account_id, cloud_account_id, owner_user_id, owner_email, owner_reason,
                       expires_at, version, status, over_quota, created_by_message_id, created_at, updated_at)
    SELECT v.resource_id, v.account_id, v.cloud_account_id, v.owner_user_id, v.owner_email, v.owner_reason,
           v.expires_at, 1, '{LeaseStatus.active.value}', v.over_quota, v.message_id,
           CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM unnest(CAST(:resource_ids AS int[]), CAST(:account_ids AS int[]), CAST(:cloud_account_ids AS int[]),
                CAST(:owner_user_ids AS int[]), CAST(:owner_emails AS text[]), CAST(:owner_reasons AS text[]),
                CAST(:expires_ats AS timestamptz[]), CAST(:over_quotas AS boolean[]),
                CAST(:message_ids AS uuid[]))
         AS v(resource_id, account_id, cloud_account_id, owner_user_id, owner_email, owner_reason, expires_at,
              over_quota, message_id)
    ORDER BY v.resource_id
    ON CONFLICT (resource_id) WHERE {LIVE_STATUSES_SQL} DO NOTHING
    RETURNING id, resource_id, version, status, owner_email, expires_at, account_id, cloud_account_id
    """
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
            "resource_ids": [lease.resource_id for lease in leases],
            "account_ids": [lease.account_id for lease in leases],
            "cloud_account_ids": [lease.cloud_account_id for lease in leases],
            "owner_user_ids": [lease.owner.user_id for lease in leases],
            "owner_emails": [lease.owner.email for lease in leases],
            "owner_reasons": [lease.owner.reason[:500] for lease in leases],
            "expires_ats": [lease.expires_at for lease in leases],
            "over_quotas": [lease.over_quota for lease in leases],
            "message_ids": [message_ids[lease.resource_id] for lease in leases],
        },
    )
    planned = {lease.resource_id: lease for lease in leases}
    return [(row, planned[row.resource_id]) for row in rows.all()]


_RELEASE_LEASES = text(
    f"""
    WITH live AS (
        SELECT id, status FROM lease
        WHERE resource_id = ANY(CAST(:resource_ids AS int[])) AND {LIVE_STATUSES_SQL}
        ORDER BY id
        FOR UPDATE
    )
    UPDATE lease l SET status = '{LeaseStatus.released.value}', version = l.version + 1,
                       ended_at = CAST(:now AS timestamptz), updated_at = CAST(:now AS timestamptz)
    FROM live
    WHERE l.id = live.id
    RETURNING l.id, l.resource_id, l.version, l.status, l.owner_email, l.expires_at, l.account_id,
              l.cloud_account_id, live.status AS previous_status
    """
)


async def release_leases(session: AsyncSession, resource_ids: Sequence[int], now: datetime) -> list[Any]:
    """Release the live leases of these resources (a new version each); returns them."""
    if not resource_ids:
        return []
    rows = await session.execute(_RELEASE_LEASES, {"resource_ids": list(resource_ids), "now": now})
    return list(rows.all())


class AuditRows:
    """Audit events collected during a batch and written with one statement."""

    _INSERT = text(
        """
        INSERT INTO audit_event (account_id, at, actor, action, subject_type, subject_id, reason, message_id,
                                 details)
        SELECT v.account_id, CAST(:now AS timestamptz), v.actor, v.action, v.subject_type, v.subject_id,
               v.reason, v.message_id, v.details
        FROM unnest(CAST(:account_ids AS int[]), CAST(:actors AS text[]), CAST(:actions AS text[]),
                    CAST(:subject_types AS text[]), CAST(:subject_ids AS int[]), CAST(:reasons AS text[]),
                    CAST(:message_ids AS uuid[]), CAST(:details AS jsonb[]))
             AS v(account_id, actor, action, subject_type, subject_id, reason, message_id, details)
        """
    )
    _COLUMNS = ("account_ids", "actors", "actions", "subject_types", "subject_ids", "reasons", "message_ids",
                "details")

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
