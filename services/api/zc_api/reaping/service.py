"""The reaper's side of the api: claiming expired leases (compare-and-set on id, version
and state, so a renewal always beats a stale timer) and recording what it did."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.errors import InvalidInput
from zc_common.internal_api import (
    ClaimedLease,
    ClaimRefusal,
    ClaimResult,
    LeaseRef,
    ReapOutcome,
    ReapOutcomeKind,
)
from zc_common.messages import (
    ActionOnExpiry,
    CloudAccountMode,
    LeaseChange,
    LeaseChanged,
    LeaseStatus,
    utcnow,
)

from zc_api.audit import service as audit
from zc_api.display import stamp
from zc_api.leases import repository, warning_due
from zc_api.leases.actions import new_version
from zc_api.leases.policy import owner_tag_value
from zc_api.leases.repository import LeaseRecord
from zc_api.outbox import service as outbox
from zc_api.reaping import blast_radius

MAX_REFS = 10_000
WARNING_PENDING = "warning_pending"
_PAST = {ActionOnExpiry.stop: "stopped", ActionOnExpiry.terminate: "terminated"}


def _claimed(record: LeaseRecord) -> ClaimedLease:
    tag = record.policy.owner_tag
    return ClaimedLease(
        lease=record.snapshot(), action=ActionOnExpiry(record.policy.action_on_expiry), owner_tag=tag,
        owner_tag_value=owner_tag_value(record.resource.tags, tag),
    )


def _refusal(record: LeaseRecord | None, ref: LeaseRef, *, now: datetime) -> str | None:
    """Why this lease cannot be claimed at this version now; None when it can."""
    if record is None:
        return "unknown"
    if record.lease.version != ref.version:
        return "stale_version"  # renewed (or otherwise changed) since the timer was set
    if not record.status.is_live:
        return "not_live"
    if record.status in (LeaseStatus.active, LeaseStatus.exempt) and record.lease.expires_at > now:
        return "not_expired"
    if warning_due.owes_warning(record):
        return WARNING_PENDING  # observe mode too: its "would have" mail follows a warning as well
    return None


async def claim(
    session: AsyncSession, *, refs: list[LeaseRef], actor: str, now: datetime | None = None
) -> ClaimResult:
    """Claim the expired leases named (enforce mode: status reaping, within the
    blast-radius cap), record what observe mode would have done, refuse the rest with
    the reason. A lease already claimed at that version is answered "claimed" again."""
    now = now or utcnow()
    wanted = list(dict.fromkeys(refs))
    if len(wanted) > MAX_REFS:
        raise InvalidInput(f"at most {MAX_REFS} leases per claim; send several", field="leases")
    records = await repository.load(session, (ref.lease_id for ref in wanted), lock=True)
    result = ClaimResult()
    due: dict[int, list[LeaseRecord]] = defaultdict(list)
    outgoing: list[LeaseChanged] = []
    for ref in wanted:
        record = records.get(ref.lease_id)
        reason = _refusal(record, ref, now=now)
        if reason is not None:
            result.refused.append(ClaimRefusal(lease_id=ref.lease_id, version=ref.version, reason=reason))
            if reason == WARNING_PENDING and record is not None:
                outgoing.append(_defer_for_warning(session, record, actor=actor, now=now))
        elif record is not None and record.status is LeaseStatus.reaping:
            result.claimed.append(_claimed(record))
        elif record is not None:
            due[record.lease.cloud_account_id].append(record)

    enforced = [cid for cid, group in due.items() if group[0].cloud_account.mode == CloudAccountMode.enforce.value]
    await blast_radius.lock_cloud_accounts(session, enforced)
    for cloud_account_id, group in sorted(due.items()):
        if cloud_account_id in enforced:
            await _enforce(session, group, result, actor=actor, now=now)
        else:
            for record in group:
                result.observed.append(LeaseRef(lease_id=record.id, version=record.lease.version))
                outgoing.append(_observe(session, record, actor=actor, now=now))
    await outbox.enqueue(session, outgoing)
    return result


def _defer_for_warning(session: AsyncSession, record: LeaseRecord, *, actor: str, now: datetime) -> LeaseChanged:
    """The last warning of this version never reached its owner: the reap moves by its
    lead, and the new version warns at once (as when the notifier finds a warning late)."""
    lead = warning_due.last_lead(record)
    assert record.lease.warn_by is not None and lead is not None  # owes_warning said so
    return warning_due.defer(
        session, record, lead=lead, actor=actor, now=now, cause=WARNING_PENDING,
        why=f"the last warning, due at {stamp(record.lease.warn_by)}, was not delivered before the reap",
    )


def _observe(session: AsyncSession, record: LeaseRecord, *, actor: str, now: datetime) -> LeaseChanged:
    """Observe mode: nothing happens in AWS; the lease stays live (renewable) as expired,
    and its owner is told what would have happened."""
    action = ActionOnExpiry(record.policy.action_on_expiry)
    record.lease.status = LeaseStatus.expired
    return new_version(
        session, record, LeaseChange.expired, actor=actor, now=now,
        reason=f"observe mode: would have {_PAST[action]} {record.resource.instance_id}",
        would_have=action.value,
    )


async def _enforce(
    session: AsyncSession, group: list[LeaseRecord], result: ClaimResult, *, actor: str, now: datetime
) -> None:
    cloud_account = group[0].cloud_account
    assert cloud_account.id is not None
    cap = await blast_radius.budget(session, cloud_account_id=cloud_account.id, policy=group[0].policy, now=now)
    # The longest expired go first.
    ordered = sorted(group, key=lambda record: (record.lease.expires_at, record.id))
    taking, holding = ordered[: cap.remaining], ordered[cap.remaining :]
    for record in taking:
        lease = record.lease
        lease.status, lease.claimed_at, lease.updated_at = LeaseStatus.reaping, now, now
        audit.record(
            session, account_id=lease.account_id, actor=actor, action="lease.claimed", subject_type="lease",
            subject_id=lease.id, reason=f"expired: the reaper will {record.policy.action_on_expiry} the instance",
            version=lease.version, instance_id=record.resource.instance_id,
        )
        result.claimed.append(_claimed(record))
    retries: list[LeaseChanged] = []
    for record in holding:
        lease = record.lease
        if lease.status != LeaseStatus.expired.value:
            lease.status, lease.updated_at = LeaseStatus.expired, now
        audit.record(
            session, account_id=lease.account_id, actor=actor, action="lease.held", subject_type="lease",
            subject_id=lease.id, reason=f"blast-radius cap: {cap.describe()}", version=lease.version,
        )
        result.refused.append(ClaimRefusal(lease_id=record.id, version=lease.version, reason="blast_radius"))
        # Held, never forgotten: a new version whose timer asks the reaper again once the
        # cap's window has moved on (its owner hears why it still runs).
        retries.append(new_version(
            session, record, LeaseChange.reap_skipped, actor=actor, now=now, retry_in=blast_radius.WINDOW,
            reason=f"held by the blast-radius cap ({cap.describe()}); tried again within the hour",
        ))
    await outbox.enqueue(session, retries)
    await session.flush()
    if holding:
        await blast_radius.alert(
            session, cloud_account=cloud_account, cap=cap, held_lease_ids=[r.id for r in holding], actor=actor,
            now=now,
        )


# --- outcomes -------------------------------------------------------------------------


async def record_outcomes(
    session: AsyncSession, *, outcomes: list[ReapOutcome], actor: str, now: datetime | None = None
) -> tuple[int, int]:
    """Apply what the reaper did to leases it holds (status reaping at that version);
    anything else is ignored, so a repeated report changes nothing. Returns (applied,
    ignored)."""
    now = now or utcnow()
    if len(outcomes) > MAX_REFS:
        raise InvalidInput(f"at most {MAX_REFS} outcomes per report; send several", field="outcomes")
    records = await repository.load(session, (outcome.lease_id for outcome in outcomes), lock=True)
    outgoing: list[LeaseChanged] = []
    for outcome in outcomes:
        record = records.get(outcome.lease_id)
        if record is None or record.status is not LeaseStatus.reaping or record.lease.version != outcome.version:
            continue
        outgoing.append(_apply(session, record, outcome, actor=actor, now=now))
    await outbox.enqueue(session, outgoing)
    return len(outgoing), len(outcomes) - len(outgoing)


def _apply(session: AsyncSession, record: LeaseRecord, outcome: ReapOutcome, *, actor: str, now: datetime) -> LeaseChanged:
    lease = record.lease
    match outcome.outcome:
        case ReapOutcomeKind.stopped | ReapOutcomeKind.terminated:
            lease.status, lease.reaped_at, lease.ended_at = LeaseStatus.reaped, now, now
            return new_version(
                session, record, LeaseChange.reaped, actor=actor, now=now, reason=outcome.outcome.value,
                detail=outcome.reason,
            )
        case ReapOutcomeKind.gone:
            lease.status, lease.ended_at = LeaseStatus.released, now
            return new_version(
                session, record, LeaseChange.released, actor=actor, now=now,
                reason=outcome.reason or "the instance is gone",
            )
        case ReapOutcomeKind.skipped:
            # Live again, and renewable: the owner is told why nothing was done.
            lease.status = LeaseStatus.expired
            return new_version(
                session, record, LeaseChange.reap_skipped, actor=actor, now=now,
                reason=outcome.reason or "skipped by the reaper",
            )
