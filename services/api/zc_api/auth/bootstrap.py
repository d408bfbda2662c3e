"""The first admin: from settings at start, or printed once by `zerocloud-api create-admin`."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.messages import Role, utcnow

from zc_api.auth.service import issue_token
from zc_api.auth.tokens import hash_token
from zc_api.database import transaction
from zc_api.models import ApiToken, JoinedHow, User
from zc_api.runtime import ApiRuntime

log = logging.getLogger("zc.api.auth")

BOOTSTRAP_EMAIL = "admin@localhost"


async def create_admin(session: AsyncSession, email: str, *, token: str | None = None, token_name: str = "bootstrap") -> tuple[User, str]:
    """An admin not yet in any account (creating an account makes them its admin)."""
    email = email.strip().lower()
    user = await session.scalar(select(User).where(col(User.email) == email, col(User.account_id).is_(None)))
    if user is None:
        # Confirmed: whoever runs the server named this address for its first admin.
        user = User(email=email, role=Role.admin, email_confirmed_at=utcnow(), joined_how=JoinedHow.bootstrap)
        session.add(user)
        await session.flush()
    elif user.email_confirmed_at is None:
        user.email_confirmed_at = utcnow()
    return user, await issue_token(session, user, token_name, token)


async def ensure_bootstrap_admin(runtime: ApiRuntime) -> None:
    token = runtime.settings.bootstrap_admin_token
    if not token:
        return
    async with transaction(runtime.sessions) as session:
        if await session.scalar(select(col(ApiToken.id)).where(col(ApiToken.token_hash) == hash_token(token))):
            return
        await create_admin(session, runtime.settings.bootstrap_admin_email or BOOTSTRAP_EMAIL, token=token)
    log.info("bootstrap admin token installed")
