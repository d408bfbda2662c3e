"""How ZeroCloud writes things for a person — times, durations, money, who did what — in
one place, so pages, templates, action links and the domain's own error messages say
them the same way: "in 2 h", "ended 5 min ago", "3 days", "2026-11-25 14:00 UTC", "$1.23"."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

from zc_common.messages import LeaseStatus

from zc_api.leases.policy import NEVER_EXPIRES
from zc_api.policies.schemas import LeaseUnit

if TYPE_CHECKING:
    from zc_api.leases.repository import LeaseRecord

ENDED_STATUSES = frozenset({LeaseStatus.reaped, LeaseStatus.released})


# --- times ------------------------------------------------------------------------------


def stamp(moment: datetime | None) -> str:
    """A moment in UTC, whatever zone it came in (a time without one is taken as UTC)."""
    if moment is None:
        return "—"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _nearest(value: float) -> int:
    """Halves up (2.5 days is 3 days, as 3.5 is 4), not to the even number as round() does."""
    return int(value + 0.5)


def span(seconds: float) -> str:
    """A length of time, rounded the way a person reads it: "45 min", "5 h", "3 days"
    (to the nearest unit: a lease renewed for 3 days a moment ago has 3 days left)."""
    seconds = abs(int(seconds))
    if seconds < 60:
        return "under a minute"
    if seconds < 2 * 3600 - 30:
        return f"{_nearest(seconds / 60)} min"
    if seconds < 2 * 86400 - 1800:
        return f"{_nearest(seconds / 3600)} h"
    days = _nearest(seconds / 86400)
    return f"{days} day{'s' if days != 1 else ''}"


def relative(moment: datetime, now: datetime) -> str:
    seconds = (moment - now).total_seconds()
    return f"in {span(seconds)}" if seconds > 0 else f"{span(seconds)} ago"


def time_left(*, status: str, expires_at: datetime, ended_at: datetime | None, now: datetime) -> str:
    """What is left of a lease: "in 2 h", "ended 5 min ago", "no end date"."""
    if status in ENDED_STATUSES:
        return f"ended {relative(ended_at, now)}" if ended_at else "ended"
    if expires_at >= NEVER_EXPIRES:
        return "no end date"
    if expires_at > now:
        return relative(expires_at, now)
    return f"ended {relative(expires_at, now)}"


# --- durations --------------------------------------------------------------------------


def whole_units(seconds: int) -> tuple[int, LeaseUnit]:
    """``seconds`` in the largest unit that says it exactly: (3, days), (90, minutes), (7, seconds)."""
    for unit in (LeaseUnit.days, LeaseUnit.hours, LeaseUnit.minutes):
        if seconds % unit.seconds_each == 0:
            return seconds // unit.seconds_each, unit
    return seconds, LeaseUnit.seconds


def human_duration(seconds: int) -> str:
    """'3 days', '90 minutes': the largest unit that says it exactly."""
    count, unit = whole_units(seconds)
    return f"{count} {unit.value if count != 1 else unit.value[:-1]}"


# --- money ------------------------------------------------------------------------------


def money(amount: Decimal | None) -> str:
    if amount is None:
        return "no price"
    if amount == 0:
        return "$0.00"
    if amount < Decimal("0.01"):
        return "under $0.01"
    cents = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"${cents:,.2f}"


# --- words ------------------------------------------------------------------------------


def sentence(message: str) -> str:
    """A domain error's message ("lease 3 cannot be renewed: …") as a sentence on a page."""
    message = message.strip()
    if not message:
        return message
    return message[:1].upper() + message[1:] + ("" if message.endswith((".", "!", "?")) else ".")


def instance_label(record: LeaseRecord) -> str:
    """A lease's instance as pages name it: "web-1 (i-0abc…)", or its id when it has no name."""
    resource = record.resource
    return f"{resource.name} ({resource.instance_id})" if resource.name else resource.instance_id


# Actors that are ZeroCloud itself: its services, and the messages ingestion acted on.
_SYSTEM_ACTORS = ("service", "system", "reaper", "scheduler", "ingestor")


def actor_name(actor: str, people: dict[str, str]) -> str:
    """How a page names who did something: a person by email (``people`` maps "user:<id>"),
    ZeroCloud for its services and what it did on an AWS event, the owner of a mailed link."""
    if actor in people:
        return people[actor]
    kind, _, rest = actor.partition(":")
    if actor in _SYSTEM_ACTORS or kind == "message":
        return "ZeroCloud"
    if kind == "owner":
        return f"{rest} (from a mailed link)"
    if kind == "github":
        return f"GitHub user {rest}"
    if kind == "user" and rest.isascii() and rest.isdigit():
        return f"user {rest}"
    return actor
