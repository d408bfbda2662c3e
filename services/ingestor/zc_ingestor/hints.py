"""Following event hints: find each hint's cloud account, describe the named instances
with one DescribeInstances per (cloud account, region), and build the ResourceChanges.
Events only make us look; what is published comes from AWS. A hint whose instance AWS
does not list is inconclusive (the hint may name the wrong region, or AWS may lag): it
changes nothing, and only a sweep of the recorded region declares an instance gone."""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from zc_common.aws import AwsAccess, CloudAccountRole
from zc_common.cloudevents import InstanceHint
from zc_common.internal_api import CloudAccountRecord
from zc_common.logging import log_context
from zc_common.messages import ResourceChange

from zc_ingestor.accounts import CloudAccountDirectory
from zc_ingestor.changes import resource_change
from zc_ingestor.describe import FILTER_CHUNK, Observation, describe_instances

log = logging.getLogger("zc.ingestor.hints")


class Verdict(str, enum.Enum):
    observed = "observed"  # its instances were described; the changes are ready to publish
    rejected = "rejected"  # can never be followed (account or region not onboarded)
    failed = "failed"  # could not be followed now (AWS or the api failed); try again later


@dataclass(frozen=True)
class HintOutcome:
    verdict: Verdict
    reason: str | None = None


@dataclass
class FollowedHints:
    """One outcome per hint, in the hints' order, and the changes to publish."""

    outcomes: list[HintOutcome]
    changes: list[ResourceChange]


@dataclass
class _Group:
    """The hints of one batch that name the same cloud account and region."""

    record: CloudAccountRecord
    region: str
    hint_indices: list[int] = field(default_factory=list)


# Instance ids one shared DescribeInstances asks for at most (one filter's worth).
ROUND_IDS = FILTER_CHUNK

_Key = tuple[int, str, CloudAccountRole]


