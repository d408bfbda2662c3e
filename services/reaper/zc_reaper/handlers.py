"""Bus subscription of the reaper's queue: LeaseExpired, in batches."""

from __future__ import annotations

from zc_common.bus import Bus, topology

from zc_reaper.service import Reaper


def subscribe(bus: Bus, reaper: Reaper) -> None:
    """Subscribe the reaper's queue; call before ``bus.start()``. A batch is acknowledged
    only once its outcomes are with the api; when AWS or the api fails the bus retries it
    (the claim answers the same lease version again, so nothing is lost or done twice).
    Up to ``batches_in_flight`` batches run at once, so a slow account holds back only its
    own batch."""
    settings = reaper.settings
    bus.subscribe(
        topology.REAPER,
        reaper.reap,
        batch_size=settings.batch_size,
        max_wait=settings.batch_wait,
        quiet=settings.batch_quiet,
        max_attempts=settings.message_attempts,
        retry_delay=settings.message_retry_delay,
        concurrency=settings.batches_in_flight,
    )
