"""Who owns the instances a batch found without a lease, and on what terms: two queries
for the whole batch (each account's policy with its first admin, a confirmed one if it
has any; the users the owner tags name, with whether their address is confirmed, their
overrides and live lease counts), then the policy rules in memory."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.messages import Role

from zc_api import bulk
from zc_api.leases.policy import (
    Candidate,
    EffectivePolicy,
    OwnerChoice,
    effective_policy,
    lease_terms,
    owner_tag_value,
    resolve_owner,
)
from zc_api.models import AccountPolicy, Lease, User, UserPolicy


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


_USER = bulk.table(User)
_ACCOUNTS = bulk.unnest("k", bulk.table(AccountPolicy).c.account_id)
_FIRST_ADMIN = (
    sa.select(_USER.c.id, _USER.c.email)
    .where(_USER.c.account_id == _ACCOUNTS.c.account_id, _USER.c.role == Role.admin)
    .order_by(_USER.c.email_confirmed_at.is_(None), _USER.c.id)
    .limit(sa.literal_column("1"))
    .lateral("a")
)
# Each account's policy (None: it has none) with its first admin, a confirmed one if any.
_POLICIES = (
    sa.select(_ACCOUNTS.c.account_id, AccountPolicy, _FIRST_ADMIN.c.id.label("admin_id"),
              _FIRST_ADMIN.c.email.label("admin_email"))
    .select_from(_ACCOUNTS)
    .outerjoin(AccountPolicy, col(AccountPolicy.account_id) == _ACCOUNTS.c.account_id)
    .outerjoin(_FIRST_ADMIN, sa.true())
)

# Emails are stored lower-case (a check constraint), so the (account_id, email) unique
# index answers this. Live leases are counted only for users with a quota (a CASE
# evaluates its subquery only when it gets there).
_LEASE = bulk.table(Lease).alias("l")
_NAMED = bulk.unnest("n", _USER.c.account_id, _USER.c.email)
_USERS = (
    sa.select(
        _USER.c.id, _USER.c.account_id, _USER.c.email, _USER.c.email_confirmed_at.is_not(None).label("confirmed"),
        UserPolicy,
        sa.case(
            (
                sa.func.coalesce(col(UserPolicy.max_instances), col(AccountPolicy.max_instances_per_user)).is_not(None),
                sa.select(sa.func.count())
                .select_from(_LEASE)
                .where(_LEASE.c.owner_user_id == _USER.c.id, bulk.is_live(_LEASE.c.status))
                .scalar_subquery(),
            )
        ).label("live_leases"),
    )
    .select_from(_USER)
    .outerjoin(UserPolicy, col(UserPolicy.user_id) == _USER.c.id)
    .outerjoin(AccountPolicy, col(AccountPolicy.account_id) == _USER.c.account_id)
    .where(
        sa.or_(
            sa.tuple_(_USER.c.account_id, _USER.c.email).in_(sa.select(_NAMED.c.account_id, _NAMED.c.email)),
            _USER.c.id == sa.any_(bulk.array("admin_ids", _USER.c.id)),
        )
    )
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
    for row in (await session.execute(_POLICIES, {"account_id": account_ids})).all():
        # The defaults, if it has none.
        account_policy = row.AccountPolicy or AccountPolicy(account_id=row.account_id)
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
        {"account_id": [a for a, _ in named], "email": [e for _, e in named], "admin_ids": admin_ids},
    )
    for row in rows.all():
        users[row.account_id][row.email] = Candidate(row.id, row.email, confirmed=row.confirmed)
        live_leases[row.id] = row.live_leases or 0
        if row.UserPolicy is not None:
            overrides[row.id] = row.UserPolicy

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
