"""The ingestor as a plain object — queue pollers, the sweep timer and the operations
behind them — for main.py, the embedded sandbox and tests to drive without HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from zc_common.aws import AwsAccess
from zc_common.bus import Bus
from zc_common.bus.base import SHUTDOWN_GRACE
from zc_common.cloudevents import InstanceHint
from zc_common.internal_api import InternalApi
from zc_common.metrics import KEPT_COUNTS
from zc_common.settings import IngestorSettings

from zc_ingestor.accounts import CloudAccountDirectory
from zc_ingestor.hints import FollowedHints, HintFollower
from zc_ingestor.poller import PollResult, QueuePoller
from zc_ingestor.sweep import Sweeper, SweepResult

log = logging.getLogger("zc.ingestor")


class Ingestor:
    def __init__(self, settings: IngestorSettings, bus: Bus, aws: AwsAccess, api: InternalApi) -> None:
        self.settings = settings
        self.bus = bus
        self.aws = aws
        self.api = api
        # Named counts of what happened to events and sweeps, exported on /metrics.
        self.counters: Counter[str] = Counter()
        KEPT_COUNTS.track("ingestor", self.counters)
        self.follower = HintFollower(aws, CloudAccountDirectory(api, ttl=settings.account_cache_seconds))
        self.poller = QueuePoller(settings, aws, bus, self.follower, self.counters, api=api)
        self.sweeper = Sweeper(bus, aws, api, self.counters, concurrency=settings.sweep_concurrency)
        self._stopping = asyncio.Event()
        self._pollers: list[asyncio.Task[None]] = []

    async def start(self, *, poll: bool = True) -> None:
        """Start ``pollers_per_queue`` pollers per event queue. Sweeps run when the scheduler's SweepRequested
        jobs arrive (handlers.py): one timer for the whole installation, not one per replica."""
        self._stopping.clear()
        if poll:
            # Several receive loops per queue: each follows one batch (describe, publish,
            # delete) at a time, so one loop alone caps a queue near 200 events/s and a
            # burst waits on the queue behind it (issue #12).
            self._pollers = [
                asyncio.create_task(self.poller.run(url, self._stopping), name=f"poll:{url}#{n}")
                for url in self.settings.event_queue_urls
                for n in range(self.settings.pollers_per_queue)
            ]
        log.info("ingestor started: %d queues", len(self._pollers))

    async def stop(self) -> None:
        """Stop receiving and let every poller finish the batch in hand, for up to
        SHUTDOWN_GRACE seconds: a batch abandoned then is not lost (nothing of it was
        deleted before its changes were published), its messages come back after the
        visibility timeout."""
        self._stopping.set()
        if self._pollers:
            grace = min(SHUTDOWN_GRACE, self.settings.visibility_timeout)
            _, late = await asyncio.wait(self._pollers, timeout=grace)
            for task in late:
                log.warning("%s: the batch in hand did not finish in %.0fs; abandoned", task.get_name(), grace)
                task.cancel()
            await asyncio.gather(*self._pollers, return_exceptions=True)
            self._pollers = []

    async def poll_once(self, queue_url: str) -> PollResult:
        """Receive one batch from ``queue_url`` and see it through (see QueuePoller.poll_once)."""
        async with self.poller.client(queue_url) as sqs:
            return await self.poller.poll_once(sqs, queue_url)

    async def sweep(self, cloud_account_id: int | None = None, region: str | None = None) -> SweepResult:
        return await self.sweeper.sweep(cloud_account_id, region)

    async def handle_hints(self, hints: Sequence[InstanceHint]) -> FollowedHints:
        """Follow the hints and publish their changes; raises if the publish fails."""
        followed = await self.follower.follow(hints)
        if followed.changes:
            await self.bus.publish(*followed.changes)
            self.counters["changes_published"] += len(followed.changes)
        return followed

    async def api_answers(self) -> bool:
        """Whether the api answers an internal request (for /readyz)."""
        await self.api.cloud_accounts()
        return True
