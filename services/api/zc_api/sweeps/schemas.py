"""Sweeps as the API takes and answers them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from zc_common.internal_api import SweepState

from zc_api.bounds import RowId
from zc_api.cloudaccounts.schemas import region_name
from zc_api.models import Sweep

Region = Annotated[str, Field(max_length=32), AfterValidator(region_name)]


class SweepCreate(BaseModel):
    """Which sweeps to run: one cloud account (all its regions, or one), or every cloud
    account of your account (in one region, or all)."""

    model_config = ConfigDict(extra="forbid")

    cloud_account_id: RowId | None = Field(None, description="One cloud account of your account; none: all of them.")
    region: Region | None = Field(None, description="Only this region (one the cloud account watches); none: all.")


class SweepPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    cloud_account_id: int
    region: str
    requested_by: str
    state: SweepState
    instances_seen: int | None = Field(description="Instances AWS listed (when done).")
    instances_gone: int | None = Field(
        description="Instances ZeroCloud held that AWS no longer lists: their leases are released (when done)."
    )
    error: str | None = Field(description="Why it failed.")
    requested_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class SweepRequestedPublic(SweepPublic):
    already_running: bool = Field(
        description="This cloud account and region were already being swept: the answer is that sweep, "
        "and no second one was started."
    )

    @classmethod
    def of(cls, sweep: Sweep, *, already_running: bool) -> SweepRequestedPublic:
        return cls(**SweepPublic.model_validate(sweep).model_dump(), already_running=already_running)


class SweepsRequested(BaseModel):
    data: list[SweepRequestedPublic]
    count: int
