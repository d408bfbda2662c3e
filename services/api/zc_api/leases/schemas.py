"""Leases as the API shows them, with the instance they hold."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from zc_common.messages import InstanceState, LeaseStatus

from zc_api.bounds import UtcDateTime
from zc_api.models import Lease, Resource


class LeasePublic(BaseModel):
    id: int
    resource_id: int
    instance_id: str
    instance_type: str | None
    instance_name: str | None
    region: str
    cloud_account_id: int
    owner_email: str
    owner_reason: str
    expires_at: datetime
    version: int
    status: LeaseStatus
    over_quota: bool
    created_at: datetime | None
    updated_at: datetime | None
    exempt_reason: str | None = None
    claimed_at: datetime | None = None
    reaped_at: datetime | None = None
    past_its_lease: bool = Field(
        False,
        description="The lease ended and its instance still runs: observe mode, stop or termination protection, "
        "or the blast-radius cap kept the reaper from it. ZeroCloud tries again; renew it or shut it down.",
    )

    @classmethod
    def of(cls, lease: Lease, resource: Resource) -> LeasePublic:
        assert lease.id is not None
        return cls(
            id=lease.id, resource_id=lease.resource_id, instance_id=resource.instance_id,
            instance_type=resource.instance_type, instance_name=resource.name, region=resource.region,
            cloud_account_id=lease.cloud_account_id, owner_email=lease.owner_email,
            owner_reason=lease.owner_reason, expires_at=lease.expires_at, version=lease.version,
            status=LeaseStatus(lease.status), over_quota=lease.over_quota, created_at=lease.created_at,
            updated_at=lease.updated_at, exempt_reason=lease.exempt_reason, claimed_at=lease.claimed_at,
            reaped_at=lease.reaped_at, past_its_lease=runs_past_its_lease(lease, resource),
        )


_LIVE_STATES = frozenset(state.value for state in InstanceState if state.is_live)


def runs_past_its_lease(lease: Lease, resource: Resource) -> bool:
    """The lease has ended (expired, not reaped) while its instance still runs."""
    return lease.status == LeaseStatus.expired.value and not resource.gone and resource.state in _LIVE_STATES


# A renewal can ask for at most ten years; the policy's maximum lease is the real bound.
MAX_EXTENSION_SECONDS = 10 * 365 * 24 * 3600


class LeaseRenewal(BaseModel):
    """Exactly one of the two."""

    model_config = ConfigDict(extra="forbid")

    extend_by_seconds: Annotated[int, Field(gt=0, le=MAX_EXTENSION_SECONDS)] | None = Field(
        None, description="Add this to the current expiry (to now, once the lease has expired)."
    )
    until: UtcDateTime | None = Field(None, description="The new expiry, ISO 8601; UTC when no zone.")


class LeaseExemption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)] = Field(
        description="Why this instance may outlive the policy (kept in the audit log)."
    )
    until: UtcDateTime | None = Field(None, description="When the exemption ends; none: until an admin changes it.")


class LeaseOwnerChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320)] = Field(
        description="A user of the lease's account."
    )
