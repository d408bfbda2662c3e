"""The inventory sweep: list every instance of each cloud account and region, publish
what AWS lists, and publish as gone what the api still holds but AWS no longer lists.
It catches what events missed (lost events, accounts onboarded with instances running).
A sweep an admin asked for carries the api's sweep ids: it is reported running, then done
with its counts or failed with the reason."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from zc_common.aws import AwsAccess
from zc_common.bus import Bus
from zc_common.internal_api import (
    MAX_SWEEP_ERROR_CHARS,
    CloudAccountRecord,
    InternalApi,
    SweepReport,
    SweepState,
)
from zc_common.logging import log_context
from zc_common.messages import ResourceChange, utcnow

from zc_ingestor.changes import SWEEP_EVENT_NAME, SWEEP_EVENT_SOURCE, publish_in_chunks, resource_change
from zc_ingestor.describe import Observation, list_instances

log = logging.getLogger("zc.ingestor.sweep")

PUBLISH_CHUNK = 500
# (cloud account, region) pairs swept at once when no setting says otherwise
# (ZC_SWEEP_CONCURRENCY): enough to hide AWS latency, few enough to stay clear of
# account-wide API throttling.
CONCURRENT_REGIONS = 8


class NothingToSweep(LookupError):
    """The requested cloud account or region is not onboarded."""


@dataclass(frozen=True)
class RegionFailure:
    cloud_account_id: int
    region: str
    reason: str


@dataclass
class SweepResult:
    regions: int = 0  # (cloud account, region) pairs swept completely
    instances: int = 0  # instances AWS listed, each published
    gone: int = 0  # published as gone: known to the api, no longer listed by AWS
    failures: list[RegionFailure] = field(default_factory=list)
    seconds: float = 0.0


class Sweeper:
    def __init__(
        self, bus: Bus, aws: AwsAccess, api: InternalApi, counters: Counter[str], *,
        concurrency: int = CONCURRENT_REGIONS,
    ) -> None:
        self.bus = bus
        self.aws = aws
        self.api = api
        self.counters = counters
        self.concurrency = concurrency

    async def sweep(self, cloud_account_id: int | None = None, region: str | None = None) -> SweepResult:
        """Sweep every onboarded cloud account and region, or only those asked for. A
        failing account or region is logged and skipped; the others go on."""
        started = time.monotonic()
        targets = [
            (record, target_region)
            for record in await self.api.cloud_accounts()
            if cloud_account_id is None or record.id == cloud_account_id
            for target_region in record.regions
            if region is None or target_region == region
        ]
        if not targets and (cloud_account_id is not None or region is not None):
            raise NothingToSweep(
                f"nothing to sweep for cloud account {cloud_account_id}, region {region}: it is removed, does "
                "not watch that region, or its claim is not in force (verify it)"
            )
        # One bound across every account and region; the regions of one account share its
        # credentials, assumed once (AwsAccess caches them for their lifetime). A role
        # AWS refuses is asked once per sweep, not once per region: its regions all fail
        # with that one answer.
        limit = asyncio.Semaphore(self.concurrency)
        assumed: dict[int, asyncio.Future[None]] = {}

        async def bounded(record: CloudAccountRecord, target_region: str) -> tuple[int, int] | RegionFailure:
            async with limit:
                return await self._sweep_region(record, target_region, assumed)

        result = SweepResult()
        for outcome in await asyncio.gather(*(bounded(r, reg) for r, reg in targets)):
            if isinstance(outcome, RegionFailure):
                result.failures.append(outcome)
            else:
                result.regions += 1
                result.instances += outcome[0]
                result.gone += outcome[1]
        result.seconds = time.monotonic() - started
        self.counters["sweeps"] += 1
        self.counters["sweep_failures"] += len(result.failures)
        log.info(
            "swept %d regions: %d instances, %d gone, %d failed in %.1fs",
            result.regions, result.instances, result.gone, len(result.failures), result.seconds,
        )
        return result

    async def requested(
        self, cloud_account_id: int | None, region: str | None, sweep_ids: Sequence[int] = ()
    ) -> SweepResult | None:
        """Run a requested sweep and report on each of ``sweep_ids`` (none for the
        scheduler's timer): running, then done, or failed when any region failed. None
        when there was nothing to sweep (a cloud account or region since removed)."""
        await self._report(sweep_ids, SweepReport(state=SweepState.running))
        try:
            result = await self.sweep(cloud_account_id, region)
        except NothingToSweep as error:
            log.warning("sweep request ignored: %s", error)
            await self._report(sweep_ids, SweepReport(state=SweepState.failed, error=_bounded(str(error))))
            return None
        except Exception as error:
            # The bus retries the request; the operator learns now rather than after the
            # api's stale bound (a retried run does not revive a sweep reported failed).
            await self._report(sweep_ids, SweepReport(state=SweepState.failed, error=_bounded(_reason(error))))
            raise
        counts = {"instances_seen": result.instances, "instances_gone": result.gone}
        if result.failures:
            reasons = "; ".join(f"{f.region}: {f.reason}" for f in result.failures)
            report = SweepReport(state=SweepState.failed, error=_bounded(reasons), **counts)
        else:
            report = SweepReport(state=SweepState.done, **counts)
        await self._report(sweep_ids, report)
        return result

    async def _report(self, sweep_ids: Sequence[int], report: SweepReport) -> None:
        # A report that cannot be made must not undo the sweep: the api gives a sweep it
        # hears nothing more of up after its bound (ZC_SWEEP_STALE_SECONDS).
        for sweep_id in sweep_ids:
            try:
                await self.api.report_sweep(sweep_id, report)
            except Exception as error:  # noqa: BLE001 - logged; the sweep itself is what matters
                self.counters["sweep_reports_failed"] += 1
                log.warning("could not report sweep %d %s: %s", sweep_id, report.state, _reason(error))

    async def _sweep_region(
        self, record: CloudAccountRecord, region: str, assumed: dict[int, asyncio.Future[None]]
    ) -> tuple[int, int] | RegionFailure:
        """(instances published, gone published) for one region, or why it failed."""
        with log_context(cloud_account=record.id):
            try:
                await self._assume_once(record, assumed)
                return await self._list_and_publish(record, region)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - one account's failure must not stop the sweep
                reason = f"{type(error).__name__}: {error}"
                log.warning("sweep of %s in %s failed: %s", record.upstream_account_id, region, reason)
                return RegionFailure(record.id, region, reason)

    async def _assume_once(self, record: CloudAccountRecord, assumed: dict[int, asyncio.Future[None]]) -> None:
        """The account's credentials, asked of STS by its first region in this sweep (or
        found in AwsAccess's cache); its other regions wait for that answer and share it,
        a refusal included."""
        attempt = assumed.get(record.id)
        if attempt is None:
            attempt = assumed[record.id] = asyncio.ensure_future(self._assume(record))
        await asyncio.shield(attempt)

    async def _assume(self, record: CloudAccountRecord) -> None:
        await self.aws.credentials(record.role)

    async def _list_and_publish(self, record: CloudAccountRecord, region: str) -> tuple[int, int]:
        account_id = record.upstream_account_id
        listed: set[str] = set()
        pending: list[ResourceChange] = []
        # Gone is judged against the whole listing, which is not one atomic read: the time
        # it started is the oldest moment any absence was seen. An instance the api learnt
        # about after that has a newer observation, which this one cannot overwrite.
        listing_started = utcnow()
        async with self.aws.client("ec2", region, record.role) as ec2:
            async for page in list_instances(ec2):
                listed.update(observation.instance_id for observation in page)
                pending.extend(_sweep_change(o, account_id, region, listing_started) for o in page)
                if len(pending) >= PUBLISH_CHUNK:
                    await self._publish(pending)
                    pending.clear()
        known = await self.api.known_instances(record.id, region)
        absent = [Observation(i, None, listing_started) for i in known if i not in listed]
        gone = [_sweep_change(o, account_id, region, listing_started) for o in absent]
        await self._publish(pending + gone)
        return len(listed), len(gone)

    async def _publish(self, changes: list[ResourceChange]) -> None:
        await publish_in_chunks(self.bus, changes, PUBLISH_CHUNK)
        self.counters["changes_published"] += len(changes)


def _sweep_change(
    observation: Observation, account_id: str, region: str, swept_at: datetime
) -> ResourceChange:
    return resource_change(
        observation,
        account_id=account_id,
        region=region,
        event_name=SWEEP_EVENT_NAME,
        event_time=swept_at,
        event_source=SWEEP_EVENT_SOURCE,
    )


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _bounded(text: str) -> str:
    text = text.replace("\x00", "") or "failed"
    return text if len(text) <= MAX_SWEEP_ERROR_CHARS else text[: MAX_SWEEP_ERROR_CHARS - 1] + "…"
