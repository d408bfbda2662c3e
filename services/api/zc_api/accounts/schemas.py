"""Accounts (tenants) as the API reads and writes them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zc_api.models import Account, AccountPolicy
from zc_api.policies.schemas import AccountPolicyPublic, LeaseUnit

AccountName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class AccountCreate(BaseModel):
    """The seed's payload, accepted as written: ``{"lease_expires_in": 3,
    "lease_expires_in_units": "days", "name": "BigDB"}``. Fields ZeroCloud does not
    know are ignored here (and only here and for cloud accounts) so that it keeps working."""

    model_config = ConfigDict(extra="ignore")

    name: AccountName
    lease_expires_in: Annotated[int, Field(gt=0)] | None = Field(
        None, description="The policy's default lease, in lease_expires_in_units (default: 3 days)."
    )
    lease_expires_in_units: LeaseUnit | None = None


class AccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: AccountName


class AccountPublic(BaseModel):
    id: int
    name: str
    created_at: datetime | None
    policy: AccountPolicyPublic

    @classmethod
    def of(cls, account: Account, policy: AccountPolicy) -> AccountPublic:
        assert account.id is not None
        return cls(
            id=account.id, name=account.name, created_at=account.created_at,
            policy=AccountPolicyPublic.model_validate(policy),
        )
