"""Lease policy as pure functions: the effective policy for a user, who owns an instance
and why, when its lease ends, and when its owner is warned."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol


class AccountPolicyFields(Protocol):
    """What the owner and expiry rules read from an account's policy (a row or a model)."""

    @property
    def default_lease_seconds(self) -> int: ...
    @property
    def max_lease_seconds(self) -> int: ...
    @property
    def owner_tag(self) -> str: ...
    @property
    def allowed_email_patterns(self) -> Sequence[str]: ...
    @property
    def max_instances_per_user(self) -> int | None: ...
    @property
    def over_quota_grace_seconds(self) -> int: ...
    @property
    def warning_seconds(self) -> Sequence[int]: ...
    @property
    def action_on_expiry(self) -> str: ...


class UserPolicyFields(Protocol):
    """A user's overrides; ``None`` means 'as the account'."""

    @property
    def default_lease_seconds(self) -> int | None: ...
    @property
    def max_lease_seconds(self) -> int | None: ...
    @property
    def max_instances(self) -> int | None: ...


@dataclass(frozen=True)
class EffectivePolicy:
    """The account policy with one user's overrides applied."""

    default_lease_seconds: int
    max_lease_seconds: int
    max_instances: int | None
    over_quota_grace_seconds: int
    warning_seconds: tuple[int, ...]
    action_on_expiry: str

    @property
    def lease_seconds(self) -> int:
        """The default lease, never longer than the maximum (a user override may say more)."""
        return min(self.default_lease_seconds, self.max_lease_seconds)


def effective_policy(account: AccountPolicyFields, user: UserPolicyFields | None = None) -> EffectivePolicy:
    def pick(override: int | None, default: int | None) -> int | None:
        return default if override is None else override

    default = pick(user.default_lease_seconds if user else None, account.default_lease_seconds)
    maximum = pick(user.max_lease_seconds if user else None, account.max_lease_seconds)
    assert default is not None and maximum is not None
    return EffectivePolicy(
        default_lease_seconds=default,
        max_lease_seconds=maximum,
        max_instances=pick(user.max_instances if user else None, account.max_instances_per_user),
        over_quota_grace_seconds=account.over_quota_grace_seconds,
        warning_seconds=tuple(account.warning_seconds),
        action_on_expiry=account.action_on_expiry,
    )


