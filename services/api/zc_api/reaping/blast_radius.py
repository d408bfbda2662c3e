"""The blast-radius cap: how many more leases of one cloud account the reaper may act on
in this hour, and the alert (once an hour) when it holds some back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.messages import BlastRadiusHalted, Role

from zc_api import bulk
from zc_api.models import AccountPolicy, AuditEvent, CloudAccount, Lease, User
from zc_api.outbox import service as outbox

WINDOW = timedelta(hours=1)
HALTED = "cloud_account.reaping_halted"

_LEASE = bulk.table(Lease)
_ACTED = _LEASE.c.claimed_at >= sa.bindparam("since", type_=_LEASE.c.claimed_at.type)
_MANAGED = sa.or_(bulk.is_live(_LEASE.c.status), _ACTED)  # live as the live-lease index is written
_COUNTS = sa.select(
    sa.func.count().filter(_ACTED).label("acted"), sa.func.count().filter(_MANAGED).label("managed")
).where(_LEASE.c.cloud_account_id == sa.bindparam("cloud_account_id", type_=_LEASE.c.cloud_account_id.type), _MANAGED)


@dataclass(frozen=True)
class Budget:
    """What the cap leaves for one cloud account: ``acted`` claimed in the last hour out
    of ``managed`` (live leases, plus those acted on that are no longer live)."""

    percent: int
    per_hour: int
    acted: int
    managed: int

    @property
    def by_share(self) -> int:
        # Floor of the share, but never below one instance while the share is not 0%:
        # otherwise an account with a single managed instance could never be reaped.
        share = self.percent * self.managed // 100
        return max(share, 1) if self.percent > 0 and self.managed > 0 else share

    @property
    def remaining(self) -> int:
        return max(0, min(self.by_share, self.per_hour) - self.acted)

    def describe(self) -> str:
        return (
            f"at most {self.percent}% of {self.managed} managed instances ({self.by_share}) and at most "
            f"{self.per_hour} per hour; {self.acted} already acted on in the last hour"
        )


async def lock_cloud_accounts(session: AsyncSession, ids: Sequence[int]) -> None:
    """Serialise claims per cloud account, so two reapers cannot both spend the same
    budget. FOR NO KEY UPDATE: inserts of leases and resources referencing it go on."""
    await session.execute(
        select(col(CloudAccount.id)).where(col(CloudAccount.id).in_(sorted(ids))).order_by(col(CloudAccount.id))
        .with_for_update(key_share=True)
    )


async def budget(session: AsyncSession, *, cloud_account_id: int, policy: AccountPolicy, now: datetime) -> Budget:
    row = (await session.execute(_COUNTS, {"cloud_account_id": cloud_account_id, "since": now - WINDOW})).one()
    return Budget(
        percent=policy.blast_radius_percent, per_hour=policy.blast_radius_per_hour, acted=int(row.acted),
        managed=int(row.managed),
    )


async def alert(
    session: AsyncSession,
    *,
    cloud_account: CloudAccount,
    cap: Budget,
    held_lease_ids: list[int],
    actor: str,
    now: datetime,
) -> BlastRadiusHalted | None:
    """Tell the account's admins that reaping stopped at the cap: once per cloud account
    per hour (the audit log remembers the last time)."""
    assert cloud_account.id is not None
    recent = await session.scalar(
        select(func.count()).select_from(AuditEvent).where(
            col(AuditEvent.account_id) == cloud_account.account_id,
            col(AuditEvent.at) >= now - WINDOW,
            col(AuditEvent.action) == HALTED,
            col(AuditEvent.subject_type) == "cloud_account",
            col(AuditEvent.subject_id) == cloud_account.id,
        )
    )
    if recent:
        return None
    admins = await session.scalars(
        select(col(User.email))
        # Only confirmed addresses: nothing is mailed to an address before its owner confirmed it.
        .where(
            col(User.account_id) == cloud_account.account_id, col(User.role) == Role.admin,
            col(User.email_confirmed_at).is_not(None),
        )
        .order_by(col(User.id))
    )
    message = BlastRadiusHalted(
        occurred_at=now, account_id=cloud_account.account_id, cloud_account_id=cloud_account.id,
        upstream_account_id=cloud_account.upstream_account_id, admin_emails=list(admins),
        held_lease_ids=sorted(held_lease_ids), cap=cap.describe(),
    )
    # The audit event carries the time it happened (not the transaction's), so the
    # once-an-hour test above compares like with like.
    session.add(
        AuditEvent(
            account_id=cloud_account.account_id, at=now, actor=actor, action=HALTED, subject_type="cloud_account",
            subject_id=cloud_account.id, reason=f"blast-radius cap reached: {cap.describe()}",
            message_id=message.message_id,
            details={"held_lease_ids": message.held_lease_ids, "admin_emails": message.admin_emails},
        )
    )
    await outbox.enqueue(session, [message])
    return message

