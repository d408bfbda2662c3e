"""LeaseSnapshot and LeaseChanged built from committed rows (ORM objects or result rows
alike), so every place that changes a lease describes it the same way."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID, uuid4

from zc_common.messages import LeaseChange, LeaseChanged, LeaseSnapshot, LeaseStatus

from zc_api.leases.policy import NEVER_EXPIRES, warn_at


class LeaseFields(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def version(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def owner_email(self) -> str: ...
    @property
    def expires_at(self) -> datetime: ...
    @property
    def account_id(self) -> int: ...
    @property
    def cloud_account_id(self) -> int: ...


class ResourceFields(Protocol):
    @property
    def region(self) -> str: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def instance_type(self) -> str | None: ...
    @property
    def name(self) -> str | None: ...


class CloudAccountFields(Protocol):
    @property
    def upstream_account_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> str: ...


def lease_snapshot(
    lease: LeaseFields, *, resource: ResourceFields, cloud_account: CloudAccountFields, action_on_expiry: str
) -> LeaseSnapshot:
    """The lease as committed, with what the scheduler, notifier and reaper need."""
    if lease.id is None:
        raise ValueError("a lease must be flushed (have an id) before it is described")
    return LeaseSnapshot(
        lease_id=lease.id,
        version=lease.version,
        status=LeaseStatus(lease.status),
        owner_email=lease.owner_email,
        expires_at=lease.expires_at,
        account_id=lease.account_id,
        cloud_account_id=lease.cloud_account_id,
        upstream_account_id=cloud_account.upstream_account_id,
        region=resource.region,
        instance_id=resource.instance_id,
        instance_type=resource.instance_type,
        instance_name=resource.name,
        cloud_account_name=cloud_account.name,
        mode=cloud_account.mode,
        action_on_expiry=action_on_expiry,
    )


# A lease the reaper had to leave alone (stop or termination protection, an owner tag
# that changed under it) is never forgotten: the reaper tries again this often, and each
# try that is refused again reminds the owner.
REAP_RETRY = timedelta(days=1)


def lease_changed(
    change: LeaseChange,
    lease: LeaseSnapshot,
    *,
    actor: str,
    now: datetime,
    warning_seconds: Iterable[int] = (),
    reason: str | None = None,
    message_id: UUID | None = None,
    retry_in: timedelta = REAP_RETRY,
    warn_now: bool = False,
) -> LeaseChanged:
    """The message for a committed lease change; it is also the lease's schedule. An
    active lease carries the warnings still ahead of it and its expiry (the scheduler's
    timers); an exemption with an end date and a shutdown request carry only the expiry
    (a shutdown's is now: the reaper is asked at once); one the reaper skipped (or the
    blast-radius cap held) carries a retry ``retry_in`` from now; anything else carries none, which cancels the older
    versions' timers. ``warn_now``: an active lease is also warned at once (a warning
    that could not go out in time, sent again with the reap moved)."""
    warnings: list[datetime] = []
    expire_at = None
    if lease.status is LeaseStatus.active:
        warnings = warn_at(lease.expires_at, warning_seconds, now=now)
        if warn_now:
            warnings = sorted({now, *warnings})
        expire_at = lease.expires_at
    elif lease.status is LeaseStatus.exempt and lease.expires_at < NEVER_EXPIRES:
        expire_at = lease.expires_at
    elif change is LeaseChange.shutdown_requested:
        expire_at = lease.expires_at
    elif change is LeaseChange.reap_skipped and lease.status is LeaseStatus.expired:
        expire_at = now + retry_in
    return LeaseChanged(
        message_id=message_id or uuid4(),
        occurred_at=now,
        change=change,
        lease=lease,
        warn_at=warnings,
        expire_at=expire_at,
        actor=actor,
        reason=reason,
    )


def last_warning(message: LeaseChanged) -> datetime | None:
    """The last warning a lease version's schedule plans (the lease's ``warn_by``): the
    one the reaper's claim waits for. None when the version plans none."""
    return max(message.warn_at, default=None)