# --- owner ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A user who may own an instance. Nothing is mailed to an address before it is
    confirmed, so an unconfirmed user cannot own one yet."""

    user_id: int
    email: str
    confirmed: bool = True


@dataclass(frozen=True)
class OwnerChoice:
    """Who owns an instance and why. ``user_id`` is None only when the account has no
    admin to fall back to."""

    user_id: int | None
    email: str
    reason: str
    from_tag: bool


NO_OWNER_TAG = "no owner tag"


def normalise_email(value: str) -> str:
    return value.strip().lower()


def owner_tag_value(tags: Mapping[str, str], owner_tag: str) -> str | None:
    """The owner named by the instance's tags: the key matched case-insensitively (an
    exact match wins), the value stripped and lower-cased; None when absent or blank."""
    wanted = owner_tag.strip().lower()
    keys = sorted((k for k in tags if k.strip().lower() == wanted), key=lambda k: (k != owner_tag, k))
    for key in keys:
        value = normalise_email(tags[key])
        if value:
            return value
    return None


# --- allowed email patterns -------------------------------------------------------------
#
# A pattern is an address or a domain, never a glob: "ops@contractor.io" (that person),
# "*@bigdb.com" (anyone at bigdb.com), "*@*.bigdb.com" (anyone at a subdomain of it). So
# an address matches by set lookup — its own few candidates against the policy's set —
# and no pattern can mean "everyone" ("*", "*@*", "*@*.com" are refused).

MAX_EMAIL_PATTERNS = 100
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_LOCAL = re.compile(r"[a-z0-9!#$%&'+/=^_`{|}~.-]{1,64}")
PATTERN_FORMS = "write an address (ops@bigdb.com), a domain (*@bigdb.com) or its subdomains (*@*.bigdb.com)"


def _domain(value: str) -> bool:
    labels = value.split(".")
    return len(labels) >= 2 and len(value) <= 253 and all(_LABEL.fullmatch(label) for label in labels)


def email_pattern(value: str) -> str:
    """The pattern in its one stored form (trimmed, lower-cased); ValueError saying why
    it is not one."""
    pattern = normalise_email(value)
    local, at, domain = pattern.rpartition("@")
    if domain.startswith("*."):
        if local == "*" and at and _domain(domain[2:]):
            return pattern
    elif at and _domain(domain) and (local == "*" or _LOCAL.fullmatch(local)):
        return pattern
    if pattern in ("*", "*@*") or pattern.startswith("*@*.") and "." not in pattern[4:]:
        raise ValueError(f"{value!r} would let everyone in: {PATTERN_FORMS}")
    raise ValueError(f"{value!r} is not a pattern: {PATTERN_FORMS}")


def pattern_candidates(email: str) -> list[str]:
    """Every pattern that matches ``email``: the address, its domain, and each parent
    domain of at least two labels as a subdomain pattern."""
    email = normalise_email(email)
    _, at, domain = email.rpartition("@")
    if not at or not domain:
        return [email]
    labels = domain.split(".")
    return [email, f"*@{domain}", *(f"*@*.{'.'.join(labels[i:])}" for i in range(1, len(labels) - 1))]


def email_allowed(email: str, patterns: Iterable[str]) -> bool:
    """Whether ``email`` matches one of the patterns, case-insensitively; no patterns
    means any email is allowed."""
    wanted = {normalise_email(p) for p in patterns if p.strip()}
    return not wanted or not wanted.isdisjoint(pattern_candidates(email))


def resolve_owner(
    tags: Mapping[str, str],
    policy: AccountPolicyFields,
    *,
    users: Mapping[str, Candidate],
    first_admin: Candidate | None,
) -> OwnerChoice:
    """The user the owner tag names, if they belong to the account, their email is
    allowed and confirmed; otherwise the account's first admin, with the reason it fell to them.

    ``users`` maps lower-cased emails to the account's users (it may hold only those the
    batch names)."""
    named = owner_tag_value(tags, policy.owner_tag)
    if named is None:
        reason = NO_OWNER_TAG
    elif not email_allowed(named, policy.allowed_email_patterns):
        reason = f"{named} is outside the allowed email patterns"
    elif named not in users:
        reason = f"owner tag names unknown user {named}"
    elif not users[named].confirmed:
        reason = f"{named} has not confirmed their address yet"
    else:
        user = users[named]
        return OwnerChoice(user.user_id, user.email, reason=f"owner tag names {user.email}", from_tag=True)
    if first_admin is None:
        return OwnerChoice(None, "", reason=f"{reason}; the account has no admin", from_tag=False)
    return OwnerChoice(user_id=first_admin.user_id, email=first_admin.email, reason=reason, from_tag=False)


# --- expiry ---------------------------------------------------------------------------

# The expiry of a lease exempted without an end date: a time that never comes (the column
# is not null, and "expires_at <= now" stays the one test of being due).
NEVER_EXPIRES = datetime(9999, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class LeaseTerms:
    expires_at: datetime
    over_quota: bool


def lease_terms(policy: EffectivePolicy, *, now: datetime, live_leases: int) -> LeaseTerms:
    """The expiry of a new lease for an owner who already holds ``live_leases`` live
    leases: the default lease, or the short grace period once over the quota."""
    if policy.max_instances is not None and live_leases >= policy.max_instances:
        return LeaseTerms(now + timedelta(seconds=policy.over_quota_grace_seconds), over_quota=True)
    return LeaseTerms(now + timedelta(seconds=policy.lease_seconds), over_quota=False)


# At most this many warnings before a lease ends, each this far from the next: every
# warning is a timer in the scheduler and a mail in someone's inbox.
MAX_WARNINGS = 10
MIN_WARNING_SPACING_SECONDS = 60


def warning_times(seconds: Iterable[int]) -> list[int]:
    """The warnings in their one stored form (distinct, latest-first: the longest before
    the end first); ValueError when too many or too close together."""
    times = sorted(set(seconds), reverse=True)
    if len(times) > MAX_WARNINGS:
        raise ValueError(f"at most {MAX_WARNINGS} warnings, not {len(times)}")
    for earlier, later in zip(times, times[1:]):
        if earlier - later < MIN_WARNING_SPACING_SECONDS:
            raise ValueError(
                f"warnings {earlier} s and {later} s before the end are less than "
                f"{MIN_WARNING_SPACING_SECONDS} s apart"
            )
    return times


def warn_at(expires_at: datetime, warning_seconds: Iterable[int], *, now: datetime) -> list[datetime]:
    """When the owner is warned before ``expires_at``: only the moments still ahead,
    earliest first, without duplicates."""
    return list(_warn_at(expires_at, tuple(warning_seconds), now))


@functools.lru_cache(maxsize=256)
def _warn_at(expires_at: datetime, warning_seconds: tuple[int, ...], now: datetime) -> tuple[datetime, ...]:
    # A batch creates many leases with the same expiry at the same moment.
    moments = {expires_at - timedelta(seconds=s) for s in warning_seconds if s > 0}
    return tuple(sorted(moment for moment in moments if moment > now))
