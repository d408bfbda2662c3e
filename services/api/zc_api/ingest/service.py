"""Applying a batch of ResourceChange: resources recorded in observation order, one live
lease per live instance, leases released when instances go, all of it audited and
announced through the outbox. Set-based: the number of statements does not grow with
the batch, and the unique indexes (not a read-then-write) keep it right under
duplicates, re-deliveries, re-orderings and concurrent api replicas."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.messages import InstanceState, LeaseChange, Message, ResourceChange

from zc_api.ingest import repository
from zc_api.ingest.owners import LeaseCandidate, assign_owners
from zc_api.ingest.repository import UNLISTED_STATE, AuditRows, CloudAccountRef, KnownResource
from zc_api.leases.actions import reown_by_tag
from zc_api.leases.messages import lease_changed, lease_snapshot
from zc_api.leases.policy import OwnerChoice, owner_tag_value
from zc_api.outbox.service import enqueue

log = logging.getLogger("zc.api.ingest")

LIVE_STATES = frozenset(s for s in InstanceState if s.is_live)


@dataclass
class IngestResult:
    """What one batch did, for logs, metrics and tests."""

    received: int = 0
    unknown_account: int = 0  # changes for AWS accounts nobody onboarded: dropped
    other_region: int = 0  # changes naming another region than the resource's: dropped
    leases_reowned: list[int] = field(default_factory=list)  # their owner tag changed
    superseded: int = 0  # an older observation of an instance seen again in the batch
    stale: int = 0  # already recorded, or older than what is recorded
    discovered: int = 0
    updated: int = 0
    leases_created: list[int] = field(default_factory=list)
    leases_released: list[int] = field(default_factory=list)
    messages: int = 0


def actor_for(change: ResourceChange) -> str:
    """How the audit log and lease messages name what made the change: the message."""
    return f"message:{change.message_id}"


@dataclass
class _Batch:
    """What a batch collects on its way: the outcome, audit rows, outgoing messages."""

    result: IngestResult
    clouds: dict[str, CloudAccountRef]
    audit: AuditRows = field(default_factory=AuditRows)
    outgoing: list[Message] = field(default_factory=list)

    def record(
        self, change: ResourceChange, action: str, subject_type: str, subject_id: int, *,
        reason: str | None, account_id: int | None = None, **details: Any,
    ) -> None:
        self.audit.add(
            account_id=self.clouds[change.recipient_account_id].account_id if account_id is None else account_id,
            actor=actor_for(change), message_id=change.message_id, action=action, subject_type=subject_type,
            subject_id=subject_id, reason=reason, **details,
        )


async def apply_changes(
    session: AsyncSession, changes: Sequence[ResourceChange], *, now: datetime
) -> IngestResult:
    """Apply a batch in the caller's transaction (the caller commits, then acks)."""
    batch = _Batch(IngestResult(received=len(changes)), clouds={})
    if not changes:
        return batch.result
    batch.clouds = await repository.cloud_accounts(session, {c.recipient_account_id for c in changes})
    newest = _newest_per_instance(batch, changes)
    if not newest:
        return batch.result

    known = await repository.lock_known(session, sorted(newest))
    _drop_other_regions(batch, newest, known)
    keys = sorted(newest)
    written = await repository.upsert_resources(
        session, [(batch.clouds[newest[k].recipient_account_id], newest[k]) for k in keys], now
    )
    batch.result.stale = len(keys) - len(written)

    candidates: list[LeaseCandidate] = []
    retagged: list[LeaseCandidate] = []
    going: dict[int, tuple[ResourceChange, KnownResource | None]] = {}
    for row in written:
        change = newest[(row.cloud_account_id, row.instance_id)]
        before = known.get((row.cloud_account_id, row.instance_id))
        _audit_resource(batch, row, change, before)
        if row.gone:
            going[row.id] = (change, before)
        elif row.state in LIVE_STATES and change.instance is not None:
            cloud = batch.clouds[change.recipient_account_id]
            candidate = LeaseCandidate(
                resource_id=row.id, account_id=cloud.account_id, cloud_account_id=cloud.id,
                instance_id=change.instance_id, tags=change.instance.tags, launch_time=change.instance.launch_time,
            )
            if _needs_lease(before, change):
                candidates.append(candidate)
            elif before is not None and before.leased and before.tags != change.instance.tags:
                retagged.append(candidate)

    by_resource = {row.id: newest[(row.cloud_account_id, row.instance_id)] for row in written}
    await _create_leases(session, batch, candidates, by_resource, now)
    await _reown_leases(session, batch, retagged, known, by_resource, now)
    await _release_leases(session, batch, going, now)
    await batch.audit.insert(session, now)
    batch.result.messages = await enqueue(session, batch.outgoing)
    return batch.result


