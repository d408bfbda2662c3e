"""The audit log: every change to a resource or lease, who or what, and why; and reading it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from sqlalchemy import false, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotPermitted

from zc_api.auth.principal import Principal
from zc_api.models import AuditEvent
from zc_api.pagination import PageParams, paginate


def record(
    session: AsyncSession,
    *,
    account_id: int | None,
    actor: str,
    action: str,
    subject_type: str,
    subject_id: int | None,
    reason: str | None = None,
    message_id: UUID | None = None,
    **details: Any,
) -> None:
    session.add(
        AuditEvent(
            account_id=account_id, actor=actor, action=action, subject_type=subject_type,
            subject_id=subject_id, reason=reason, message_id=message_id, details=details,
        )
    )


async def get_all(
    session: AsyncSession,
    *,
    caller: Principal,
    page: PageParams,
    subject_type: str | None = None,
    subject_id: int | None = None,
    action: str | None = None,
    since: datetime | None = None,
    actor: str | None = None,
) -> tuple[list[AuditEvent], int]:
    """The audit log of the caller's account, newest first (admins only)."""
    if not caller.is_admin:
        raise NotPermitted("only an admin can read the audit log")
    mine = col(AuditEvent.account_id) == caller.account_id if caller.account_id is not None else false()
    query = select(AuditEvent).where(mine)
    if subject_type is not None:
        query = query.where(col(AuditEvent.subject_type) == subject_type)
    if subject_id is not None:
        query = query.where(col(AuditEvent.subject_id) == subject_id)
    if action is not None:
        query = query.where(col(AuditEvent.action) == action)
    if actor is not None:
        query = query.where(col(AuditEvent.actor) == actor)
    if since is not None:
        if since.tzinfo is None:  # a time without a zone is read as UTC
            since = since.replace(tzinfo=timezone.utc)
        query = query.where(col(AuditEvent.at) >= since)
    return await paginate(session, query.order_by(col(AuditEvent.at).desc(), col(AuditEvent.id).desc()), page)
