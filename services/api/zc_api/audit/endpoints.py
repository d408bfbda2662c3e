"""HTTP routes for reading the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from zc_api.audit import service
from zc_api.audit.schemas import AuditEventPublic
from zc_api.bounds import RowId, UtcDateTime
from zc_api.deps import SessionDep, UserDep
from zc_api.errors import responses
from zc_api.pagination import KeysetPage, KeysetPageDep

router = APIRouter(tags=["audit"])


@router.get(
    "/audit-events", response_model=KeysetPage[AuditEventPublic], responses=responses(401, 403, 404, 422),
    summary="The account's audit log, newest first (admin)",
)
async def list_audit_events(
    session: SessionDep,
    caller: UserDep,
    page: KeysetPageDep,
    subject_type: Annotated[str | None, Query(max_length=32, description="e.g. lease, cloud_account")] = None,
    subject_id: RowId | None = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. cloud_account.created")] = None,
    since: Annotated[UtcDateTime | None, Query(description="ISO 8601; UTC when no zone.")] = None,
) -> KeysetPage[AuditEventPublic]:
    found = await service.get_all(
        session, caller=caller, page=page, subject_type=subject_type, subject_id=subject_id, action=action,
        since=since,
    )
    return KeysetPage(
        data=[AuditEventPublic.model_validate(row[0]) for row in found.rows], count=found.count,
        count_at_least=found.count_at_least, next_cursor=found.next_cursor, limit=page.limit, offset=page.offset,
    )