def _drop_other_regions(
    batch: _Batch, newest: dict[tuple[int, str], ResourceChange], known: dict[tuple[int, str], KnownResource]
) -> None:
    """A resource's region never changes: a change naming another region than the one
    recorded (a hint that looked in the wrong place) says nothing about it."""
    for key in [k for k, change in newest.items() if k in known and known[k].region != change.aws_region]:
        change = newest.pop(key)
        batch.result.other_region += 1
        log.warning(
            "ignored a change of %s in %s: it is recorded in %s (a resource's region never changes)",
            change.instance_id, change.aws_region, known[key].region,
        )


def _newest_per_instance(
    batch: _Batch, changes: Sequence[ResourceChange]
) -> dict[tuple[int, str], ResourceChange]:
    """The newest observation of each instance of an onboarded account, by (cloud account
    id, instance id). Invariant 1: an account nobody onboarded changes nothing; it is
    counted and logged."""
    unknown = Counter(c.recipient_account_id for c in changes if c.recipient_account_id not in batch.clouds)
    if unknown:
        batch.result.unknown_account = sum(unknown.values())
        log.warning(
            "ignored %d changes for AWS accounts that are not onboarded: %s",
            batch.result.unknown_account, ", ".join(f"{acct} ({n})" for acct, n in sorted(unknown.items())),
        )
    newest: dict[tuple[int, str], ResourceChange] = {}
    for change in changes:
        cloud = batch.clouds.get(change.recipient_account_id)
        if cloud is None:
            continue
        key = (cloud.id, change.instance_id)
        held = newest.get(key)
        # On a tie the gone observation wins: going away is final.
        if held is None or (change.observed_at, change.gone) > (held.observed_at, held.gone):
            newest[key] = change
    batch.result.superseded = len(changes) - batch.result.unknown_account - len(newest)
    return newest


def _audit_resource(batch: _Batch, row: Any, change: ResourceChange, before: KnownResource | None) -> None:
    result = batch.result
    if row.inserted:
        result.discovered += 1
        batch.record(change, "resource.discovered", "resource", row.id, reason=change.event_name,
                     **_resource_details(change, None))
    elif before is None:
        # Another batch recorded it after we looked and before we wrote: what it held
        # before ours is not known here.
        result.updated += 1
        batch.record(change, "resource.updated", "resource", row.id,
                     reason=f"{change.event_name} (recorded concurrently)", **_resource_details(change, None))
    elif (before.state, before.gone) != (row.state, row.gone):
        result.updated += 1
        batch.record(change, "resource.state_changed", "resource", row.id,
                     reason=f"{before.state} -> {row.state} ({change.event_name})",
                     **_resource_details(change, before))
    elif change.instance is not None and (
        before.tags != change.instance.tags or before.instance_type != change.instance.instance_type
    ):
        result.updated += 1
        batch.record(change, "resource.updated", "resource", row.id, reason=change.event_name,
                     **_resource_details(change, before))


def _needs_lease(before: KnownResource | None, change: ResourceChange) -> bool:
    """A live instance without a live lease gets one, unless this observation predates
    the end of its last lease (a sweep that saw it running just before it was reaped)."""
    if before is None:
        return True
    if before.leased:
        return False
    return before.last_lease_ended_at is None or change.observed_at > before.last_lease_ended_at


