"""Leases as the API shows them, with the instance they hold."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from zc_common.messages import LeaseStatus

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

    @classmethod
    def of(cls, lease: Lease, resource: Resource) -> LeasePublic:
        assert lease.id is not None
        return cls(
            id=lease.id, resource_id=lease.resource_id, instance_id=resource.instance_id,
            instance_type=resource.instance_type, instance_name=resource.name, region=resource.region,
            cloud_account_id=lease.cloud_account_id, owner_email=lease.owner_email,
            owner_reason=lease.owner_reason, expires_at=lease.expires_at, version=lease.version,
            status=LeaseStatus(lease.status), over_quota=lease.over_quota, created_at=lease.created_at,
            updated_at=lease.updated_at,
        )
