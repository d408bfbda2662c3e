"""The reaper as a plain object: a batch of LeaseExpired is claimed through the api
(compare-and-set), checked live in AWS, stopped or terminated in as few calls as AWS
allows, and the outcomes reported in one api call. The bus may run several batches at once
(``batches_in_flight``); a lease version is worked on by one batch at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from zc_common.aws import AwsAccess
from zc_common.bus import Bus
from zc_common.internal_api import (
    ClaimedLease,
    CloudAccountRecord,
    InternalApi,
    LeaseRef,
    ReapOutcome,
    ReapOutcomeKind,
)
from zc_common.logging import log_context
from zc_common.messages import ActionOnExpiry, CloudAccountMode, LeaseExpired
from zc_common.settings import ReaperSettings

from zc_reaper.accounts import CloudAccounts
from zc_reaper.act import WRITE_CHUNK, act
from zc_reaper.live import Settled, Target, check_live
from zc_reaper.retry import AwsUnavailable, ClientError, RetryPolicy, describe, is_denied

log = logging.getLogger("zc.reaper")

GROUPS_IN_FLIGHT = 8
# Outcomes decided but not yet accepted by the api, kept so that a retried batch reports
# what was done instead of acting again (the instance would look "already stopped").
MAX_UNREPORTED = 100_000


@dataclass(frozen=True)
class Group:
    """Leases acted on together: one account, one region, one action."""

    cloud_account_id: int
    region: str
    action: ActionOnExpiry


@dataclass
class ReapReport:
    """What one batch came to."""

    claimed: int = 0
    observed: int = 0
    refused: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    outcomes: list[ReapOutcome] = field(default_factory=list)

    def count(self, kind: ReapOutcomeKind) -> int:
        return sum(1 for outcome in self.outcomes if outcome.outcome is kind)


class Reaper:
    def __init__(
        self,
        settings: ReaperSettings,
        aws: AwsAccess,
        api: InternalApi,
        *,
        bus: Bus | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.aws = aws
        self.api = api
        self.clock = clock
        self.accounts = CloudAccounts(api, ttl=settings.account_cache_seconds)
        self.retry = RetryPolicy(attempts=settings.aws_attempts, delay=settings.aws_retry_delay)
        self.bus = bus  # the one it consumes (handlers.py), for /readyz
        self._unreported: OrderedDict[LeaseRef, ReapOutcome] = OrderedDict()
        # Lease versions a batch is working on now. The bus runs several batches at once; a
        # duplicate LeaseExpired in another batch is left to the batch that has it (which
        # settles it, or fails and is retried by the bus), else both would act and the
        # later live check could report "already stopping" for what this reaper stopped.
        self._in_hand: set[LeaseRef] = set()
        # (cloud account, region) -> instances a write may have reached though it failed
        # (AWS acted and the answer was lost; moto acts before refusing another instance).
        self._written: dict[tuple[int, str], dict[str, None]] = defaultdict(dict)
        # (cloud account, region) -> until when AWS is left alone after it kept failing.
        self._resting: dict[tuple[int, str], float] = {}

    async def api_answers(self) -> bool:
        """Whether the api answers an internal request (for /readyz)."""
        await self.api.cloud_accounts()
        return True

    async def reap(self, expired: Sequence[LeaseExpired]) -> ReapReport:
        """Claim, check, act, report. Returns once the outcomes are with the api; raises
        (the bus retries the batch) when the api or AWS cannot be reached now."""
        refs, resting = self._to_claim(expired)
        self._in_hand.update(refs)
        try:
            return await self._reap(refs, resting)
        finally:
            self._in_hand.difference_update(refs)

    async def _reap(self, refs: list[LeaseRef], resting: int) -> ReapReport:
        report = ReapReport()
        outcomes: dict[LeaseRef, ReapOutcome] = {}
        failures: list[BaseException] = []
        if refs:
            claim = await self.api.claim(refs)
            report.claimed, report.observed, report.refused = len(claim.claimed), len(claim.observed), len(claim.refused)
            report.refusals = Counter(refusal.reason for refusal in claim.refused)
            failures = await self._act_on(claim.claimed, outcomes)
        if outcomes:
            # What was decided is reported even when another group failed: the bus then
            # retries the batch, and the claim refuses what is settled here.
            await self.api.report_outcomes(list(outcomes.values()))
            for ref in outcomes:
                self._unreported.pop(ref, None)
        report.outcomes = list(outcomes.values())
        self._log(report)
        for failure in failures:
            if not isinstance(failure, Exception):
                raise failure  # cancellation
        if failures:
            raise failures[0]
        if resting:
            raise AwsUnavailable(f"{resting} leases wait: AWS kept failing in their account and region a moment ago")
        return report

    def _to_claim(self, expired: Sequence[LeaseExpired]) -> tuple[list[LeaseRef], int]:
        """The lease versions to claim, once each and none another batch has in hand, and
        how many wait for a resting account."""
        refs: dict[LeaseRef, None] = {}
        resting = 0
        for message in expired:
            ref = LeaseRef(lease_id=message.lease.lease_id, version=message.lease.version)
            if ref in self._in_hand:
                log.info("lease %d version %d is in hand in another batch", ref.lease_id, ref.version)
            elif self._is_resting(message.lease.cloud_account_id, message.lease.region):
                resting += 1
            else:
                refs[ref] = None
        return list(refs), resting

    async def _act_on(
        self, claimed: Sequence[ClaimedLease], outcomes: dict[LeaseRef, ReapOutcome]
    ) -> list[BaseException]:
        """Act on the claimed leases, a group per account, region and action, filling
        ``outcomes``; returns the groups' failures."""
        groups: dict[Group, list[ClaimedLease]] = defaultdict(list)
        for lease in claimed:
            ref = LeaseRef(lease_id=lease.lease.lease_id, version=lease.lease.version)
            if ref in self._unreported:
                outcomes[ref] = self._unreported[ref]  # done before; the report did not arrive
            else:
                groups[Group(lease.lease.cloud_account_id, lease.lease.region, lease.action)].append(lease)
        limit = asyncio.Semaphore(GROUPS_IN_FLIGHT)

        async def reap_group(group: Group, leases: list[ClaimedLease]) -> None:
            async with limit:
                with log_context(cloud_account=group.cloud_account_id):
                    await self._reap_group(group, leases, outcomes)

        results = await asyncio.gather(*(reap_group(g, ls) for g, ls in groups.items()), return_exceptions=True)
        failures: list[BaseException] = []
        for group, result in zip(groups, results):
            if isinstance(result, AwsUnavailable):
                self._rest(group)
            if isinstance(result, BaseException):
                failures.append(result)
        return failures

    async def _reap_group(
        self, group: Group, leases: list[ClaimedLease], outcomes: dict[LeaseRef, ReapOutcome]
    ) -> None:
        by_instance: dict[str, list[ClaimedLease]] = defaultdict(list)
        for claimed in leases:
            by_instance[claimed.lease.instance_id].append(claimed)

        written = self._written[(group.cloud_account_id, group.region)]

        def settle(results: dict[str, Settled]) -> None:
            for instance_id, settled in results.items():
                written.pop(instance_id, None)
                for claimed in by_instance.pop(instance_id, []):
                    ref = LeaseRef(lease_id=claimed.lease.lease_id, version=claimed.lease.version)
                    outcome = ReapOutcome(
                        lease_id=ref.lease_id, version=ref.version, outcome=settled.outcome, reason=settled.reason
                    )
                    outcomes[ref] = outcome
                    self._remember(ref, outcome)

        record = await self.accounts.get(group.cloud_account_id)
        refusal = _refuse_account(record, group, leases)
        if refusal is not None:
            log.warning("not acting on %d leases: %s", len(leases), refusal)
            settle({instance_id: Settled(ReapOutcomeKind.skipped, refusal) for instance_id in by_instance})
            return
        assert record is not None
        try:
            await self.retry.call("AssumeRole", lambda: self.aws.credentials(record.role))
            async with self.aws.client("ec2", group.region, record.role) as ec2:
                live = await check_live(
                    ec2,
                    [Target(c.lease.instance_id, c.owner_tag, c.owner_tag_value) for c in leases],
                    account_id=record.upstream_account_id,
                    action=group.action,
                    retry=self.retry,
                    written=written,
                )
                settle(live.settled)
                try:
                    async for done in act(ec2, group.action, live.actionable, retry=self.retry):
                        settle(done)
                except BaseException:
                    self._remember_written(written, [i for i in live.actionable if i in by_instance])
                    raise
        except ClientError as error:
            if not is_denied(error):
                raise
            self.aws.forget(record.role)
            reason = f"ZeroCloud's role may not act in AWS account {record.upstream_account_id}: {describe(error)}"
            log.warning("not acting on %d leases: %s", len(by_instance), reason)
            settle({instance_id: Settled(ReapOutcomeKind.skipped, reason) for instance_id in list(by_instance)})

    def _remember_written(self, written: dict[str, None], unsettled: list[str]) -> None:
        # The chunks before the failing one are settled; the failing one is the first
        # WRITE_CHUNK unsettled ids, and the ones after it were never sent.
        written.update(dict.fromkeys(list(dict.fromkeys(unsettled))[:WRITE_CHUNK]))
        while len(written) > MAX_UNREPORTED:
            del written[next(iter(written))]

    def _remember(self, ref: LeaseRef, outcome: ReapOutcome) -> None:
        self._unreported[ref] = outcome
        while len(self._unreported) > MAX_UNREPORTED:
            self._unreported.popitem(last=False)

    def _rest(self, group: Group) -> None:
        # The bus hands a failed batch back one message at a time at once, then retries
        # after its backoff; resting for half that backoff keeps the one-at-a-time pass
        # from calling a throttling AWS once per lease.
        until = self.clock() + self.settings.message_retry_delay / 2
        self._resting[(group.cloud_account_id, group.region)] = until

    def _is_resting(self, cloud_account_id: int, region: str) -> bool:
        until = self._resting.get((cloud_account_id, region))
        if until is None:
            return False
        if until <= self.clock():
            del self._resting[(cloud_account_id, region)]
            return False
        return True

    def _log(self, report: ReapReport) -> None:
        kinds = {kind.value: report.count(kind) for kind in ReapOutcomeKind}
        log.info(
            "batch: %d claimed, %d observed, %d refused (%s); outcomes: %s",
            report.claimed, report.observed, report.refused,
            ", ".join(f"{reason} {n}" for reason, n in report.refusals.items()) or "-",
            ", ".join(f"{k} {n}" for k, n in kinds.items() if n) or "-",
        )


def _refuse_account(record: CloudAccountRecord | None, group: Group, leases: Iterable[ClaimedLease]) -> str | None:
    """Why nothing may be done in this cloud account, or None. Only managed, enforcing
    accounts are acted in, and only through a role inside the account the leases name."""
    if record is None:
        return f"cloud account {group.cloud_account_id} is not onboarded"
    if record.mode != CloudAccountMode.enforce:
        return f"cloud account {record.name} is in {record.mode.value} mode"
    named = {claimed.lease.upstream_account_id for claimed in leases}
    if named != {record.upstream_account_id}:
        return (
            f"leases name AWS account {', '.join(sorted(named))}, "
            f"but cloud account {record.name} is {record.upstream_account_id}"
        )
    arn = record.role_arn.split(":")
    if len(arn) < 6 or arn[4] != record.upstream_account_id:
        return (
            f"cloud account {record.name}'s role {record.role_arn} is outside its AWS account "
            f"{record.upstream_account_id}"
        )
    return None
