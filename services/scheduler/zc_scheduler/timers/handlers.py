"""Bus subscription of the scheduler's queue: lease schedules (LeaseChanged), in batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zc_common.bus import Bus
from zc_common.messages import LeaseChanged

from zc_scheduler.timers.service import Scheduler

QUEUE = "scheduler"
MAX_WAIT = 0.05


def subscribe(bus: Bus, scheduler: Scheduler) -> None:
    """Subscribe the scheduler's queue; call before ``bus.start()``. The handler returns
    once the batch's timers are committed, so the bus acks only stored schedules."""

    async def lease_changed(messages: Sequence[Any]) -> None:
        await scheduler.schedule([message for message in messages if isinstance(message, LeaseChanged)])

    bus.subscribe(
        QUEUE, [LeaseChanged], lease_changed, batch_size=scheduler.settings.lease_batch_size, max_wait=MAX_WAIT
    )