class HintFollower:
    def __init__(self, aws: AwsAccess, accounts: CloudAccountDirectory) -> None:
        self.aws = aws
        self.accounts = accounts
        # Batches followed at once (several pollers) share DescribeInstances: per cloud
        # account and region one call is in flight, and what other batches want meanwhile
        # is asked together in the next one. Nothing waits when nothing else is asked.
        self._waiting: dict[_Key, list[tuple[list[str], asyncio.Future[dict[str, Observation]]]]] = {}
        self._rounds: dict[_Key, asyncio.Task[None]] = {}

    async def follow(self, hints: Sequence[InstanceHint]) -> FollowedHints:
        """Describe what the hints name and build one ResourceChange per instance. Never
        raises for one hint's sake: each outcome says what became of its hint."""
        outcomes: dict[int, HintOutcome] = {}
        groups = await self._group(hints, outcomes)
        looked = await asyncio.gather(*(self._describe(group, hints) for group in groups))
        changes: list[ResourceChange] = []
        for group, result in zip(groups, looked):
            if isinstance(result, str):
                for index in group.hint_indices:
                    outcomes[index] = HintOutcome(Verdict.failed, result)
                continue
            changes.extend(_changes_for(group, [hints[i] for i in group.hint_indices], result))
            for index in group.hint_indices:
                outcomes[index] = HintOutcome(Verdict.observed)
        return FollowedHints([outcomes[index] for index in range(len(hints))], changes)

    async def _group(
        self, hints: Sequence[InstanceHint], outcomes: dict[int, HintOutcome]
    ) -> list[_Group]:
        """Group the hints by cloud account and region; the outcome of a hint that cannot
        be followed is settled here."""
        upstream_ids = sorted({hint.account_id for hint in hints})
        answers = await asyncio.gather(
            *(self.accounts.lookup(upstream) for upstream in upstream_ids), return_exceptions=True
        )
        groups: dict[tuple[int, str], _Group] = {}
        for index, hint in enumerate(hints):
            answer = answers[upstream_ids.index(hint.account_id)]
            if isinstance(answer, BaseException):
                outcomes[index] = HintOutcome(Verdict.failed, f"cloud account lookup failed: {answer}")
                continue
            record = _record_for(answer, hint.region)
            if record is None:
                reason = (
                    f"AWS account {hint.account_id} is not onboarded"
                    if not answer
                    else f"region {hint.region} is not watched for AWS account {hint.account_id}"
                )
                outcomes[index] = HintOutcome(Verdict.rejected, reason)
                continue
            group = groups.setdefault((record.id, hint.region), _Group(record, hint.region))
            group.hint_indices.append(index)
        return list(groups.values())

    async def _describe(self, group: _Group, hints: Sequence[InstanceHint]) -> dict[str, Observation] | str:
        """The group's instances as AWS describes them, or why that failed."""
        instance_ids = [i for index in group.hint_indices for i in hints[index].instance_ids]
        with log_context(cloud_account=group.record.id):
            try:
                return await self._shared_describe(group, instance_ids)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - any failure leaves the events for a retry
                reason = f"DescribeInstances in {group.region} failed: {type(error).__name__}: {error}"
                log.warning("%s", reason)
                return reason


    async def _shared_describe(self, group: _Group, instance_ids: list[str]) -> dict[str, Observation]:
        """These instances as one DescribeInstances of the group's account and region
        describes them, shared with whatever other batches ask meanwhile."""
        key = (group.record.id, group.region, group.record.role)
        answer: asyncio.Future[dict[str, Observation]] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((instance_ids, answer))
        if key not in self._rounds:
            self._rounds[key] = asyncio.create_task(self._describe_rounds(key, group.region, group.record.role))
        return await answer

    async def _describe_rounds(self, key: _Key, region: str, role: CloudAccountRole) -> None:
        """One DescribeInstances after another for ``key`` while batches wait, each for as
        many waiting batches as fit ROUND_IDS (always at least one)."""
        try:
            while waiting := self._waiting.get(key):
                taken = [waiting.pop(0)]
                while waiting and len({i for ids, _ in taken for i in ids}) + len(waiting[0][0]) <= ROUND_IDS:
                    taken.append(waiting.pop(0))
                if not waiting:
                    del self._waiting[key]
                wanted = list(dict.fromkeys(i for ids, _ in taken for i in ids))
                try:
                    # A kept client: making one per batch cost more CPU than the call (issue #12).
                    ec2 = await self.aws.kept_client("ec2", region, role)
                    found = await describe_instances(ec2, wanted)
                except asyncio.CancelledError:
                    for _, answer in taken + self._waiting.pop(key, []):
                        answer.cancel()
                    raise
                except Exception as error:  # noqa: BLE001 - each batch waiting hears it and settles its events
                    for _, answer in taken:
                        if not answer.done():
                            answer.set_exception(error)
                    continue
                for ids, answer in taken:
                    if not answer.done():
                        answer.set_result({i: found[i] for i in ids})
        finally:
            del self._rounds[key]


def _record_for(records: Sequence[CloudAccountRecord], region: str) -> CloudAccountRecord | None:
    return next((record for record in records if region in record.regions), None)


def _changes_for(
    group: _Group, hints: Sequence[InstanceHint], observations: dict[str, Observation]
) -> list[ResourceChange]:
    """One change per instance; when several hints of the batch name it, the newest event
    is the one recorded as the reason we looked."""
    newest: dict[str, InstanceHint] = {}
    for hint in sorted(hints, key=lambda h: h.event_time):
        for instance_id in hint.instance_ids:
            newest[instance_id] = hint
    unlisted = sorted(i for i in newest if observations[i].snapshot is None)
    if unlisted:
        log.info(
            "%d instance(s) named by events are not listed in %s: inconclusive, left to the sweep (%s)",
            len(unlisted), group.region, ", ".join(unlisted[:10]),
        )
    return [
        resource_change(
            observations[instance_id],
            account_id=group.record.upstream_account_id,
            region=group.region,
            event_name=hint.event_name,
            event_time=hint.event_time,
            event_source=hint.event_source,
            event_id=hint.event_id,
        )
        for instance_id, hint in newest.items()
        if observations[instance_id].snapshot is not None
    ]
