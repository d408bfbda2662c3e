"""What people do to a lease: renew it, shut it down now, exempt it, give it to someone
else. Each change is a new version of the lease, in the audit log with who did it and on
the outbox (the new schedule) in the same transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import Conflict, InvalidInput, NotFound
from zc_common.messages import LIVE_LEASE_STATUSES, LeaseChange, LeaseChanged, LeaseStatus, utcnow

from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.display import human_duration, stamp
from zc_api.leases import repository
from zc_api.leases.messages import REAP_RETRY, last_warning, lease_changed
from zc_api.leases.policy import NEVER_EXPIRES, OwnerChoice, normalise_email
from zc_api.leases.repository import LeaseRecord
from zc_api.leases.service import visible_to
from zc_api.models import Lease, User, UserPolicy
from zc_api.outbox import service as outbox

RENEWABLE = frozenset({LeaseStatus.active, LeaseStatus.expired})
# An exempt lease can be shut down or exempted again (to change the reason or the end).
ADJUSTABLE = frozenset({LeaseStatus.active, LeaseStatus.expired, LeaseStatus.exempt})


def as_utc(moment: datetime) -> datetime:
    """A time without a zone is read as UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _why_not(record: LeaseRecord, doing: str) -> str:
    """Why ``doing`` cannot be done to this lease in its status, and what to do instead."""
    lease = record.lease
    match record.status:
        case LeaseStatus.reaping:
            return (f"lease {lease.id} cannot be {doing}: the reaper claimed it and is stopping or terminating "
                    f"its instance now")
        case LeaseStatus.reaped:
            return (f"lease {lease.id} cannot be {doing}: its instance was already "
                    f"{'terminated' if record.policy.action_on_expiry == 'terminate' else 'stopped'}; "
                    "start the instance again and it gets a new lease")
        case LeaseStatus.released:
            return f"lease {lease.id} cannot be {doing}: it was released, its instance is gone"
        case LeaseStatus.exempt:
            return (f"lease {lease.id} cannot be {doing}: it is exempt ({lease.exempt_reason}); an admin can "
                    "exempt it with another end date, or shut it down")
        case _:
            return f"lease {lease.id} cannot be {doing} while it is {lease.status}"


def require_status(record: LeaseRecord, allowed: frozenset[LeaseStatus], doing: str) -> None:
    if record.status not in allowed:
        raise Conflict(_why_not(record, doing))


async def _visible(session: AsyncSession, caller: Principal, lease_id: int) -> LeaseRecord:
    records = await repository.load(session, [lease_id], lock=True, where=visible_to(caller))
    if lease_id not in records:
        raise NotFound(f"lease {lease_id} not found")
    return records[lease_id]


def new_version(
    session: AsyncSession,
    record: LeaseRecord,
    change: LeaseChange,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    retry_in: timedelta = REAP_RETRY,
    warn_now: bool = False,
    **details: Any,
) -> LeaseChanged:
    """Make what the caller changed on ``record.lease`` a new version and audit it;
    answers its LeaseChanged (the new schedule) for the caller to put on the outbox in
    the same transaction (batches enqueue many at once). ``retry_in``: when the reaper
    tries again after a reap_skipped; ``warn_now``: the new version warns at once too.
    The version's last planned warning is kept on the lease (``warn_by``), not yet
    delivered: the reaper's claim waits for it."""
    lease = record.lease
    lease.version += 1
    lease.updated_at = now
    message = lease_changed(
        change, record.snapshot(), actor=actor, now=now, warning_seconds=record.policy.warning_seconds,
        reason=reason, retry_in=retry_in, warn_now=warn_now,
    )
    lease.warn_by, lease.warned_at = last_warning(message), None
    audit.record(
        session, account_id=lease.account_id, actor=actor, action=f"lease.{change.value}", subject_type="lease",
        subject_id=lease.id, reason=reason, message_id=message.message_id, version=lease.version,
        status=lease.status, expires_at=lease.expires_at.isoformat(), **details,
    )
    return message


async def record_change(
    session: AsyncSession,
    record: LeaseRecord,
    change: LeaseChange,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    **details: Any,
) -> LeaseChanged:
    """A new version of one lease, audited, its LeaseChanged on the outbox."""
    message = new_version(session, record, change, actor=actor, now=now, reason=reason, **details)
    await outbox.enqueue(session, [message])
    return message


# --- renew ----------------------------------------------------------------------------


