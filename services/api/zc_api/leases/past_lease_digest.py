"""The daily list of instances running past their lease: a lease that ended while its
instance still runs (stop or termination protection, the blast-radius cap, an owner tag
that changed under the reaper) is never forgotten. Once per UTC day per account, from
``past_lease_digest_hour``, a LeasesPastTheirEnd goes through the outbox: the account's
admins are mailed every such instance with what it costs a day, each owner their own.
Several api replicas make one list per account per day (the past_lease_digest row)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.messages import (
    CloudAccountMode,
    InstanceState,
    LeasesPastTheirEnd,
    LeaseStatus,
    PastLeaseItem,
    Role,
    utcnow,
)

from zc_api.database import transaction
from zc_api.leases import repository
from zc_api.models import (
    Account,
    AuditEvent,
    CloudAccount,
    Lease,
    PastLeaseDigest,
    Resource,
    User,
    never_null,
)
from zc_api.outbox import service as outbox
from zc_api.pricing.service import hourly_price
from zc_api.runtime import ApiRuntime

log = logging.getLogger("zc.api.digest")

# The most leases one account's list names; the rest are counted ("and 12 more").
MAX_ITEMS = 200
_LIVE_STATES = sorted(state.value for state in InstanceState if state.is_live)


async def make_digests(session: AsyncSession, *, now: datetime, leases_url: str | None) -> list[LeasesPastTheirEnd]:
    """Today's lists for the accounts that have leases past their end and none yet today;
    enqueued on the outbox in the caller's transaction. Answers them."""
    day = now.date()
    rows = (await session.execute(
        select(col(Lease.account_id), never_null(Lease.id))
        .join(Resource, col(Resource.id) == col(Lease.resource_id))
        .join(CloudAccount, col(CloudAccount.id) == col(Lease.cloud_account_id))
        .where(
            col(Lease.status) == LeaseStatus.expired.value, col(Resource.gone).is_(False),
            col(Resource.state).in_(_LIVE_STATES), col(CloudAccount.mode) == CloudAccountMode.enforce.value,
            col(CloudAccount.removed_at).is_(None),
            ~select(col(PastLeaseDigest.account_id)).where(
                col(PastLeaseDigest.account_id) == col(Lease.account_id), col(PastLeaseDigest.day) == day,
            ).exists(),
        )
        .order_by(col(Lease.account_id), col(Lease.expires_at), col(Lease.id))
    )).all()
    by_account: dict[int, list[int]] = defaultdict(list)
    for account_id, lease_id in rows:
        by_account[account_id].append(lease_id)
    digests: list[LeasesPastTheirEnd] = []
    for account_id, lease_ids in sorted(by_account.items()):
        claimed = await session.scalar(
            pg_insert(PastLeaseDigest).values(account_id=account_id, day=day, leases=len(lease_ids))
            .on_conflict_do_nothing().returning(col(PastLeaseDigest.account_id))
        )
        if claimed is None:  # another replica made today's list meanwhile
            continue
        digests.append(await _digest(session, account_id, lease_ids, now=now, leases_url=leases_url))
    await outbox.enqueue(session, digests)
    return digests


async def _digest(
    session: AsyncSession, account_id: int, lease_ids: list[int], *, now: datetime, leases_url: str | None
) -> LeasesPastTheirEnd:
    listed = lease_ids[:MAX_ITEMS]
    records = await repository.load(session, listed, lock=False)
    why: dict[int, str] = {
        subject_id: reason for subject_id, reason in (await session.execute(
            select(never_null(AuditEvent.subject_id), never_null(AuditEvent.reason))
            .where(col(AuditEvent.subject_type) == "lease", col(AuditEvent.subject_id).in_(listed),
                   col(AuditEvent.reason).is_not(None))
            .order_by(col(AuditEvent.subject_id), col(AuditEvent.id).desc())
            .ext(distinct_on(col(AuditEvent.subject_id)))
        )).all()
    }
    admins = list(await session.scalars(
        select(col(User.email)).where(
            col(User.account_id) == account_id, col(User.role) == Role.admin, col(User.email_confirmed_at).is_not(None),
        ).order_by(col(User.id))
    ))
    account = await session.get(Account, account_id)
    items = []
    for lease_id in listed:
        record = records.get(lease_id)
        if record is None:
            continue
        price = hourly_price(record.resource.instance_type, record.resource.region)
        items.append(PastLeaseItem(
            lease=record.snapshot(), why=(why.get(lease_id) or "")[:500],
            usd_per_day=float(price * 24) if price is not None else None,
        ))
    return LeasesPastTheirEnd(
        occurred_at=now, account_id=account_id, account_name=account.name if account else str(account_id),
        day=now.date(), admin_emails=admins, items=items, more=len(lease_ids) - len(listed), leases_url=leases_url,
    )


async def run_past_lease_digests(runtime: ApiRuntime) -> None:
    """Look every ``past_lease_digest_check_seconds`` whether today's lists are due."""
    settings = runtime.settings
    leases_url = settings.public_url.rstrip("/") + "/leases?state=expired"
    while True:
        now = utcnow()
        if now.hour >= settings.past_lease_digest_hour:
            try:
                async with transaction(runtime.sessions) as session:
                    made = await make_digests(session, now=now, leases_url=leases_url)
                if made:
                    log.info("daily lists of instances past their lease: %d accounts, %d leases",
                             len(made), sum(len(d.items) + d.more for d in made))
            except Exception:  # noqa: BLE001 - a bad moment (database away) is tried again next time
                log.exception("could not make the daily lists of instances past their lease")
        await asyncio.sleep(settings.past_lease_digest_check_seconds)
