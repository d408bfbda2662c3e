"""Invitations: an admin invites an email address into their account with a role; the
invitee follows the mailed link and signs in with GitHub to accept. The link is
single-use and expiring, stored only as its SHA-256, and minted when the notifier sends
the mail (``mint_link``): the outbox and the bus never hold it."""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import ColumnElement, and_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import Conflict, InvalidInput, NotFound, ZeroCloudError
from zc_common.internal_api import PEOPLE_LINK_GONE_FIELD, PeopleLink
from zc_common.messages import InvitationCreated, Role, utcnow

from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.auth.tokens import hash_token
from zc_api.display import stamp as _stamp
from zc_api.invitations.schemas import InvitationStatus, status_of
from zc_api.models import Account, Invitation, User
from zc_api.outbox.service import enqueue
from zc_api.pagination import PageParams, paginate
from zc_api.users.schemas import Email

# What secrets.token_urlsafe(32) makes; anything else was never issued.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_EMAIL = TypeAdapter(Email)


class Refusal(str, enum.Enum):
    unknown = "unknown"
    used = "used"
    revoked = "revoked"
    expired = "expired"


class InvitationRefused(ZeroCloudError):
    """An invitation link or invitation that can no longer be used, and why. A
    ZeroCloudError, so one nobody catches still becomes a page saying so."""

    def __init__(self, reason: Refusal, title: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.title = title
        self.status_code = 404 if reason is Refusal.unknown else 410


@dataclass(frozen=True)
class InvitationDetails:
    """What an invitee is shown: which account, who invited them, as what."""

    invitation: Invitation
    account_name: str
    inviter_email: str | None
    inviter_name: str | None

    @property
    def inviter(self) -> str:
        if self.inviter_name and self.inviter_email:
            return f"{self.inviter_name} ({self.inviter_email})"
        return self.inviter_email or self.inviter_name or "An admin"


def normalise_email(value: str) -> str:
    """Lower-case and checked, as every address ZeroCloud keeps."""
    try:
        return _EMAIL.validate_python(value)
    except ValidationError as error:
        raise InvalidInput(f"email {error.errors()[0]['msg'].removeprefix('Value error, ')}", field="email") from None


def _role(value: Role | str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput("role is admin or dev", field="role") from None


# --- an admin's side ---------------------------------------------------------------------


async def create(
    session: AsyncSession,
    *,
    caller: Principal,
    account_id: int,
    email: str,
    role: Role | str = Role.dev,
    ttl_seconds: int,
    now: datetime | None = None,
) -> Invitation:
    """Invite ``email`` into the account (admins only) and queue the mail to it."""
    caller.require_admin(account_id)
    now = now or utcnow()
    email, role = normalise_email(email), _role(role)
    # Pending is a matter of time (expires_at > now), which no unique index can say:
    # two admins inviting the same address at once are serialised here instead.
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"invitation:{account_id}:{email}"}
    )
    user_id = await session.scalar(
        select(col(User.id)).where(col(User.account_id) == account_id, col(User.email) == email)
    )
    if user_id is not None:
        raise Conflict(f"{email} is already a user of this account (user {user_id})", field="email")
    pending = await session.scalar(
        select(col(Invitation.id)).where(
            col(Invitation.account_id) == account_id, col(Invitation.email) == email,
            _in_status(InvitationStatus.pending, now),
        )
    )
    if pending is not None:
        raise Conflict(
            f"{email} already has a pending invitation (invitation {pending}): revoke it first to invite again",
            field="email",
        )
    account = await session.get(Account, account_id)
    inviter = await session.get(User, caller.user_id) if caller.user_id is not None else None
    if account is None:
        raise NotFound(f"account {account_id} not found")
    invitation = Invitation(
        account_id=account_id, email=email, role=role, invited_by_user_id=caller.user_id,
        # The column is NOT NULL and unique; the token mailed is minted later, at sending.
        # Until then it holds the hash of a token nobody ever sees.
        token_hash=hash_token(secrets.token_urlsafe(32)),
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(invitation)
    await session.flush()
    assert invitation.id is not None
    await enqueue(session, [
        InvitationCreated(
            invitation_id=invitation.id, account_id=account_id, account_name=account.name, email=email,
            role=role.value, invited_by_email=inviter.email if inviter else caller.email,
            invited_by_name=inviter.name if inviter else None, expires_at=invitation.expires_at, occurred_at=now,
        )
    ])
    audit.record(
        session, account_id=account_id, actor=caller.actor, action="invitation.created",
        subject_type="invitation", subject_id=invitation.id, email=email, role=role.value,
        expires_at=invitation.expires_at.isoformat(),
    )
    return invitation


def _in_status(status: InvitationStatus, now: datetime) -> ColumnElement[bool]:
    """Invitations in ``status`` at ``now``, as ``status_of`` says, as a SQL condition."""
    accepted, revoked, expires = col(Invitation.accepted_at), col(Invitation.revoked_at), col(Invitation.expires_at)
    if status is InvitationStatus.accepted:
        return accepted.is_not(None)
    if status is InvitationStatus.revoked:
        return and_(accepted.is_(None), revoked.is_not(None))
    if status is InvitationStatus.expired:
        return and_(accepted.is_(None), revoked.is_(None), expires <= now)
    return and_(accepted.is_(None), revoked.is_(None), expires > now)


async def get_all(
    session: AsyncSession,
    *,
    caller: Principal,
    account_id: int,
    page: PageParams,
    status: InvitationStatus | None = None,
    now: datetime | None = None,
) -> tuple[list[Invitation], int]:
    """The account's invitations, newest first (admins only: they name addresses)."""
    caller.require_admin(account_id)
    query = select(Invitation).where(col(Invitation.account_id) == account_id)
    if status is not None:
        query = query.where(_in_status(status, now or utcnow()))
    return await paginate(session, query.order_by(col(Invitation.id).desc()), page)


async def get(session: AsyncSession, *, caller: Principal, invitation_id: int, lock: bool = False) -> Invitation:
    """An invitation of the caller's account (admins only); another tenant's is not there."""
    invitation = await _locked(session, invitation_id) if lock else await session.get(Invitation, invitation_id)
    if invitation is None or caller.kind != "user" or invitation.account_id != caller.account_id:
        raise NotFound(f"invitation {invitation_id} not found")
    caller.require_admin(invitation.account_id)
    return invitation


async def revoke(
    session: AsyncSession, *, caller: Principal, invitation_id: int, now: datetime | None = None
) -> Invitation:
    """The link stops working at once (admins only). An accepted invitation cannot be
    taken back: the person is a user now."""
    invitation = await get(session, caller=caller, invitation_id=invitation_id, lock=True)
    if invitation.revoked_at is not None:
        raise NotFound(f"invitation {invitation_id} not found (or already revoked)")
    if invitation.accepted_at is not None:
        raise Conflict(
            f"invitation {invitation_id} was already accepted: {invitation.email} is a user now "
            "(change or remove the user instead)"
        )
    invitation.revoked_at = now or utcnow()
    audit.record(
        session, account_id=invitation.account_id, actor=caller.actor, action="invitation.revoked",
        subject_type="invitation", subject_id=invitation.id, email=invitation.email, role=invitation.role,
    )
    await session.flush()
    return invitation


async def _locked(session: AsyncSession, invitation_id: int) -> Invitation | None:
    query = (
        select(Invitation).where(col(Invitation.id) == invitation_id)
        .with_for_update().execution_options(populate_existing=True)
    )
    return await session.scalar(query)


# --- the mailed link ---------------------------------------------------------------------


async def mint_link(
    session: AsyncSession, *, invitation_id: int, public_url: str, now: datetime | None = None
) -> PeopleLink:
    """A new token for a pending invitation (for the notifier, as it mails it): the hash
    replaces the previous one, so only the newest mailed link works. NotFound when the
    invitation is no longer pending: there is nothing to mail."""
    now = now or utcnow()
    invitation = await _locked(session, invitation_id)
    if invitation is None or status_of(invitation, now) is not InvitationStatus.pending:
        state = status_of(invitation, now).value if invitation else "unknown"
        raise NotFound(f"invitation {invitation_id} is not pending ({state})", field=PEOPLE_LINK_GONE_FIELD)
    token = secrets.token_urlsafe(32)
    invitation.token_hash = hash_token(token)
    await session.flush()
    return PeopleLink(url=f"{public_url.rstrip('/')}/invitations/{token}", expires_at=invitation.expires_at)


def _refusal(invitation: Invitation, now: datetime) -> InvitationRefused | None:
    status = status_of(invitation, now)
    if status is InvitationStatus.accepted:
        assert invitation.accepted_at is not None
        return InvitationRefused(
            Refusal.used, "This invitation was already accepted",
            f"It was accepted on {_stamp(invitation.accepted_at)}, and an invitation works once. "
            "If that was you, sign in to ZeroCloud with GitHub.",
        )
    if status is InvitationStatus.revoked:
        return InvitationRefused(
            Refusal.revoked, "This invitation was withdrawn",
            "An admin of the account revoked it, so it can no longer be accepted. "
            "Ask them for a new invitation if you still need access.",
        )
    if status is InvitationStatus.expired:
        return InvitationRefused(
            Refusal.expired, "This invitation has expired",
            f"It could be accepted until {_stamp(invitation.expires_at)}. Ask an admin of the account "
            "to invite you again.",
        )
    return None


UNKNOWN = (
    "This invitation link is not valid",
    "ZeroCloud never issued this link, or a newer mail about the same invitation replaced it. "
    "Open the link from the newest invitation mail, or ask an admin of the account to invite you again.",
)


async def inspect_token(session: AsyncSession, *, token: str, now: datetime | None = None) -> Invitation:
    """The pending invitation the link's ``token`` names; else InvitationRefused saying
    why (unknown, used, revoked, expired). Reads only."""
    now = now or utcnow()
    invitation = None
    if _TOKEN_SHAPE.match(token):
        invitation = await session.scalar(select(Invitation).where(col(Invitation.token_hash) == hash_token(token)))
    if invitation is None:
        raise InvitationRefused(Refusal.unknown, *UNKNOWN)
    refusal = _refusal(invitation, now)
    if refusal is not None:
        raise refusal
    return invitation


async def details(session: AsyncSession, invitation: Invitation) -> InvitationDetails:
    account = await session.get(Account, invitation.account_id)
    inviter = await session.get(User, invitation.invited_by_user_id) if invitation.invited_by_user_id else None
    return InvitationDetails(
        invitation=invitation, account_name=account.name if account else f"account {invitation.account_id}",
        inviter_email=inviter.email if inviter else None, inviter_name=inviter.name if inviter else None,
    )


async def accept(session: AsyncSession, *, invitation_id: int, user: User) -> Invitation:
    """Mark the invitation accepted by ``user`` (whom the sign-in made or found); raises
    InvitationRefused when it is no longer pending (used, revoked, expired), so it
    works once even when two sign-ins race.

    The link went to the invited address, so following it proves that address: a user
    whose email is the invitation's is confirmed by it."""
    now = utcnow()
    if user.id is None:  # a user the sign-in has just made
        session.add(user)
        await session.flush()
    invitation = await _locked(session, invitation_id)
    if invitation is None:
        raise InvitationRefused(Refusal.unknown, *UNKNOWN)
    refusal = _refusal(invitation, now)
    if refusal is not None:
        raise refusal
    invitation.accepted_at = now
    invitation.accepted_by_user_id = user.id
    if user.email == invitation.email and user.email_confirmed_at is None:
        user.email_confirmed_at = now
    audit.record(
        session, account_id=invitation.account_id, actor=f"user:{user.id}", action="invitation.accepted",
        subject_type="invitation", subject_id=invitation.id, email=invitation.email, role=invitation.role,
        user_id=user.id, user_email=user.email,
    )
    await session.flush()
    return invitation
