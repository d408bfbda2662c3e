"""What timers a lease schedule asks for, each holding the message it will publish."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from zc_common.messages import LeaseChanged, LeaseExpired, LeaseExpiringSoon, Message, SweepRequested

# Names the message ids of lease timers: the same timer (lease, version, kind, time)
# always publishes the same id, so consumers can de-duplicate whatever happens here.
TIMER_NAMESPACE = uuid.UUID("6f1c35a4-2b57-4c52-9a61-0f3f5c9e7d10")


class TimerKind(str, enum.Enum):
    warning = "warning"
    expiry = "expiry"
    sweep = "sweep"


@dataclass(frozen=True)
class Timer:
    kind: TimerKind
    fire_at: datetime
    payload: str
    lease_id: int | None = None
    lease_version: int | None = None


def aware(moment: datetime) -> datetime:
    """A naive time is taken as UTC (what every ZeroCloud service writes)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def newest_per_lease(changes: Iterable[LeaseChanged]) -> list[LeaseChanged]:
    """One change per lease, the highest version (the first of equals), by lease id:
    the order every transaction locks lease rows in, so replicas cannot deadlock."""
    newest: dict[int, LeaseChanged] = {}
    for change in changes:
        known = newest.get(change.lease.lease_id)
        if known is None or change.lease.version > known.lease.version:
            newest[change.lease.lease_id] = change
    return [newest[lease_id] for lease_id in sorted(newest)]


def timers_for(change: LeaseChanged) -> list[Timer]:
    """A warning timer per distinct ``warn_at`` and an expiry timer at ``expire_at``;
    none at all when ``expire_at`` is None (the lease has nothing left to fire)."""
    if change.expire_at is None:
        return []
    lease = change.lease
    timers = []
    for warning_at in sorted({aware(at) for at in change.warn_at}):
        warning = LeaseExpiringSoon(
            message_id=_message_id(TimerKind.warning, lease.lease_id, lease.version, warning_at),
            occurred_at=warning_at,
            lease=lease,
            warning_at=warning_at,
        )
        timers.append(_lease_timer(TimerKind.warning, warning_at, warning, lease.lease_id, lease.version))
    expire_at = aware(change.expire_at)
    expired = LeaseExpired(
        message_id=_message_id(TimerKind.expiry, lease.lease_id, lease.version, expire_at),
        occurred_at=expire_at,
        lease=lease,
    )
    timers.append(_lease_timer(TimerKind.expiry, expire_at, expired, lease.lease_id, lease.version))
    return timers


def sweep_payload() -> str:
    """The stored sweep job; firing stamps it with its time (see ``sweep_message``)."""
    return SweepRequested().model_dump_json()


def sweep_message(fire_at: datetime) -> SweepRequested:
    """The job a sweep timer publishes: everything, every region, named after its time
    so a re-fire after a failed commit carries the same id."""
    return SweepRequested(message_id=uuid.uuid5(TIMER_NAMESPACE, f"sweep:{fire_at.isoformat()}"), occurred_at=fire_at)


def earliest(timers: Sequence[Timer]) -> datetime | None:
    return min((timer.fire_at for timer in timers), default=None)


def _lease_timer(kind: TimerKind, fire_at: datetime, message: Message, lease_id: int, version: int) -> Timer:
    return Timer(kind, fire_at, message.model_dump_json(), lease_id, version)


def _message_id(kind: TimerKind, lease_id: int, version: int, at: datetime) -> uuid.UUID:
    return uuid.uuid5(TIMER_NAMESPACE, f"{kind.value}:{lease_id}:{version}:{at.isoformat()}")
