"""Email confirmation: nothing is mailed to a person's address until they follow a
single-use link sent to it. ``request`` queues that mail; the notifier mints the link as
it sends (``mint_link``, stored only as its SHA-256); opening the link shows the address,
and only a POST of that page confirms it (mail scanners follow links)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.errors import NotFound
from zc_common.internal_api import PEOPLE_LINK_GONE_FIELD, PeopleLink
from zc_common.messages import EmailConfirmationRequested, utcnow

from zc_api import single_use
from zc_api.audit import service as audit
from zc_api.models import EmailConfirmation, User
from zc_api.outbox.service import enqueue
from zc_api.single_use import Refusal

# The link mailed to confirm an address; past the token, the address must still be the person's.
LINKS = single_use.Kind(
    EmailConfirmation, path="/confirm-email", words={
        Refusal.unknown: (
            "This confirmation link is not valid",
            "ZeroCloud never issued this link: it may have been mistyped or cut short by the mail program. "
            "Nothing was changed. Open the link from the mail again.",
        ),
        Refusal.used: (
            "This link was already used",
            "{row.email} was confirmed with it on {row.used_at:%Y-%m-%d %H:%M} UTC; each link works once. "
            "Nothing else to do.",
        ),
        Refusal.expired: (
            "This confirmation link has expired",
            "It worked until {row.expires_at:%Y-%m-%d %H:%M} UTC. Nothing was changed. "
            "Sign in to ZeroCloud to get a new one.",
        ),
        Refusal.address_changed: (
            "Your address changed since this link was sent",
            "The link confirms {row.email}, but your ZeroCloud address is now {email}. Nothing was changed. "
            "Use the link mailed to the new address.",
        ),
    },
)


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
    minted = single_use.mint()
    row = EmailConfirmation(
        token_hash=minted.token_hash, user_id=user_id, email=user.email,
        expires_at=now + timedelta(seconds=ttl_seconds),
    )
    session.add(row)
    await session.flush()
    return PeopleLink(url=LINKS.url(public_url, minted.token), expires_at=row.expires_at)


async def _find(session: AsyncSession, token: str, *, lock: bool, now: datetime) -> Confirmation:
    """The confirmation ``token`` names, if it can still be used; else LinkRefused."""
    row = await LINKS.find(session, token, lock=lock)
    user = await session.get(User, row.user_id, with_for_update=lock or None) if row is not None else None
    if row is None or user is None:  # a link of a person since removed is as unknown as a forged one
        raise LINKS.refuse(Refusal.unknown)
    LINKS.check(row, now=now)
    if user.email != row.email:
        raise LINKS.refuse(Refusal.address_changed, row=row, email=user.email)
    return Confirmation(row=row, user=user)


async def inspect(session: AsyncSession, *, token: str, now: datetime | None = None) -> Confirmation:
    """What the link would confirm, for the page it opens. Reads only."""
    return await _find(session, token, lock=False, now=now or utcnow())


async def confirm(session: AsyncSession, *, token: str, now: datetime | None = None) -> Confirmation:
    """Confirm the address the link was mailed to, and spend the link, in one transaction."""
    now = now or utcnow()
    found = await _find(session, token, lock=True, now=now)
    LINKS.spend(found.row, now=now)
    if found.user.email_confirmed_at is None:
        found.user.email_confirmed_at = now
    audit.record(
        session, account_id=found.user.account_id, actor=f"user:{found.user.id}", action="email.confirmed",
        subject_type="user", subject_id=found.user.id, email=found.row.email, confirmation_id=found.row.id,
    )
    await session.flush()
    return found
