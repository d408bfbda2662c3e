"""Browser sign-ins as the database keeps them: a web session per signed-in browser (only
its token's hash stored), found by that token, slid forward on use, ended on sign-out;
and the single-use login attempts of the GitHub round trip. The cookies themselves are
the pages' (``zc_api.web.session``, ``zc_api.web.login``)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_api.auth.tokens import hash_token
from zc_api.models import LoginAttempt, User, WebSession

# A sign-in ends after its idle time without use (slid on every use), and at the latest
# this long after it began: then GitHub is asked again.
SESSION_MAX_AGE = timedelta(days=30)


async def start(session: AsyncSession, *, user: User, token: str, idle: timedelta, now: datetime) -> WebSession:
    """A new web session of ``user`` for the browser holding ``token`` (kept hashed), with
    its own CSRF token."""
    assert user.id is not None
    row = WebSession(
        token_hash=hash_token(token), user_id=user.id, csrf_token=secrets.token_urlsafe(32),
        expires_at=now + idle, last_seen_at=now,
    )
    session.add(row)
    await session.flush()
    return row


async def find(session: AsyncSession, *, token: str, now: datetime) -> tuple[WebSession, User] | None:
    """The live session ``token`` belongs to (not ended, not idle too long, not too old) and its person."""
    row = (
        await session.execute(
            select(WebSession, User)
            .join(User, col(User.id) == col(WebSession.user_id))
            .where(
                col(WebSession.token_hash) == hash_token(token),
                col(WebSession.ended_at).is_(None),
                col(WebSession.expires_at) > now,
                col(WebSession.created_at) > now - SESSION_MAX_AGE,
            )
        )
    ).first()
    if row is None:
        return None
    web_session, user = row
    return web_session, user


async def touch(session: AsyncSession, *, session_id: int, idle: timedelta, now: datetime) -> None:
    """Seen now: the idle expiry slides forward."""
    await session.execute(
        update(WebSession).where(col(WebSession.id) == session_id).values(last_seen_at=now, expires_at=now + idle)
    )


async def end(session: AsyncSession, *, session_id: int, now: datetime) -> None:
    await session.execute(update(WebSession).where(col(WebSession.id) == session_id).values(ended_at=now))


# --- login attempts ---------------------------------------------------------------------


async def begin_attempt(
    session: AsyncSession, *, state: str, code_verifier: str, next_path: str, invitation_id: int | None,
    expires_at: datetime,
) -> LoginAttempt:
    """A login attempt for the OAuth ``state`` (kept hashed) and its PKCE verifier."""
    row = LoginAttempt(
        state_hash=hash_token(state), code_verifier=code_verifier, next_path=next_path,
        invitation_id=invitation_id, expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row


async def forget_attempts_expired_before(session: AsyncSession, moment: datetime) -> None:
    await session.execute(delete(LoginAttempt).where(col(LoginAttempt.expires_at) < moment))


async def use_attempt(session: AsyncSession, *, state: str, now: datetime) -> LoginAttempt | None:
    """The unused, unexpired attempt of ``state``, marked used in this transaction (so it works once)."""
    row = await session.scalar(
        update(LoginAttempt)
        .where(
            col(LoginAttempt.state_hash) == hash_token(state), col(LoginAttempt.used_at).is_(None),
            col(LoginAttempt.expires_at) > now,
        )
        .values(used_at=now)
        .returning(LoginAttempt)
    )
    return row
