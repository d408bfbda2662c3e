"""What one bus message means for the people who read mail: a notice per recipient, with
the idempotency key that makes a re-delivered message never mail the same person twice."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from zc_common.internal_api import LeaseRef
from zc_common.messages import (
    BlastRadiusHalted,
    LeaseChange,
    LeaseChanged,
    LeaseExpiringSoon,
    LeaseSnapshot,
    LeasesPastTheirEnd,
    LeaseStatus,
    Message,
    PastLeaseItem,
)


class NoticeKind(str, enum.Enum):
    """In the order a digest lists them: what needs action first."""

    blast_radius = "blast_radius"
    past_lease = "past_lease"
    warning = "warning"
    observed = "observed"
    reap_skipped = "reap_skipped"
    reaped = "reaped"
    new_lease = "new_lease"

    @property
    def rank(self) -> int:
        return list(NoticeKind).index(self)


# A lease in one of these can still be renewed or shut down from a mail.
ACTIONABLE_STATUSES = frozenset({LeaseStatus.active, LeaseStatus.expired, LeaseStatus.exempt})

_MAILED_CHANGES = {
    LeaseChange.created: NoticeKind.new_lease,
    LeaseChange.owner_changed: NoticeKind.new_lease,
    LeaseChange.expired: NoticeKind.observed,
    LeaseChange.reaped: NoticeKind.reaped,
    LeaseChange.reap_skipped: NoticeKind.reap_skipped,
}


@dataclass(frozen=True)
class Notice:
    """One item of one recipient's mail."""

    message_id: UUID
    recipient: str
    kind: NoticeKind
    occurred_at: datetime
    lease: LeaseSnapshot | None = None
    reason: str | None = None
    halted: BlastRadiusHalted | None = None
    change: LeaseChange | None = None
    past: LeasesPastTheirEnd | None = None
    past_items: tuple[PastLeaseItem, ...] = ()  # the digest's leases this recipient sees
    warning_at: datetime | None = None  # a warning's moment: what the api is told once it went out

    @property
    def key(self) -> str:
        """The notification key the api keeps: reserved before sending, marked once sent.
        A lease the reaper had to leave alone is tried again (hourly while the blast-radius
        cap holds it, daily behind protection): its owner hears of it once a day at most."""
        if self.kind is NoticeKind.reap_skipped and self.lease is not None:
            return f"reap_skipped:{self.lease.lease_id}:{self.occurred_at.date().isoformat()}:{self.recipient}"
        return f"{self.message_id}:{self.recipient}"

    @property
    def account_id(self) -> int | None:
        """The account (tenant) the notice is about."""
        if self.lease is not None:
            return self.lease.account_id
        if self.past is not None:
            return self.past.account_id
        return self.halted.account_id if self.halted is not None else None

    @property
    def lease_ref(self) -> LeaseRef | None:
        return LeaseRef(lease_id=self.lease.lease_id, version=self.lease.version) if self.lease else None

    @property
    def wants_links(self) -> bool:
        """Renew / shut down links only where they can still do something."""
        return self.lease is not None and self.lease.status in ACTIONABLE_STATUSES


_MAIL_ADDRESS = re.compile(r'[^@\s<>,;:"()\[\]]+@[^@\s<>,;:"()\[\]]+')


def is_mail_address(address: str) -> bool:
    """Plausibly a mailbox (local@domain, nothing that would break a header)."""
    return _MAIL_ADDRESS.fullmatch(address) is not None


def recipient_address(email: str) -> str:
    """One spelling per mailbox, so one person gets one digest and one key per message."""
    return email.strip().lower()


def notices_for(message: Message, now: datetime, *, batching: timedelta = timedelta(0)) -> list[Notice]:
    """The notices a message asks for; none for changes people made themselves (renewed,
    released …) and none for a warning too late for its lead (``late_warnings``: the api
    moves the reap instead, and the new version warns at once)."""
    if isinstance(message, LeaseChanged):
        kind = _MAILED_CHANGES.get(message.change)
        if kind is None:
            return []
        return [_lease_notice(message, message.lease, kind, reason=message.reason, change=message.change)]
    if isinstance(message, LeaseExpiringSoon):
        if message.too_late(now, batching=batching):
            return []
        return [_lease_notice(message, message.lease, NoticeKind.warning, warning_at=message.warning_at)]
    if isinstance(message, LeasesPastTheirEnd):
        return _past_lease_notices(message)
    if isinstance(message, BlastRadiusHalted):
        admins = dict.fromkeys(recipient_address(email) for email in message.admin_emails if email.strip())
        return [
            Notice(
                message_id=message.message_id,
                recipient=admin,
                kind=NoticeKind.blast_radius,
                occurred_at=message.occurred_at,
                halted=message,
            )
            for admin in admins
        ]
    return []


def _past_lease_notices(message: LeasesPastTheirEnd) -> list[Notice]:
    """The daily digest: each admin gets every lease, each other owner their own."""
    admins = {recipient_address(email) for email in message.admin_emails if email.strip()}
    mine: dict[str, list[PastLeaseItem]] = {}
    for item in message.items:
        mine.setdefault(recipient_address(item.lease.owner_email), []).append(item)
    shown = {admin: list(message.items) for admin in sorted(admins)}
    shown.update({owner: items for owner, items in mine.items() if owner not in admins})
    return [
        Notice(message_id=message.message_id, recipient=recipient, kind=NoticeKind.past_lease,
               occurred_at=message.occurred_at, past=message, past_items=tuple(items))
        for recipient, items in shown.items() if items
    ]


def _lease_notice(
    message: Message,
    lease: LeaseSnapshot,
    kind: NoticeKind,
    *,
    reason: str | None = None,
    change: LeaseChange | None = None,
    warning_at: datetime | None = None,
) -> Notice:
    return Notice(
        message_id=message.message_id,
        recipient=recipient_address(lease.owner_email),
        kind=kind,
        occurred_at=message.occurred_at,
        lease=lease,
        reason=reason,
        change=change,
        warning_at=warning_at,
    )


def late_warnings(
    messages: Iterable[Message], now: datetime, *, batching: timedelta = timedelta(0)
) -> list[LeaseExpiringSoon]:
    """The warnings of a batch that, sent now, would reach their owner short of their lead."""
    return [m for m in messages if isinstance(m, LeaseExpiringSoon) and m.too_late(now, batching=batching)]


def as_warning(notice: Notice) -> LeaseExpiringSoon:
    """The warning a warning notice was made from."""
    assert notice.lease is not None and notice.warning_at is not None, "a warning notice names its lease and moment"
    return LeaseExpiringSoon(
        message_id=notice.message_id, occurred_at=notice.occurred_at, lease=notice.lease, warning_at=notice.warning_at
    )


def unique(notices: Iterable[Notice]) -> list[Notice]:
    """Drop repeats of one key (the same message twice in one batch), keeping the first."""
    seen: dict[str, Notice] = {}
    for notice in notices:
        seen.setdefault(notice.key, notice)
    return list(seen.values())
