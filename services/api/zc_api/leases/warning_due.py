"""Nobody is reaped without the warnings the policy promised: which leases still owe their
owner a warning, the notifier's reports of warnings delivered, and moving a reap so that a
warning that could not go out in time still precedes it by its lead."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.internal_api import (
    DeferOutcome,
    Deferral,
    LateWarning,
    LeaseRef,
    WarningDelivered,
    WarningsRecorded,
)
from zc_common.messages import LeaseChange, LeaseChanged, LeaseStatus, utcnow
from zc_common.metrics import WARNING_DEFERRALS, WARNING_REPORTS

from zc_api.audit import service as audit
from zc_api.display import stamp
from zc_api.leases import repository
from zc_api.leases.actions import new_version
from zc_api.leases.repository import LeaseRecord
from zc_api.outbox import service as outbox

log = logging.getLogger("zc.api.warnings")


def last_lead(record: LeaseRecord) -> timedelta | None:
    """How long before its expiry this version's last warning was planned; None: none was."""
    lease = record.lease
    return None if lease.warn_by is None else lease.expires_at - lease.warn_by


def owes_warning(record: LeaseRecord) -> bool:
    """Whether an active lease's last planned warning is not reported delivered yet: the
    reap must wait. A lease that planned none (the policy warns of nothing, or the lease
    was shorter than the warning) owes none. Whether a warning went out in time for its
    lead is the notifier's to judge (it knows the delay its digest window adds, which
    every warning, a re-sent one too, waits through): it reports only those that did,
    and has the reap of the others moved (``defer_late``)."""
    return record.status is LeaseStatus.active and record.lease.warn_by is not None and record.lease.warned_at is None


def defer(
    session: AsyncSession, record: LeaseRecord, *, lead: timedelta, actor: str, now: datetime, cause: str, why: str
) -> LeaseChanged:
    """Move the reap of an active, locked lease to ``lead`` from now, in a new version
    whose schedule warns at once (and keeps the policy's warnings still ahead): its
    LeaseChanged, for the caller to put on the outbox. ``cause`` labels the count,
    ``why`` begins the audited reason."""
    lease = record.lease
    previous = lease.expires_at
    lease.expires_at = now + lead
    reason = f"{why}; the reap moves to {stamp(lease.expires_at)} so that the owner is warned {_lead_words(lead)} before"
    message = new_version(
        session, record, LeaseChange.warning_deferred, actor=actor, now=now, reason=reason, warn_now=True,
        previous_expires_at=previous.isoformat(), lead_seconds=int(lead.total_seconds()), cause=cause,
    )
    WARNING_DEFERRALS.labels(cause).inc()
    log.warning("lease %d: %s", record.id, reason)
    return message


def _lead_words(lead: timedelta) -> str:
    seconds = int(lead.total_seconds())
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


# --- the notifier's reports ------------------------------------------------------------


async def record_delivered(
    session: AsyncSession, *, warnings: list[WarningDelivered], actor: str, now: datetime | None = None
) -> WarningsRecorded:
    """Record the last warning of each version named as delivered (or undeliverable, for
    good): the claim stops waiting for it. Earlier warnings of a version, versions that
    moved on and repeats change nothing, so a re-delivered report is harmless."""
    now = now or utcnow()
    wanted = list(dict.fromkeys(warnings))
    records = await repository.load(session, (w.lease_id for w in wanted), lock=True)
    recorded: dict[LeaseRef, None] = {}
    for warning in wanted:
        record = records.get(warning.lease_id)
        lease = record.lease if record is not None else None
        if (
            record is None or lease is None or lease.version != warning.version or lease.warn_by is None
            or warning.warning_at < lease.warn_by  # an earlier warning: the last one is still owed
        ):
            WARNING_REPORTS.labels("ignored").inc()
            continue
        recorded[LeaseRef(lease_id=record.id, version=lease.version)] = None
        if lease.warned_at is not None:
            WARNING_REPORTS.labels("ignored").inc()  # a repeat: the first report stands
            continue
        # When it went out, as the notifier saw it: never before the warning was due, nor ahead of now.
        lease.warned_at = min(max(warning.delivered_at, warning.warning_at), now)
        undelivered = warning.undelivered
        WARNING_REPORTS.labels("settled" if undelivered else "delivered").inc()
        reason = (
            f"the warning due at {stamp(warning.warning_at)} was delivered"
            if undelivered is None
            else f"the warning due at {stamp(warning.warning_at)} can never reach the owner ({undelivered.value}): "
            "the reap is not held for it"
        )
        audit.record(
            session, account_id=lease.account_id, actor=actor, action="lease.warned", subject_type="lease",
            subject_id=record.id, reason=reason, version=lease.version, warning_at=warning.warning_at.isoformat(),
            warned_at=lease.warned_at.isoformat(), undelivered=undelivered.value if undelivered else None,
        )
    await session.flush()
    return WarningsRecorded(recorded=list(recorded), ignored=len(wanted) - len(recorded))


async def defer_late(
    session: AsyncSession, *, warnings: list[LateWarning], actor: str, now: datetime | None = None
) -> list[Deferral]:
    """Warnings the notifier could not send their lead before the lease ends: each lease
    still active at that version gets a new version that ends the warning's lead from now
    and warns at once. The earliest warning of a lease goes first (the longest lead: the
    later warnings stay in the new schedule); the others of that version are then
    superseded, as is a re-delivered request."""
    now = now or utcnow()
    asked = list(dict.fromkeys(warnings))
    records = await repository.load(session, (w.lease_id for w in asked), lock=True)
    answers: dict[LateWarning, Deferral] = {}
    outgoing: list[LeaseChanged] = []
    for warning in sorted(asked, key=lambda w: (w.lease_id, w.version, w.warning_at)):
        record = records.get(warning.lease_id)
        outcome = _why_not_deferred(record, warning)
        lead = _lead(record, warning.warning_at) if record is not None and outcome is None else None
        if record is None or outcome is not None or lead is None:
            answers[warning] = Deferral(
                lease_id=warning.lease_id, version=warning.version, warning_at=warning.warning_at,
                outcome=outcome or DeferOutcome.no_warning,
            )
            continue
        outgoing.append(defer(
            session, record, lead=lead, actor=actor, now=now, cause="late_warning",
            why=f"the warning due at {stamp(warning.warning_at)} could not be sent in time",
        ))
        answers[warning] = Deferral(
            lease_id=warning.lease_id, version=warning.version, warning_at=warning.warning_at,
            outcome=DeferOutcome.deferred, new_version=record.lease.version, expires_at=record.lease.expires_at,
        )
    await outbox.enqueue(session, outgoing)
    return [answers[warning] for warning in asked]


def _why_not_deferred(record: LeaseRecord | None, warning: LateWarning) -> DeferOutcome | None:
    if record is None:
        return DeferOutcome.unknown
    if record.lease.version != warning.version:
        return DeferOutcome.superseded
    if record.status is not LeaseStatus.active:
        return DeferOutcome.not_active
    return None


def _lead(record: LeaseRecord, warning_at: datetime) -> timedelta | None:
    """The warning's own lead (so a late early warning keeps its lead and the policy's
    later warnings stay ahead), never longer than the policy's longest warning; when the
    warning names no lead (due at or after the expiry), the version's last lead."""
    leads = [timedelta(seconds=s) for s in record.policy.warning_seconds if s > 0]
    fallback = last_lead(record) or (min(leads) if leads else None)
    longest = max(leads) if leads else fallback
    if longest is None:
        return None
    lead = min(record.lease.expires_at - warning_at, longest)
    return lead if lead > timedelta(0) else fallback
