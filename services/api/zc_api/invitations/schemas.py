"""Invitations as the API reads and writes them. The link's token is never part of them:
it is minted when the invitation is mailed and exists in clear only in that mail."""

from __future__ import annotations

import enum
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from zc_common.messages import Role

from zc_api.models import Invitation
from zc_api.users.schemas import Email


class InvitationStatus(str, enum.Enum):
    pending = "pending"
    accepted = "accepted"
    revoked = "revoked"
    expired = "expired"


def status_of(invitation: Invitation, now: datetime) -> InvitationStatus:
    """Accepted and revoked exclude each other (each refuses the other); an invitation
    neither accepted nor revoked is pending until it expires."""
    if invitation.accepted_at is not None:
        return InvitationStatus.accepted
    if invitation.revoked_at is not None:
        return InvitationStatus.revoked
    if invitation.expires_at <= now:
        return InvitationStatus.expired
    return InvitationStatus.pending


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    role: Role = Role.dev


class InvitationPublic(BaseModel):
    id: int
    account_id: int
    email: str
    role: Role
    status: InvitationStatus = Field(description="pending until accepted, revoked or expired")
    invited_by_user_id: int | None
    created_at: datetime | None
    expires_at: datetime
    accepted_at: datetime | None
    accepted_by_user_id: int | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, invitation: Invitation, now: datetime) -> InvitationPublic:
        assert invitation.id is not None
        return cls(
            id=invitation.id, account_id=invitation.account_id, email=invitation.email,
            role=Role(invitation.role), status=status_of(invitation, now),
            invited_by_user_id=invitation.invited_by_user_id, created_at=invitation.created_at,
            expires_at=invitation.expires_at, accepted_at=invitation.accepted_at,
            accepted_by_user_id=invitation.accepted_by_user_id, revoked_at=invitation.revoked_at,
        )
