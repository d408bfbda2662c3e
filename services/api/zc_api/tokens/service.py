"""Personal API tokens: created and revoked by their owner, stored only as a hash."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotFound

from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.auth.tokens import hash_token, new_token
from zc_api.models import ApiToken
from zc_api.pagination import PageParams, paginate

PREFIX_LENGTH = 10


async def create(session: AsyncSession, *, caller: Principal, name: str) -> tuple[ApiToken, str]:
    """The stored token and its clear text, which exists only in this answer."""
    assert caller.user_id is not None
    token = new_token()
    row = ApiToken(
        user_id=caller.user_id, name=name, token_hash=hash_token(token), prefix=token[:PREFIX_LENGTH]
    )
    session.add(row)
    await session.flush()
    audit.record(
        session, account_id=caller.account_id, actor=caller.actor, action="token.created",
        subject_type="api_token", subject_id=row.id, name=name, prefix=row.prefix,
    )
    return row, token


async def get_all(
    session: AsyncSession, *, caller: Principal, page: PageParams
) -> tuple[list[ApiToken], int]:
    """The caller's tokens that still work."""
    query = (
        select(ApiToken)
        .where(col(ApiToken.user_id) == caller.user_id, col(ApiToken.revoked_at).is_(None))
        .order_by(col(ApiToken.id))
    )
    return await paginate(session, query, page)


async def revoke(session: AsyncSession, *, caller: Principal, token_id: int) -> None:
    row = await session.get(ApiToken, token_id, with_for_update=True)
    if row is None or row.user_id != caller.user_id or row.revoked_at is not None:
        raise NotFound(f"token {token_id} not found (or already revoked)")
    row.revoked_at = datetime.now(timezone.utc)
    audit.record(
        session, account_id=caller.account_id, actor=caller.actor, action="token.revoked",
        subject_type="api_token", subject_id=row.id, name=row.name, prefix=row.prefix,
    )
    await session.flush()
