"""Bus subscriptions of the ingestor's queue: sweep requests, and cloud events the api
received over HTTP (followed exactly like events read from the queue)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from zc_common.bus import Bus, PermanentFailure, Route, Routes, topology
from zc_common.cloudevents import UnusableEvent, parse_event
from zc_common.messages import CloudEventReceived, SweepRequested

from zc_ingestor.hints import Verdict
from zc_ingestor.service import Ingestor

log = logging.getLogger("zc.ingestor.handlers")

BATCH_SIZE = 10


class EventNotFollowed(Exception):
    """Some events of the batch could not be followed now: the bus retries them."""


def subscribe(bus: Bus, ingestor: Ingestor) -> None:
    """Subscribe the ingestor's queue; call before ``bus.start()``."""

    async def events(messages: Sequence[CloudEventReceived]) -> None:
        await cloud_events_received(ingestor, messages)

    async def sweeps(requests: Sequence[SweepRequested]) -> None:
        # One sweep per target however often the batch asks for it, reported to every
        # sweep id that asked.
        targets: dict[tuple[int | None, str | None], list[int]] = {}
        for m in requests:
            sweep_ids = targets.setdefault((m.cloud_account_id, m.region), [])
            if m.sweep_id is not None and m.sweep_id not in sweep_ids:
                sweep_ids.append(m.sweep_id)
        for (cloud_account_id, region), sweep_ids in targets.items():
            await sweep_requested(ingestor, cloud_account_id, region, sweep_ids)

    # Events first: if one fails the bus handles the batch again message by message, and
    # the sweeps, much dearer than a re-published change, have not run yet.
    routes = Routes(Route(CloudEventReceived, events), Route(SweepRequested, sweeps))
    bus.subscribe(topology.INGESTOR, routes, batch_size=BATCH_SIZE, max_wait=0.2)


async def sweep_requested(
    ingestor: Ingestor, cloud_account_id: int | None, region: str | None, sweep_ids: Sequence[int] = ()
) -> None:
    # A job for an account removed since it was scheduled leaves nothing to do: reported
    # failed to whoever asked, not retried.
    await ingestor.sweeper.requested(cloud_account_id, region, sweep_ids)


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
