"""Account and user policies: reading them, changing them within their bounds, and
recording every change in the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.errors import InvalidInput, NotFound, NotPermitted

from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.display import human_duration
from zc_api.leases.policy import effective_policy
from zc_api.models import AccountPolicy, UserPolicy
from zc_api.policies.schemas import (
    MAX_SECONDS,
    AccountPolicyUpdate,
    EffectivePolicyPublic,
    LeaseUnit,
    UserPolicyPublic,
    UserPolicyPut,
)
from zc_api.users import service as users

# Every policy field but the quota must hold a value; null is refused rather than guessed.
_NULLABLE = {"max_instances_per_user"}


def lease_seconds(amount: int | None, unit: LeaseUnit | None) -> int | None:
    """``lease_expires_in`` + ``lease_expires_in_units`` in seconds; None when neither is given."""
    if amount is None and unit is None:
        return None
    if amount is None:
        raise InvalidInput(
            "lease_expires_in_units needs lease_expires_in, e.g. 3 (days)", field="lease_expires_in"
        )
    if unit is None:
        raise InvalidInput(
            "lease_expires_in needs lease_expires_in_units: seconds, minutes, hours or days",
            field="lease_expires_in_units",
        )
    seconds = amount * unit.seconds_each
    if seconds > MAX_SECONDS:
        raise InvalidInput(f"a lease can be at most {human_duration(MAX_SECONDS)}", field="lease_expires_in")
    return seconds


async def get_account_policy(session: AsyncSession, *, caller: Principal, account_id: int) -> AccountPolicy:
    caller.require_account(account_id)
    policy = await session.get(AccountPolicy, account_id)
    if policy is None:
        raise NotFound(f"account {account_id} not found")
    return policy


async def update_account_policy(
    session: AsyncSession, *, caller: Principal, account_id: int, update: AccountPolicyUpdate
) -> AccountPolicy:
    caller.require_admin(account_id)
    policy = await session.get(AccountPolicy, account_id, with_for_update=True)
    if policy is None:
        raise NotFound(f"account {account_id} not found")

    changes: dict[str, Any] = {
        name: getattr(update, name)
        for name in update.model_fields_set - {"lease_expires_in", "lease_expires_in_units"}
    }
    default_field = "default_lease_seconds"
    from_units = lease_seconds(update.lease_expires_in, update.lease_expires_in_units)
    if from_units is not None:
        if "default_lease_seconds" in changes:
            raise InvalidInput(
                "send either default_lease_seconds or lease_expires_in, not both", field="lease_expires_in"
            )
        changes["default_lease_seconds"], default_field = from_units, "lease_expires_in"
    for name, value in changes.items():
        if value is None and name not in _NULLABLE:
            raise InvalidInput(f"{name} cannot be null: leave it out to keep the current value", field=name)
    if "action_on_expiry" in changes:
        changes["action_on_expiry"] = changes["action_on_expiry"].value

    default = changes.get("default_lease_seconds", policy.default_lease_seconds)
    maximum = changes.get("max_lease_seconds", policy.max_lease_seconds)
    if default > maximum:
        field = default_field if "default_lease_seconds" in changes else "max_lease_seconds"
        raise InvalidInput(
            f"the default lease ({human_duration(default)}) cannot be longer than the maximum lease "
            f"({human_duration(maximum)})",
            field=field,
        )

    diff = {name: {"from": getattr(policy, name), "to": value} for name, value in changes.items()
            if getattr(policy, name) != value}
    for name in diff:  # only what differs: saving the same policy again writes nothing
        setattr(policy, name, changes[name])
    if diff:
        audit.record(
            session, account_id=account_id, actor=caller.actor, action="account_policy.updated",
            subject_type="account_policy", subject_id=account_id, changes=diff,
        )
    await session.flush()
    await session.refresh(policy)
    return policy


async def get_user_policy(session: AsyncSession, *, caller: Principal, user_id: int) -> UserPolicyPublic:
    user = await users.get(session, caller=caller, user_id=user_id)
    if not caller.is_admin and caller.user_id != user.id:
        raise NotPermitted("only an admin or the user themself can see a user's policy")
    assert user.account_id is not None
    return await _user_policy_public(session, account_id=user.account_id, user_id=user_id)


async def put_user_policy(
    session: AsyncSession, *, caller: Principal, user_id: int, overrides: UserPolicyPut
) -> UserPolicyPublic:
    user = await users.get(session, caller=caller, user_id=user_id)
    assert user.account_id is not None
    caller.require_admin(user.account_id)
    account_policy = await get_account_policy(session, caller=caller, account_id=user.account_id)
    effective = effective_policy(account_policy, overrides)
    if effective.default_lease_seconds > effective.max_lease_seconds:
        field = "max_lease_seconds" if overrides.default_lease_seconds is None else "default_lease_seconds"
        raise InvalidInput(
            f"the default lease ({human_duration(effective.default_lease_seconds)}) cannot be longer than "
            f"the maximum lease ({human_duration(effective.max_lease_seconds)})",
            field=field,
        )

    row = await session.get(UserPolicy, user_id, with_for_update=True)
    if row is None:
        row = UserPolicy(user_id=user_id)
        session.add(row)
    new = overrides.model_dump()
    diff = {name: {"from": getattr(row, name), "to": value} for name, value in new.items()
            if getattr(row, name) != value}
    for name, value in new.items():
        setattr(row, name, value)
    if diff:
        audit.record(
            session, account_id=user.account_id, actor=caller.actor, action="user_policy.updated",
            subject_type="user", subject_id=user_id, changes=diff,
        )
    await session.flush()
    return await _user_policy_public(session, account_id=user.account_id, user_id=user_id)


async def _user_policy_public(session: AsyncSession, *, account_id: int, user_id: int) -> UserPolicyPublic:
    account_policy = await session.get(AccountPolicy, account_id)
    assert account_policy is not None
    row = await session.get(UserPolicy, user_id)
    effective = effective_policy(account_policy, row)
    return UserPolicyPublic(
        user_id=user_id,
        default_lease_seconds=row.default_lease_seconds if row else None,
        max_lease_seconds=row.max_lease_seconds if row else None,
        max_instances=row.max_instances if row else None,
        effective=EffectivePolicyPublic(
            default_lease_seconds=effective.default_lease_seconds,
            max_lease_seconds=effective.max_lease_seconds,
            max_instances=effective.max_instances,
        ),
    )
