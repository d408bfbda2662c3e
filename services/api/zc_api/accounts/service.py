"""Accounts: a customer's tenant, created by the user who becomes its first admin."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import false, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import Conflict, InvalidInput, NotFound
from zc_common.messages import Role

from zc_api.accounts.schemas import AccountUpdate
from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.models import DEFAULT_LEASE_SECONDS, DEFAULT_MAX_LEASE_SECONDS, Account, AccountPolicy, User
from zc_api.pagination import PageParams, paginate_rows


async def create(
    session: AsyncSession, *, caller: Principal, name: str, default_lease_seconds: int | None = None
) -> tuple[Account, AccountPolicy]:
    """A new account with its policy; the caller, who must belong to no account yet,
    becomes its admin."""
    # Locked, so two concurrent creates by one user make one account and one 409.
    user = await session.get(User, caller.user_id, with_for_update=True)
    if user is None:
        raise NotFound("your user no longer exists")
    if user.account_id is not None:
        current = await session.get(Account, user.account_id)
        label = f"{user.account_id} ({current.name})" if current else str(user.account_id)
        raise Conflict(f"you already belong to account {label}; a user belongs to one account")

    default = default_lease_seconds or DEFAULT_LEASE_SECONDS
    account = Account(name=name)
    session.add(account)
    await session.flush()
    assert account.id is not None
    policy = AccountPolicy(
        account_id=account.id,
        default_lease_seconds=default,
        # The maximum is two weeks, but never below the default the caller asked for.
        max_lease_seconds=max(DEFAULT_MAX_LEASE_SECONDS, default),
    )
    session.add(policy)
    user.account_id, user.role = account.id, Role.admin
    await session.flush()
    audit.record(
        session, account_id=account.id, actor=caller.actor, action="account.created", subject_type="account",
        subject_id=account.id, name=name, admin_user_id=user.id, default_lease_seconds=default,
    )
    return account, policy


async def get(session: AsyncSession, *, caller: Principal, account_id: int) -> tuple[Account, AccountPolicy]:
    caller.require_account(account_id)
    row = (
        await session.execute(
            select(Account, AccountPolicy)
            .join(AccountPolicy, col(AccountPolicy.account_id) == col(Account.id))
            .where(col(Account.id) == account_id)
        )
    ).first()
    if row is None:
        raise NotFound(f"account {account_id} not found")
    return row[0], row[1]


async def get_all(
    session: AsyncSession, *, caller: Principal, page: PageParams
) -> tuple[list[tuple[Account, AccountPolicy]], int]:
    """The caller's own account (a page of at most one: a user belongs to one account)."""
    mine = col(Account.id) == caller.account_id if caller.account_id is not None else false()
    query = (
        select(Account, AccountPolicy)
        .join(AccountPolicy, col(AccountPolicy.account_id) == col(Account.id))
        .where(mine)
        .order_by(col(Account.id))
    )
    rows, count = await paginate_rows(session, query, page)
    return [(row[0], row[1]) for row in rows], count


async def update(
    session: AsyncSession, *, caller: Principal, account_id: int, update: AccountUpdate
) -> tuple[Account, AccountPolicy]:
    """Rename the account and set or remove its webhook: only the fields sent change."""
    caller.require_admin(account_id)
    account, policy = await get(session, caller=caller, account_id=account_id)
    if "name" in update.model_fields_set and update.name is None:
        raise InvalidInput("name cannot be null: an account has a name", field="name")
    changes: dict[str, dict[str, str | None]] = {}
    if update.name is not None and account.name != update.name:
        changes["name"] = {"from": account.name, "to": update.name}
        account.name = update.name
    if "webhook_url" in update.model_fields_set and account.webhook_url != update.webhook_url:
        # The URL is a credential of the chat channel: the audit says that it changed, not what it is.
        changes["webhook_url"] = {"from": _redacted(account.webhook_url), "to": _redacted(update.webhook_url)}
        account.webhook_url = update.webhook_url
    if changes:
        audit.record(
            session, account_id=account_id, actor=caller.actor, action="account.updated",
            subject_type="account", subject_id=account_id, changes=changes,
        )
        await session.flush()
    return account, policy


def _redacted(url: str | None) -> str | None:
    """``https://hooks.example.com/…``: enough to tell which service, not enough to post."""
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"
