"""HTTP for operators: the pending timers, soonest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from zc_scheduler.timers.schemas import PendingTimers
from zc_scheduler.timers.service import Scheduler

router = APIRouter(tags=["timers"])

MAX_LIMIT = 1000


def current_scheduler(request: Request) -> Scheduler:
    scheduler: Scheduler = request.app.state.scheduler
    return scheduler


SchedulerDep = Annotated[Scheduler, Depends(current_scheduler)]


@router.get("/timers", summary="Pending timers, soonest first, with their total count")
async def list_timers(
    scheduler: SchedulerDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"At most {MAX_LIMIT}.")] = 100,
    lease_id: Annotated[int | None, Query(description="Only this lease's timers")] = None,
) -> PendingTimers:
    return await scheduler.pending(limit=limit, lease_id=lease_id)