async def _create_leases(
    session: AsyncSession, batch: _Batch, candidates: list[LeaseCandidate],
    changes: dict[int, ResourceChange], now: datetime,
) -> None:
    plans = await assign_owners(session, candidates, now=now)
    message_ids = {resource_id: change.message_id for resource_id, change in changes.items()}
    for lease, plan in await repository.insert_leases(session, plans, message_ids, now):
        change = changes[plan.resource_id]
        batch.result.leases_created.append(lease.id)
        batch.record(change, "lease.created", "lease", lease.id, reason=plan.owner.reason,
                     resource_id=plan.resource_id, instance_id=change.instance_id, owner_email=plan.owner.email,
                     owner_user_id=plan.owner.user_id, expires_at=plan.expires_at.isoformat(),
                     over_quota=plan.over_quota)
        snapshot = lease_snapshot(
            lease, resource=_view(change, None), cloud_account=batch.clouds[change.recipient_account_id],
            action_on_expiry=plan.policy.action_on_expiry,
        )
        batch.outgoing.append(
            lease_changed(LeaseChange.created, snapshot, actor=actor_for(change), now=now,
                          warning_seconds=plan.policy.warning_seconds, reason=plan.owner.reason)
        )


async def _reown_leases(
    session: AsyncSession, batch: _Batch, retagged: list[LeaseCandidate],
    known: dict[tuple[int, str], KnownResource], changes: dict[int, ResourceChange], now: datetime,
) -> None:
    """Leased resources whose tags changed: where the owner tag (as the account's policy
    names it) changed, the lease goes to whoever the normal owner rules now choose. A
    lease is never left to someone the tag no longer names, nor without its warnings."""
    if not retagged:
        return
    owners: dict[int, OwnerChoice] = {}
    for plan in await assign_owners(session, retagged, now=now):
        candidate = next(c for c in retagged if c.resource_id == plan.resource_id)
        before = known[(candidate.cloud_account_id, candidate.instance_id)]
        tag = plan.owner_tag
        if owner_tag_value(before.tags, tag) != owner_tag_value(candidate.tags, tag):
            owners[plan.resource_id] = plan.owner
    if not owners:
        return
    actors = {resource_id: actor_for(changes[resource_id]) for resource_id in owners}
    for message in await reown_by_tag(session, owners, actors=actors, now=now):
        batch.outgoing.append(message)
        batch.result.leases_reowned.append(message.lease.lease_id)


async def _release_leases(
    session: AsyncSession, batch: _Batch, going: dict[int, tuple[ResourceChange, KnownResource | None]],
    now: datetime,
) -> None:
    for lease in await repository.release_leases(session, sorted(going), now):
        change, before = going[lease.resource_id]
        reason = _gone_reason(change)
        batch.result.leases_released.append(lease.id)
        batch.record(change, "lease.released", "lease", lease.id, reason=reason, account_id=lease.account_id,
                     resource_id=lease.resource_id, instance_id=change.instance_id,
                     previous_status=lease.previous_status, version=lease.version)
        cloud = batch.clouds[change.recipient_account_id]
        snapshot = lease_snapshot(
            lease, resource=_view(change, before), cloud_account=cloud, action_on_expiry=cloud.action_on_expiry
        )
        batch.outgoing.append(
            lease_changed(LeaseChange.released, snapshot, actor=actor_for(change), now=now, reason=reason)
        )


def _gone_reason(change: ResourceChange) -> str:
    if change.instance is None:
        return "the instance is no longer listed by AWS"
    return f"the instance is {change.instance.state.value}"


def _resource_details(change: ResourceChange, before: KnownResource | None) -> dict[str, Any]:
    details: dict[str, Any] = {
        "instance_id": change.instance_id,
        "region": change.aws_region,
        "state": (change.instance.state if change.instance else UNLISTED_STATE).value,
        "gone": change.gone,
        "event_name": change.event_name,
        "event_source": change.event_source,
        "event_id": change.event_id,
        "observed_at": change.observed_at.isoformat(),
    }
    if before is not None:
        details["previous_state"] = before.state
        if change.instance is not None and before.tags != change.instance.tags:
            details["previous_tags"] = before.tags
    return details


@dataclass(frozen=True)
class _ResourceView:
    region: str
    instance_id: str
    instance_type: str | None
    name: str | None


def _view(change: ResourceChange, before: KnownResource | None) -> _ResourceView:
    """The resource as recorded after this change (a snapshot-less change keeps what
    was known before)."""
    instance_type: str | None = None
    name: str | None = None
    if change.instance is not None:
        instance_type, name = change.instance.instance_type, change.instance.name
    elif before is not None:
        instance_type, name = before.instance_type, before.name
    return _ResourceView(change.aws_region, change.instance_id, instance_type, name)
