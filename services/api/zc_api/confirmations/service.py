"""Email confirmation: nothing is mailed to a person's address until they follow a
single-use link sent to it. ``request`` queues that mail; the notifier mints the link as
it sends (``mint_link``, stored only as its SHA-256); opening the link shows the address,
and only a POST of that page confirms it (mail scanners follow links)."""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotFound, ZeroCloudError
from zc_common.internal_api import PEOPLE_LINK_GONE_FIELD, PeopleLink
from zc_common.messages import EmailConfirmationRequested, utcnow

from zc_api.audit import service as audit
from zc_api.auth.tokens import hash_token
from zc_api.display import stamp as _stamp
from zc_api.models import EmailConfirmation, User
from zc_api.outbox.service import enqueue

# What secrets.token_urlsafe(32) makes; anything else was never issued.
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class Refusal(str, enum.Enum):
    unknown = "unknown"
    used = "used"
    expired = "expired"
    address_changed = "address_changed"


class ConfirmationRefused(ZeroCloudError):
    """A confirmation link that cannot be used, and why; ``status_code`` is the page's."""

    def __init__(self, reason: Refusal, title: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.title = title
        self.status_code = {Refusal.unknown: 404, Refusal.address_changed: 409}.get(reason, 410)


@dataclass(frozen=True)
class Confirmation:
    """A usable link: its row and the person it confirms."""

    row: EmailConfirmation
    user: User


async def request(session: AsyncSession, *, user: User, actor: str | None = None) -> EmailConfirmationRequested | None:
    """Queue the confirmation mail to the user's address (in the caller's transaction);
    None, and nothing queued, when the address is confirmed already."""
    if user.email_confirmed_at is not None:
        return None
    if user.id is None:
        session.add(user)
        await session.flush()
    assert user.id is not None
    message = EmailConfirmationRequested(user_id=user.id, account_id=user.account_id, email=user.email, name=user.name)
    await enqueue(session, [message])
    audit.record(
        session, account_id=user.account_id, actor=actor or f"user:{user.id}", action="email.confirmation_requested",
        subject_type="user", subject_id=user.id, email=user.email, message_id=message.message_id,
    )
    return message


async def mint_link(
    session: AsyncSession, *, user_id: int, public_url: str, ttl_seconds: int, now: datetime | None = None
) -> PeopleLink:
    """A new single-use link for the user's current address (for the notifier, as it
    mails it). NotFound when the user is gone or already confirmed: nothing to mail."""
    now = now or utcnow()
    user = await session.get(User, user_id)
    if user is None or user.email_confirmed_at is not None:
        state = "gone" if user is None else "already confirmed"
        raise NotFound(f"user {user_id} needs no confirmation mail ({state})", field=PEOPLE_LINK_GONE_FIELD)
    token = secrets.token_urlsafe(32)
    row = EmailConfirmation(
        token_hash=hash_token(token), user_id=user_id, email=user.email, expires_at=now + timedelta(seconds=ttl_seconds)
    )
    session.add(row)
    await session.flush()
    return PeopleLink(url=f"{public_url.rstrip('/')}/confirm-email/{token}", expires_at=row.expires_at)


async def _find(session: AsyncSession, token: str, *, lock: bool, now: datetime) -> Confirmation:
    """The confirmation ``token`` names, if it can still be used; else ConfirmationRefused."""
    row: EmailConfirmation | None = None
    if _TOKEN_SHAPE.match(token):
        query = select(EmailConfirmation).where(col(EmailConfirmation.token_hash) == hash_token(token))
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row = await session.scalar(query)
    user = await session.get(User, row.user_id, with_for_update=lock or None) if row is not None else None
    if row is None or user is None:
        raise ConfirmationRefused(
            Refusal.unknown, "This confirmation link is not valid",
            "ZeroCloud never issued this link: it may have been mistyped or cut short by the mail program. "
            "Nothing was changed. Open the link from the mail again.",
        )
    if row.used_at is not None:
        raise ConfirmationRefused(
            Refusal.used, "This link was already used",
            f"{row.email} was confirmed with it on {_stamp(row.used_at)}; each link works once. Nothing else to do.",
        )
    if row.expires_at <= now:
        raise ConfirmationRefused(
            Refusal.expired, "This confirmation link has expired",
            f"It worked until {_stamp(row.expires_at)}. Nothing was changed. Sign in to ZeroCloud to get a new one.",
        )
    if user.email != row.email:
        raise ConfirmationRefused(
            Refusal.address_changed, "Your address changed since this link was sent",
            f"The link confirms {row.email}, but your ZeroCloud address is now {user.email}. Nothing was changed. "
            "Use the link mailed to the new address.",
        )
    return Confirmation(row=row, user=user)


async def inspect(session: AsyncSession, *, token: str, now: datetime | None = None) -> Confirmation:
    """What the link would confirm, for the page it opens. Reads only."""
    return await _find(session, token, lock=False, now=now or utcnow())


async def confirm(session: AsyncSession, *, token: str, now: datetime | None = None) -> Confirmation:
    """Confirm the address the link was mailed to, and spend the link, in one transaction."""
    now = now or utcnow()
    found = await _find(session, token, lock=True, now=now)
    found.row.used_at = now
    if found.user.email_confirmed_at is None:
        found.user.email_confirmed_at = now
    audit.record(
        session, account_id=found.user.account_id, actor=f"user:{found.user.id}", action="email.confirmed",
        subject_type="user", subject_id=found.user.id, email=found.row.email, confirmation_id=found.row.id,
    )
    await session.flush()
    return found
