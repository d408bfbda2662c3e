"""What GET /timers answers: pending timers for operators, soonest first."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from zc_scheduler.timers.plan import TimerKind


class PendingTimer(BaseModel):
    id: int
    kind: TimerKind
    lease_id: int | None = Field(description="None for a sweep job")
    lease_version: int | None
    fire_at: datetime


class PendingTimers(BaseModel):
    data: list[PendingTimer]
    count: int = Field(description="All pending timers (matching the filter), not only this page")
    limit: int
