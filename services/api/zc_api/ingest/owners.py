"""Who owns the instances a batch found without a lease, and on what terms: two queries
for the whole batch (each account's policy with its first admin, a confirmed one if it
has any; the users the owner tags name, with whether their address is confirmed, their
overrides and live lease counts), then the policy rules in memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from zc_api.leases.policy import (
    Candidate,
    EffectivePolicy,
    OwnerChoice,
    effective_policy,
    lease_terms,
    owner_tag_value,
    resolve_owner,
)
from zc_api.models import LIVE_STATUSES_SQL, AccountPolicy, UserPolicy


@dataclass(frozen=True)
class LeaseCandidate:
    """A live resource of this batch that holds no live lease."""

    resource_id: int
    account_id: int
    cloud_account_id: int
    instance_id: str
    tags: Mapping[str, str]
    launch_time: datetime | None


@dataclass(frozen=True)
class NewLease:
    """The lease a candidate should get."""

    resource_id: int
    account_id: int
    cloud_account_id: int
    owner: OwnerChoice
    expires_at: datetime
    over_quota: bool
    policy: EffectivePolicy
    owner_tag: str  # the tag key the account's policy reads the owner from


_POLICIES = text(
    """
    SELECT k.account_id, p.account_id IS NOT NULL AS has_policy,
           p.default_lease_seconds, p.max_lease_seconds, p.owner_tag, p.allowed_email_patterns,
           p.max_instances_per_user, p.over_quota_grace_seconds, p.warning_seconds, p.action_on_expiry,
           a.id AS admin_id, a.email AS admin_email
    FROM unnest(CAST(:account_ids AS int[])) AS k(account_id)
    LEFT JOIN account_policy p ON p.account_id = k.account_id
    LEFT JOIN LATERAL (
        SELECT u.id, u.email FROM app_user u
        WHERE u.account_id = k.account_id AND u.role = 'admin'
        ORDER BY u.email_confirmed_at IS NULL, u.id LIMIT 1
    ) a ON true
    """
)

# Emails are stored lower-case (a check constraint), so the (account_id, email) unique
# index answers this. Live leases are counted only for users with a quota (a CASE
# evaluates its subquery only when it gets there).
_USERS = text(
    f"""
    SELECT u.id, u.account_id, u.email, u.email_confirmed_at IS NOT NULL AS confirmed,
           up.user_id IS NOT NULL AS has_policy, up.default_lease_seconds, up.max_lease_seconds,
           up.max_instances,
           CASE WHEN coalesce(up.max_instances, p.max_instances_per_user) IS NOT NULL THEN
               (SELECT count(*) FROM lease l WHERE l.owner_user_id = u.id AND l.{LIVE_STATUSES_SQL})
           END AS live_leases
    FROM app_user u
    LEFT JOIN user_policy up ON up.user_id = u.id
    LEFT JOIN account_policy p ON p.account_id = u.account_id
    WHERE (u.account_id, u.email) IN (
              SELECT * FROM unnest(CAST(:account_ids AS int[]), CAST(:emails AS text[])))
       OR u.id = ANY(CAST(:admin_ids AS int[]))
    """
)


@dataclass
class _AccountRules:
    policy: AccountPolicy
    first_admin: Candidate | None


async def assign_owners(
    session: AsyncSession, candidates: Sequence[LeaseCandidate], *, now: datetime
) -> list[NewLease]:
    """A lease for every candidate: its owner (and why) and its expiry, counting the
    owner's live leases plus those given earlier in this batch against the quota.
    Earlier-launched instances are served first, so they are the ones within quota."""
    if not candidates:
        return []
    rules: dict[int, _AccountRules] = {}
    account_ids = sorted({c.account_id for c in candidates})
    for row in (await session.execute(_POLICIES, {"account_ids": account_ids})).all():
        account_policy = AccountPolicy(account_id=row.account_id)  # the defaults, if it has none
        if row.has_policy:
            account_policy = AccountPolicy(
                account_id=row.account_id,
                default_lease_seconds=row.default_lease_seconds,
                max_lease_seconds=row.max_lease_seconds,
                owner_tag=row.owner_tag,
                allowed_email_patterns=list(row.allowed_email_patterns),
                max_instances_per_user=row.max_instances_per_user,
                over_quota_grace_seconds=row.over_quota_grace_seconds,
                warning_seconds=list(row.warning_seconds),
                action_on_expiry=row.action_on_expiry,
            )
        admin = Candidate(row.admin_id, row.admin_email) if row.admin_id is not None else None
        rules[row.account_id] = _AccountRules(account_policy, admin)

    named = sorted(
        {
            (c.account_id, email)
            for c in candidates
            if (email := owner_tag_value(c.tags, rules[c.account_id].policy.owner_tag)) is not None
        }
    )
    admin_ids = sorted({r.first_admin.user_id for r in rules.values() if r.first_admin is not None})
    users: dict[int, dict[str, Candidate]] = {account_id: {} for account_id in rules}
    overrides: dict[int, UserPolicy] = {}
    live_leases: Counter[int] = Counter()
    rows = await session.execute(
        _USERS,
        {"account_ids": [a for a, _ in named], "emails": [e for _, e in named], "admin_ids": admin_ids},
    )
    for row in rows.all():
        users[row.account_id][row.email] = Candidate(row.id, row.email, confirmed=row.confirmed)
        live_leases[row.id] = row.live_leases or 0
        if row.has_policy:
            overrides[row.id] = UserPolicy(
                user_id=row.id,
                default_lease_seconds=row.default_lease_seconds,
                max_lease_seconds=row.max_lease_seconds,
                max_instances=row.max_instances,
            )

    leases = []
    for candidate in sorted(candidates, key=lambda c: (c.launch_time or now, c.instance_id)):
        account = rules[candidate.account_id]
        owner = resolve_owner(
            candidate.tags, account.policy, users=users[candidate.account_id], first_admin=account.first_admin
        )
        policy = effective_policy(account.policy, overrides.get(owner.user_id) if owner.user_id else None)
        terms = lease_terms(policy, now=now, live_leases=live_leases[owner.user_id] if owner.user_id else 0)
        if owner.user_id is not None:
            live_leases[owner.user_id] += 1
        leases.append(
            NewLease(
                resource_id=candidate.resource_id,
                account_id=candidate.account_id,
                cloud_account_id=candidate.cloud_account_id,
                owner=owner,
                expires_at=terms.expires_at,
                over_quota=terms.over_quota,
                policy=policy,
                owner_tag=account.policy.owner_tag,
            )
        )
    return leases
