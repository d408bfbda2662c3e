"""Account and user policies as the API reads and writes them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zc_common.messages import ActionOnExpiry

from zc_api.leases.policy import (
    MAX_EMAIL_PATTERNS,
    MAX_WARNINGS,
    MIN_WARNING_SPACING_SECONDS,
    email_pattern,
    warning_times,
)

# An Integer column holds at most ~68 years of seconds; ten years is a generous ceiling.
MAX_SECONDS = 10 * 365 * 24 * 3600

Seconds = Annotated[int, Field(gt=0, le=MAX_SECONDS)]


class LeaseUnit(str, enum.Enum):
    seconds = "seconds"
    minutes = "minutes"
    hours = "hours"
    days = "days"

    @property
    def seconds_each(self) -> int:
        return {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}[self.value]


class AccountPolicyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    account_id: int
    default_lease_seconds: int
    max_lease_seconds: int
    owner_tag: str
    allowed_email_patterns: list[str]
    max_instances_per_user: int | None
    over_quota_grace_seconds: int
    action_on_expiry: ActionOnExpiry
    warning_seconds: list[int]
    blast_radius_percent: int
    blast_radius_per_hour: int
    updated_at: datetime | None


class AccountPolicyUpdate(BaseModel):
    """Only the fields sent change; ``max_instances_per_user: null`` lifts the quota."""

    model_config = ConfigDict(extra="forbid")

    default_lease_seconds: Seconds | None = None
    lease_expires_in: Annotated[int, Field(gt=0)] | None = Field(
        None, description="The default lease in lease_expires_in_units (instead of default_lease_seconds)."
    )
    lease_expires_in_units: LeaseUnit | None = None
    max_lease_seconds: Seconds | None = None
    owner_tag: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        None, description="The instance tag naming the owner's email (its key is matched case-insensitively)."
    )
    allowed_email_patterns: (
        list[Annotated[str, Field(min_length=1, max_length=320)]] | None
    ) = Field(
        None, max_length=MAX_EMAIL_PATTERNS,
        description="Who may own instances and join by signing in, case-insensitive: an address "
                    "('ops@bigdb.com'), a domain ('*@bigdb.com') or its subdomains ('*@*.bigdb.com'); "
                    f"at most {MAX_EMAIL_PATTERNS}; empty = any owner email, and nobody joins uninvited.",
    )
    max_instances_per_user: Annotated[int, Field(ge=0)] | None = None
    over_quota_grace_seconds: Seconds | None = None
    action_on_expiry: ActionOnExpiry | None = None
    warning_seconds: list[Seconds] | None = Field(
        None, max_length=MAX_WARNINGS,
        description=f"Warn the owner this many seconds before the lease ends (each): at most {MAX_WARNINGS}, "
                    f"at least {MIN_WARNING_SPACING_SECONDS} s apart.",
    )
    blast_radius_percent: Annotated[int, Field(ge=0, le=100)] | None = Field(
        None, description="Reap at most this share of a cloud account's managed instances per hour."
    )
    blast_radius_per_hour: Annotated[int, Field(ge=0)] | None = Field(
        None, description="And at most this many instances per cloud account per hour."
    )

    @field_validator("owner_tag")
    @classmethod
    def _owner_tag(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value.strip() if value is not None else None

    @field_validator("allowed_email_patterns")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return list(dict.fromkeys(email_pattern(pattern) for pattern in value))

    @field_validator("warning_seconds")
    @classmethod
    def _warnings(cls, value: list[int] | None) -> list[int] | None:
        return warning_times(value) if value is not None else None


class UserPolicyPut(BaseModel):
    """A user's overrides; a null (or missing) field means 'as the account'."""

    model_config = ConfigDict(extra="forbid")

    default_lease_seconds: Seconds | None = None
    max_lease_seconds: Seconds | None = None
    max_instances: Annotated[int, Field(ge=0)] | None = None


class EffectivePolicyPublic(BaseModel):
    default_lease_seconds: int
    max_lease_seconds: int
    max_instances: int | None


class UserPolicyPublic(BaseModel):
    user_id: int
    default_lease_seconds: int | None
    max_lease_seconds: int | None
    max_instances: int | None
    effective: EffectivePolicyPublic = Field(description="The account policy with these overrides applied.")
