"""Resolving a bearer token to a principal, and creating tokens."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_api.auth.principal import Principal
from zc_api.auth.tokens import hash_token, new_token, same
from zc_api.models import ApiToken, User

# A token's last_used_at is written at most this often.
LAST_USED_PRECISION = timedelta(minutes=1)


async def principal_for(
    session: AsyncSession, token: str, *, service_tokens: Mapping[str, str]
) -> Principal | None:
    """``service_tokens`` maps each service's name to its credential."""
    for service, service_token in service_tokens.items():
        if same(token, service_token):
            return Principal(kind="service", service=service)
    row = (
        await session.execute(
            select(col(ApiToken.id), col(ApiToken.last_used_at), User)
            .join(User, col(User.id) == col(ApiToken.user_id))
            .where(col(ApiToken.token_hash) == hash_token(token), col(ApiToken.revoked_at).is_(None))
        )
    ).first()
    if row is None:
        return None
    token_id, last_used_at, user = row
    now = datetime.now(timezone.utc)
    if last_used_at is None or now - last_used_at >= LAST_USED_PRECISION:
        # To the minute: a read stays a read, and requests on one token do not queue on its row.
        await session.execute(
            update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=now)
        )
    return Principal(kind="user", user_id=user.id, account_id=user.account_id, role=user.role, email=user.email)


async def issue_token(session: AsyncSession, user: User, name: str, token: str | None = None) -> str:
    """Store a token for ``user`` and return it in clear: the only time it is shown."""
    assert user.id is not None
    token = token or new_token()
    session.add(ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), prefix=token[:10]))
    await session.flush()
    return token
