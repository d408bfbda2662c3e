"""Resources (EC2 instances as AWS last described them) as the API shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ResourcePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    cloud_account_id: int
    region: str
    instance_id: str
    instance_type: str | None
    state: str
    name: str | None
    tags: dict[str, str]
    launch_time: datetime | None
    gone: bool
    first_seen_at: datetime | None
    observed_at: datetime
