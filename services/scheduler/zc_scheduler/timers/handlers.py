"""Bus subscription of the scheduler's queue: lease schedules (LeaseChanged), in batches."""

from __future__ import annotations

from collections.abc import Sequence

from zc_common.bus import Bus, DependencyDown, topology
from zc_common.errors import database_unreachable
from zc_common.messages import LeaseChanged

from zc_scheduler.timers.service import Scheduler

MAX_WAIT = 0.05


def subscribe(bus: Bus, scheduler: Scheduler) -> None:
    """Subscribe the scheduler's queue; call before ``bus.start()``. The handler returns
    once the batch's timers are committed, so the bus acks only stored schedules; while
    the database is away the schedules wait on the queue (never dead-lettered for it)."""

    async def schedule(changes: Sequence[LeaseChanged]) -> None:
        try:
            await scheduler.schedule(changes)
        except Exception as error:
            if database_unreachable(error):
                raise DependencyDown(f"the database cannot be reached: {error}") from error
            raise

    bus.subscribe(topology.SCHEDULER, schedule, batch_size=scheduler.settings.lease_batch_size, max_wait=MAX_WAIT)
