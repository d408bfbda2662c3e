"""Bus subscriptions of the ingestor's queue: sweep requests, and cloud events the api
received over HTTP (followed exactly like events read from the queue)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from zc_common.bus import Bus, PermanentFailure
from zc_common.cloudevents import UnusableEvent, parse_event
from zc_common.messages import CloudEventReceived, SweepRequested

from zc_ingestor.hints import Verdict
from zc_ingestor.service import Ingestor
from zc_ingestor.sweep import NothingToSweep

log = logging.getLogger("zc.ingestor.handlers")

QUEUE = "ingestor"
BATCH_SIZE = 10


class EventNotFollowed(Exception):
    """Some events of the batch could not be followed now: the bus retries them."""


def subscribe(bus: Bus, ingestor: Ingestor) -> None:
    """Subscribe the ingestor's queue; call before ``bus.start()``."""

    async def handle(messages: Sequence[Any]) -> None:
        # Events first: if one fails the bus handles the batch again message by message,
        # and the sweeps, much dearer than a re-published change, have not run yet.
        events = [m for m in messages if isinstance(m, CloudEventReceived)]
        if events:
            await cloud_events_received(ingestor, events)
        requests = [m for m in messages if isinstance(m, SweepRequested)]
        for target in dict.fromkeys((m.cloud_account_id, m.region) for m in requests):
            await sweep_requested(ingestor, *target)

    # One subscription for both types: two on one queue would each receive the other's messages.
    bus.subscribe(QUEUE, [SweepRequested, CloudEventReceived], handle, batch_size=BATCH_SIZE, max_wait=0.2)


async def sweep_requested(ingestor: Ingestor, cloud_account_id: int | None, region: str | None) -> None:
    try:
        await ingestor.sweep(cloud_account_id, region)
    except NothingToSweep as error:
        # A job for an account removed since it was scheduled: nothing is left to do.
        log.warning("sweep request ignored: %s", error)


async def cloud_events_received(ingestor: Ingestor, messages: Sequence[CloudEventReceived]) -> None:
    """Follow a batch of posted events. Any event that cannot be followed fails the batch,
    which the bus then splits, so the reason is settled per event: unusable or not
    onboarded is dead-lettered at once, anything else is retried."""
    try:
        hints = [parse_event(m.event, max_bytes=ingestor.settings.max_event_bytes) for m in messages]
    except UnusableEvent as error:
        raise PermanentFailure(str(error)) from None
    followed = await ingestor.handle_hints(hints)
    rejected = [o.reason for o in followed.outcomes if o.verdict is Verdict.rejected]
    failed = [o.reason for o in followed.outcomes if o.verdict is Verdict.failed]
    if rejected and len(messages) == 1:
        raise PermanentFailure(rejected[0] or "rejected")
    if rejected or failed:
        raise EventNotFollowed("; ".join(str(reason) for reason in rejected + failed))