def latest_expiry(record: LeaseRecord, *, now: datetime) -> datetime:
    """The furthest a renewal may take this lease: the owner's maximum lease from now.
    What "renew to the maximum" renews to, and the bound every renewal is checked against."""
    return now + timedelta(seconds=record.effective.max_lease_seconds)


def _within_max(record: LeaseRecord, expires_at: datetime, *, now: datetime, field: str) -> None:
    maximum = record.effective.max_lease_seconds
    latest = latest_expiry(record, now=now)
    if expires_at > latest:
        raise InvalidInput(
            f"a lease can run at most {human_duration(maximum)} ({maximum} s) from now, the maximum lease for "
            f"{record.lease.owner_email}: ask for {stamp(latest)} or earlier",
            field=field,
        )


async def renewed(
    session: AsyncSession,
    record: LeaseRecord,
    *,
    expires_at: datetime,
    actor: str,
    now: datetime,
    via: str,
    **details: Any,
) -> LeaseChanged:
    """Renew a locked lease to ``expires_at`` (already checked against the policy)."""
    require_status(record, RENEWABLE, "renewed")
    lease = record.lease
    previous = lease.expires_at
    lease.status, lease.expires_at = LeaseStatus.active, expires_at
    return await record_change(
        session, record, LeaseChange.renewed, actor=actor, now=now, via=via,
        previous_expires_at=previous.isoformat(), **details,
    )


async def renew(
    session: AsyncSession,
    *,
    caller: Principal,
    lease_id: int,
    extend_by_seconds: int | None = None,
    until: datetime | None = None,
    to_maximum: bool = False,
    now: datetime | None = None,
) -> LeaseRecord:
    """Renew by a duration (added to the current expiry, or to now once that has passed),
    to a time, or ``to_maximum`` (as far as allowed); never further than the owner's
    maximum lease from now."""
    now = now or utcnow()
    record = await _visible(session, caller, lease_id)
    require_status(record, RENEWABLE, "renewed")
    if sum((until is not None, extend_by_seconds is not None, to_maximum)) > 1:
        raise InvalidInput("give extend_by_seconds or until, not both", field="until")
    if to_maximum:
        expires_at, field = latest_expiry(record, now=now), "until"
    elif until is not None:
        expires_at, field = as_utc(until), "until"
        if expires_at <= now:
            raise InvalidInput(f"until ({stamp(expires_at)}) has passed: give a time ahead", field=field)
    elif extend_by_seconds is not None:
        expires_at, field = extended(record, extend_by_seconds, now=now), "extend_by_seconds"
    else:
        raise InvalidInput("give extend_by_seconds or until", field="extend_by_seconds")
    _within_max(record, expires_at, now=now, field=field)
    await renewed(session, record, expires_at=expires_at, actor=caller.actor, now=now, via="api")
    return record


def extended(record: LeaseRecord, seconds: int, *, now: datetime) -> datetime:
    """The expiry ``seconds`` later: added to the current expiry while the lease is
    active, to now once it has expired (time already lost is not given back)."""
    base = max(record.lease.expires_at, now) if record.status is LeaseStatus.active else now
    return base + timedelta(seconds=seconds)


def default_renewal(record: LeaseRecord, *, now: datetime) -> datetime:
    """Where a one-click renewal takes a lease: the owner's default lease more, never
    further than their maximum lease from now."""
    policy = record.effective
    return min(extended(record, policy.lease_seconds, now=now), latest_expiry(record, now=now))


# --- shut down ------------------------------------------------------------------------


async def shut_down(
    session: AsyncSession,
    record: LeaseRecord,
    *,
    actor: str,
    now: datetime,
    via: str,
    reason: str,
    **details: Any,
) -> LeaseChanged:
    """Expire a locked lease now: its timer fires at once and the reaper stops or
    terminates the instance (or, in observe mode, says it would have)."""
    require_status(record, ADJUSTABLE, "shut down")
    lease = record.lease
    previous = lease.expires_at
    lease.status, lease.expires_at, lease.exempt_reason = LeaseStatus.expired, now, None
    return await record_change(
        session, record, LeaseChange.shutdown_requested, actor=actor, now=now, via=via,
        reason=reason, previous_expires_at=previous.isoformat(), **details,
    )


async def shutdown(
    session: AsyncSession, *, caller: Principal, lease_id: int, now: datetime | None = None
) -> LeaseRecord:
    now = now or utcnow()
    record = await _visible(session, caller, lease_id)
    await shut_down(
        session, record, actor=caller.actor, now=now, via="api", reason=f"shut down by {caller.email or caller.actor}"
    )
    return record


# --- exempt ---------------------------------------------------------------------------


