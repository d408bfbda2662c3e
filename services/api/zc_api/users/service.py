"""Users of an account: admins who set policy and developers who own instances."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import Conflict, InvalidInput, NotFound
from zc_common.messages import Role

from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.confirmations import service as confirmations
from zc_api.leases import actions as leases
from zc_api.leases.policy import OwnerChoice
from zc_api.models import JoinedHow, RemovedUser, User
from zc_api.pagination import PageParams, paginate
from zc_api.users.schemas import UserCreate, UserUpdate


async def get(session: AsyncSession, *, caller: Principal, user_id: int) -> User:
    """A user of the caller's account (or the caller themself); anyone else is not found."""
    user = await session.get(User, user_id)
    if caller.kind != "user" or user is None:
        raise NotFound(f"user {user_id} not found")
    if user.id != caller.user_id and (user.account_id is None or user.account_id != caller.account_id):
        raise NotFound(f"user {user_id} not found")
    return user


async def me(session: AsyncSession, *, caller: Principal) -> User:
    assert caller.user_id is not None
    return await get(session, caller=caller, user_id=caller.user_id)


async def get_all(
    session: AsyncSession, *, caller: Principal, account_id: int, page: PageParams
) -> tuple[list[User], int]:
    caller.require_account(account_id)
    query = select(User).where(col(User.account_id) == account_id).order_by(col(User.id))
    return await paginate(session, query, page)


async def emails(session: AsyncSession, *, caller: Principal, user_ids: Iterable[int]) -> dict[int, str]:
    """The email of each of these users who is in the caller's account (one statement;
    anyone else's id is left out), as pages name who did what."""
    ids = sorted(set(user_ids))
    if not ids or caller.account_id is None:
        return {}
    caller.require_account(caller.account_id)
    rows = await session.execute(
        select(col(User.id), col(User.email)).where(col(User.id).in_(ids), col(User.account_id) == caller.account_id)
    )
    return {user_id: email for user_id, email in rows.all() if user_id is not None}


async def create(session: AsyncSession, *, caller: Principal, account_id: int, new: UserCreate) -> User:
    caller.require_admin(account_id)
    taken = await session.scalar(
        select(col(User.id)).where(col(User.account_id) == account_id, col(User.email) == new.email)
    )
    if taken is not None:
        raise Conflict(f"{new.email} is already a user of this account (user {taken})", field="email")
    if new.github_login is not None:
        await _ensure_login_free(session, new.github_login)
    # Not confirmed by the admin's act: an admin could otherwise make ZeroCloud mail any
    # address they type. The person is mailed a confirmation link; until they follow it
    # nothing else is mailed to them, and instances tagged with them are leased to an
    # admin (the owner rules skip unconfirmed people).
    user = User(
        account_id=account_id, email=new.email, role=new.role, github_login=new.github_login,
        email_confirmed_at=None, joined_how=JoinedHow.added,
    )
    session.add(user)
    await _flush(session)
    audit.record(
        session, account_id=account_id, actor=caller.actor, action="user.created", subject_type="user",
        subject_id=user.id, email=user.email, role=user.role, github_login=user.github_login,
    )
    await confirmations.request(session, user=user, actor=caller.actor)
    return user


async def update(session: AsyncSession, *, caller: Principal, user_id: int, update: UserUpdate) -> User:
    user = await get(session, caller=caller, user_id=user_id)
    if user.account_id is None:
        raise NotFound(f"user {user_id} is not in an account yet")
    caller.require_admin(user.account_id)
    changes: dict[str, Any] = {}
    if "role" in update.model_fields_set:
        if update.role is None:
            raise InvalidInput("role cannot be null: it is admin or dev", field="role")
        changes["role"] = update.role.value
    if "github_login" in update.model_fields_set:
        changes["github_login"] = update.github_login

    if changes.get("role") == Role.dev and user.role == Role.admin:
        # Lock the admins so two concurrent demotions cannot leave the account without one.
        admins = (await session.scalars(
            select(col(User.id))
            .where(col(User.account_id) == user.account_id, col(User.role) == Role.admin.value)
            .with_for_update()
        )).all()
        if len(admins) <= 1:
            raise Conflict(
                f"{user.email} is the account's only admin: make someone else admin first", field="role"
            )
    if changes.get("github_login") not in (None, user.github_login):
        await _ensure_login_free(session, changes["github_login"])

    diff = {name: {"from": getattr(user, name), "to": value} for name, value in changes.items()
            if getattr(user, name) != value}
    for name, value in changes.items():
        setattr(user, name, value)
    await _flush(session)
    if diff:
        audit.record(
            session, account_id=user.account_id, actor=caller.actor, action="user.updated",
            subject_type="user", subject_id=user.id, changes=diff,
        )
    return user


async def remove(session: AsyncSession, *, caller: Principal, user_id: int) -> tuple[str, int]:
    """Remove a user from their account (admin): their live leases go to the admin who
    removed them (to another admin when they remove themself), each with a fresh notice
    period; their tokens, sessions and overrides go with them; the audit trail stays, and
    their address does not rejoin by an allowed email pattern. Answers their address and
    how many leases changed owner. The account's only admin cannot be removed."""
    user = await get(session, caller=caller, user_id=user_id)
    if user.account_id is None:
        raise NotFound(f"user {user_id} is not in an account")
    account_id = user.account_id
    caller.require_admin(account_id)
    # Lock the admins: two removals at once cannot leave the account without one.
    admins = list((await session.scalars(
        select(User).where(col(User.account_id) == account_id, col(User.role) == Role.admin.value)
        .order_by(col(User.id)).with_for_update()
    )).all())
    others = [admin for admin in admins if admin.id != user.id]
    if not others:
        raise Conflict(f"{user.email} is the account's only admin: make someone else admin first")
    heir = next((admin for admin in others if admin.id == caller.user_id), others[0])
    if heir.email_confirmed_at is None:  # leases go only to someone who can be mailed
        heir = next((admin for admin in others if admin.email_confirmed_at is not None), heir)
    reowned = await leases.reown_from_user(
        session, user_id=user_id, actor=caller.actor,
        to=OwnerChoice(heir.id, heir.email, reason=f"{user.email} was removed from the account", from_tag=False),
    )
    audit.record(
        session, account_id=account_id, actor=caller.actor, action="user.removed", subject_type="user",
        subject_id=user.id, email=user.email, role=user.role, github_login=user.github_login,
        leases_reowned=reowned, leases_to=heir.email,
    )
    await session.execute(
        pg_insert(RemovedUser).values(account_id=account_id, email=user.email, removed_by=caller.actor[:200])
        .on_conflict_do_update(index_elements=["account_id", "email"],
                               set_={"removed_at": func.now(), "removed_by": caller.actor[:200]})
    )
    await session.delete(user)  # tokens, web sessions, overrides and confirmations cascade
    await session.flush()
    return user.email, reowned


async def _ensure_login_free(session: AsyncSession, login: str) -> None:
    if await session.scalar(select(col(User.id)).where(col(User.github_login) == login)) is not None:
        raise Conflict(
            f"GitHub login {login} is already linked to another ZeroCloud user", field="github_login"
        )


async def _flush(session: AsyncSession) -> None:
    """Flush; a unique constraint lost to a concurrent request is a conflict, not a 500."""
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("a user with this email or GitHub login was just created: try again") from None
