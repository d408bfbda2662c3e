"""Audit events as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class AuditEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int | None
    at: datetime | None
    actor: str
    action: str
    subject_type: str
    subject_id: int | None
    reason: str | None
    message_id: UUID | None
    details: dict[str, Any]
