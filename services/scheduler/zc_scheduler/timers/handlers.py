"""Bus subscription of the scheduler's queue: lease schedules (LeaseChanged), in batches."""

from __future__ import annotations

from zc_common.bus import Bus, topology

from zc_scheduler.timers.service import Scheduler

MAX_WAIT = 0.05


def subscribe(bus: Bus, scheduler: Scheduler) -> None:
    """Subscribe the scheduler's queue; call before ``bus.start()``. The handler returns
    once the batch's timers are committed, so the bus acks only stored schedules."""
    bus.subscribe(
        topology.SCHEDULER, scheduler.schedule, batch_size=scheduler.settings.lease_batch_size, max_wait=MAX_WAIT
    )
