"""Writing the audit log: every change to a resource or lease, who or what, and why."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from zc_api.models import AuditEvent


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
