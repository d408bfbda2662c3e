"""What the api is told about lease warnings, so that nobody is reaped without them: a
warning that went out (after the mail server accepted it), one that never can (so its
reap is not held forever), and one too late for its lead (the api moves the reap)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from zc_common.internal_api import (
    MAX_WARNINGS,
    DeferOutcome,
    InternalApi,
    LateWarning,
    WarningDelivered,
    WarningUndelivered,
)
from zc_common.messages import LeaseExpiringSoon
from zc_common.metrics import WARNINGS

from zc_notifier.notices import Notice

log = logging.getLogger("zc.notifier.warnings")


@dataclass(frozen=True)
class Warned:
    """A warning settled in this batch, and how it is counted once the api has it."""

    report: WarningDelivered
    notice: Notice
    outcome: str  # delivered | settled
    reason: str


def delivered(notice: Notice, *, now: datetime, again: bool) -> Warned:
    """Mailed to the owner's own mailbox (``again``: in an earlier delivery of the message)."""
    return Warned(_report(notice, now, None), notice, "delivered", "redelivered" if again else "in_time")


def undeliverable(notice: Notice, why: WarningUndelivered, *, now: datetime) -> Warned:
    return Warned(_report(notice, now, why), notice, "settled", why.value)


def _report(notice: Notice, now: datetime, why: WarningUndelivered | None) -> WarningDelivered:
    assert notice.lease is not None and notice.warning_at is not None, "a warning notice names its lease and moment"
    return WarningDelivered(
        lease_id=notice.lease.lease_id, version=notice.lease.version, warning_at=notice.warning_at,
        delivered_at=now, undelivered=why,
    )


async def report(api: InternalApi, warned: Sequence[Warned]) -> None:
    """Tell the api; raises when it cannot be told (the bus hands the batch back, and the
    mail, already marked sent, is not sent again: only the report is)."""
    for start in range(0, len(warned), MAX_WARNINGS):
        chunk = warned[start:start + MAX_WARNINGS]
        await api.warnings_delivered([w.report for w in chunk])
        for item in chunk:
            WARNINGS.labels(item.outcome, item.reason).inc()
            if item.outcome == "settled":
                log.warning(
                    "the warning for lease %d (version %d) due at %s can never reach %s (%s): reported, so its "
                    "reap is not held for it", item.report.lease_id, item.report.version,
                    item.report.warning_at.isoformat(), item.notice.recipient, item.reason,
                )


async def defer(api: InternalApi, late: Sequence[LeaseExpiringSoon], *, now: datetime) -> None:
    """Warnings too late for their lead are not mailed: the api moves each reap by the
    warning's lead in a new version that warns at once; a lease that moved on (renewed,
    claimed, gone) keeps its own warnings, and the late one is dropped. Each is logged
    and counted."""
    asks = list(dict.fromkeys(
        LateWarning(lease_id=m.lease.lease_id, version=m.lease.version, warning_at=m.warning_at) for m in late
    ))
    by_ref = {(m.lease.lease_id, m.lease.version, m.warning_at): m for m in late}
    for start in range(0, len(asks), MAX_WARNINGS):
        for answer in await api.defer_for_warnings(asks[start:start + MAX_WARNINGS]):
            ask = answer
            message = by_ref.get((answer.lease_id, answer.version, answer.warning_at))
            if message is None:
                continue  # not one asked about

            left = message.lease.expires_at - now
            if answer.outcome is DeferOutcome.deferred:
                WARNINGS.labels("deferred", "late").inc()
                log.warning(
                    "the warning for lease %d (version %d) due at %s is too late for its lead (%s left of %s): "
                    "not mailed; the api moved the reap to %s (version %s), which warns at once",
                    ask.lease_id, ask.version, ask.warning_at.isoformat(), left, message.lead,
                    answer.expires_at.isoformat() if answer.expires_at else "?", answer.new_version,
                )
            else:
                WARNINGS.labels("dropped", answer.outcome.value).inc()
                log.warning(
                    "dropped the warning for lease %d (version %d) due at %s: too late for its lead (%s left of %s) "
                    "and the api moved no reap (%s)", ask.lease_id, ask.version, ask.warning_at.isoformat(), left,
                    message.lead, answer.outcome.value,
                )