async def exempt(
    session: AsyncSession,
    *,
    caller: Principal,
    lease_id: int,
    reason: str,
    until: datetime | None = None,
    now: datetime | None = None,
) -> LeaseRecord:
    """Keep an instance beyond the policy (admins only): until a time, or until an admin
    changes it again."""
    now = now or utcnow()
    record = await _visible(session, caller, lease_id)
    caller.require_admin(record.lease.account_id)
    require_status(record, ADJUSTABLE, "exempted")
    expires_at = NEVER_EXPIRES
    if until is not None:
        expires_at = as_utc(until)
        if expires_at <= now:
            raise InvalidInput(f"until ({stamp(expires_at)}) has passed: give a time ahead", field="until")
        if expires_at >= NEVER_EXPIRES:
            raise InvalidInput("until is too far ahead: leave it out to exempt without an end", field="until")
    lease = record.lease
    previous = lease.expires_at
    lease.status, lease.expires_at, lease.exempt_reason = LeaseStatus.exempt, expires_at, reason
    await record_change(
        session, record, LeaseChange.exempted, actor=caller.actor, now=now, reason=reason,
        until=until.isoformat() if until else None, previous_expires_at=previous.isoformat(),
    )
    return record


# --- owner ----------------------------------------------------------------------------


async def change_owner(
    session: AsyncSession, *, caller: Principal, lease_id: int, email: str, now: datetime | None = None
) -> LeaseRecord:
    """Give a lease to another user of the account (admins only)."""
    now = now or utcnow()
    record = await _visible(session, caller, lease_id)
    lease = record.lease
    caller.require_admin(lease.account_id)
    require_status(record, ADJUSTABLE, "given to another owner")
    wanted = normalise_email(email)
    user = await session.scalar(
        select(User).where(col(User.account_id) == lease.account_id, col(User.email) == wanted)
    )
    if user is None:
        raise InvalidInput(
            f"{wanted} is not a user of this account: add them first (POST /api/v1/accounts/{lease.account_id}/users)",
            field="email",
        )
    if user.email_confirmed_at is None:
        # The new owner would be mailed about it: nothing goes to an unconfirmed address.
        raise InvalidInput(
            f"{wanted} has not confirmed their address yet: they can be given leases once they have", field="email"
        )
    if user.id == lease.owner_user_id:
        return record
    previous = lease.owner_email
    lease.owner_user_id, lease.owner_email = user.id, user.email
    lease.owner_reason = f"owner set by {caller.email or caller.actor}"
    # The new owner's overrides bound the lease from now on.
    record.owner_policy = await session.get(UserPolicy, user.id)
    await record_change(
        session, record, LeaseChange.owner_changed, actor=caller.actor, now=now,
        reason=lease.owner_reason, previous_owner_email=previous, owner_email=user.email,
    )
    return record


# --- the owner tag changed in AWS ------------------------------------------------------

# Owner changes only a person or the owner tag may make: a lease being reaped, already
# reaped, gone or exempt keeps its owner.
REOWNABLE = frozenset({LeaseStatus.active, LeaseStatus.expired})


async def reown_by_tag(
    session: AsyncSession, owners: Mapping[int, OwnerChoice], *, actors: Mapping[int, str], now: datetime
) -> list[LeaseChanged]:
    """The owner tag of these resources (by resource id) changed in AWS: their live leases
    go to the owner the normal rules chose, who gets a fresh notice period (the policy's
    warnings, counted from now) so nobody's instance is reaped on a warning that went to
    someone else. Answers the LeaseChanged messages for the caller to put on the outbox."""
    ids = await repository.ids_where(
        session,
        col(Lease.resource_id).in_(sorted(owners)),
        col(Lease.status).in_([status.value for status in REOWNABLE]),
    )
    messages: list[LeaseChanged] = []
    records = await repository.load(session, ids, lock=True)
    for record in sorted(records.values(), key=lambda r: r.id):
        lease, owner = record.lease, owners[record.lease.resource_id]
        if record.status not in REOWNABLE or (owner.user_id, owner.email) == (lease.owner_user_id, lease.owner_email):
            continue
        messages.append(await _reown(
            session, record, owner, actor=actors[lease.resource_id], now=now,
            reason=f"the owner tag changed: {owner.reason}",
        ))
    return messages


