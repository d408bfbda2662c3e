"""The audit log: every change to a resource or lease, who or what, and why; and reading it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, false, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotPermitted

from zc_api.auth.principal import Principal
from zc_api.models import AuditEvent
from zc_api.pagination import KeysetRows, PageParams, SortKey, paginate_keyset

NEWEST_FIRST = SortKey(
    "audit-events:at,id:desc", (col(AuditEvent.at), col(AuditEvent.id)), ("datetime", "int64"), descending=True
)


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


def _readable_by(caller: Principal) -> ColumnElement[bool]:
    """The audit events ``caller`` may read: their own account's, and only as its admin.
    Every read of the log goes through this one filter."""
    if not caller.is_admin:
        raise NotPermitted("only an admin can read the audit log")
    return col(AuditEvent.account_id) == caller.account_id if caller.account_id is not None else false()


def _newest_first() -> tuple[Any, Any]:
    return col(AuditEvent.at).desc(), col(AuditEvent.id).desc()


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
) -> KeysetRows[AuditEvent]:
    """The audit log of the caller's account, newest first (admins only)."""
    query = select(AuditEvent).where(_readable_by(caller))
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
    return await paginate_keyset(session, query, page, NEWEST_FIRST)


async def newest_of_each(
    session: AsyncSession, *, caller: Principal, action: str, subject_type: str, subject_ids: Iterable[int]
) -> dict[int, AuditEvent]:
    """The newest ``action`` event of each of these subjects in the caller's audit log
    (admins only): one statement that reads only their events, however long the log."""
    ids = sorted(set(subject_ids))
    if not ids:
        return {}
    events = await session.scalars(
        select(AuditEvent)
        .ext(distinct_on(col(AuditEvent.subject_id)))
        .where(
            _readable_by(caller), col(AuditEvent.action) == action,
            col(AuditEvent.subject_type) == subject_type, col(AuditEvent.subject_id).in_(ids),
        )
        .order_by(col(AuditEvent.subject_id), *_newest_first())
    )
    return {event.subject_id: event for event in events if event.subject_id is not None}


async def newest(
    session: AsyncSession, *, caller: Principal, action: str, subject_type: str, subject_id: int
) -> AuditEvent | None:
    """The newest ``action`` event of one subject in the caller's audit log (admins only)."""
    return await session.scalar(
        select(AuditEvent)
        .where(
            _readable_by(caller), col(AuditEvent.action) == action,
            col(AuditEvent.subject_type) == subject_type, col(AuditEvent.subject_id) == subject_id,
        )
        .order_by(*_newest_first())
        .limit(1)
    )