async def reown_from_user(
    session: AsyncSession, *, user_id: int, to: OwnerChoice, actor: str, now: datetime | None = None
) -> int:
    """A user is being removed: their live leases go to ``to`` (an admin), with a fresh
    notice period, through the outbox. Exempt leases change owner and stay exempt; a
    lease being reaped keeps its owner (the reaper is already acting). Answers how many."""
    now = now or utcnow()
    movable = (*REOWNABLE, LeaseStatus.exempt)
    ids = await repository.ids_where(
        session, col(Lease.owner_user_id) == user_id, col(Lease.status).in_([status.value for status in movable]),
    )
    records = await repository.load(session, ids, lock=True)
    messages = [
        await _reown(session, record, to, actor=actor, now=now, reason=to.reason)
        for record in sorted(records.values(), key=lambda r: r.id)
        if record.status in movable and record.lease.owner_user_id == user_id
    ]
    await outbox.enqueue(session, messages)
    return len(messages)


async def _reown(
    session: AsyncSession, record: LeaseRecord, owner: OwnerChoice, *, actor: str, now: datetime, reason: str
) -> LeaseChanged:
    """Give the lease to ``owner``, who gets a fresh notice period (the policy's warnings,
    counted from now) so nobody's instance is reaped on a warning that went to someone else."""
    lease = record.lease
    previous = lease.owner_email
    lease.owner_user_id, lease.owner_email, lease.owner_reason = owner.user_id, owner.email, owner.reason
    record.owner_policy = await session.get(UserPolicy, owner.user_id) if owner.user_id is not None else None
    if record.status in REOWNABLE:
        notice_ends = now + timedelta(seconds=notice_seconds(record.effective.warning_seconds))
        if lease.expires_at < notice_ends:
            lease.status, lease.expires_at = LeaseStatus.active, notice_ends
    return new_version(
        session, record, LeaseChange.owner_changed, actor=actor, now=now, reason=reason,
        previous_owner_email=previous, owner_email=owner.email,
    )


# --- a cloud account switched from observe to enforce ---------------------------------

# The notice period when no warning time is set: nothing is stopped without one.
_MIN_NOTICE_SECONDS = 3600
_FIRST_WARNING_AFTER_SECONDS = 300


def notice_seconds(warning_seconds: Sequence[int]) -> int:
    """A lease's shortest fair notice from now: a little past the policy's longest
    warning, so that warning is still ahead and goes out (an hour when none is set)."""
    return max([*warning_seconds, _MIN_NOTICE_SECONDS]) + _FIRST_WARNING_AFTER_SECONDS


async def enforce_after_observe(
    session: AsyncSession, *, cloud_account_id: int, actor: str, now: datetime | None = None
) -> int:
    """A cloud account went from observe to enforce. Leases that ended while it only
    observed are not stopped the moment the switch is made: each gets a notice period
    (the policy's longest warning time) with its warnings, then is reaped unless renewed.
    Answers how many leases were given one."""
    now = now or utcnow()
    ids = await repository.ids_where(
        session, col(Lease.cloud_account_id) == cloud_account_id, col(Lease.status) == LeaseStatus.expired.value
    )
    records = await repository.load(session, ids, lock=True)
    messages: list[LeaseChanged] = []
    for record in sorted(records.values(), key=lambda r: r.id):
        notice = notice_seconds(record.policy.warning_seconds)
        lease = record.lease
        lease.status, lease.expires_at = LeaseStatus.active, now + timedelta(seconds=notice)
        messages.append(
            new_version(
                session, record, LeaseChange.renewed, actor=actor, now=now,
                reason=f"the cloud account now enforces: ended while observed, reaped after {human_duration(notice)} "
                       "unless renewed",
            )
        )
    await outbox.enqueue(session, messages)
    return len(messages)


# --- a cloud account removed ------------------------------------------------------------


async def release_all(
    session: AsyncSession, *, cloud_account_id: int, actor: str, reason: str, now: datetime | None = None
) -> int:
    """Release every live lease of a cloud account that is being removed: each one a new
    version, audited with ``reason``, its timers cancelled through the outbox. Answers how
    many were released."""
    now = now or utcnow()
    ids = await repository.ids_where(
        session,
        col(Lease.cloud_account_id) == cloud_account_id,
        col(Lease.status).in_(sorted(status.value for status in LIVE_LEASE_STATUSES)),
    )
    records = await repository.load(session, ids, lock=True)
    messages: list[LeaseChanged] = []
    for record in sorted(records.values(), key=lambda r: r.id):
        if record.status not in LIVE_LEASE_STATUSES:  # changed while we waited for the lock
            continue
        record.lease.status, record.lease.ended_at = LeaseStatus.released, now
        messages.append(new_version(session, record, LeaseChange.released, actor=actor, now=now, reason=reason))
    await outbox.enqueue(session, messages)
    return len(messages)
