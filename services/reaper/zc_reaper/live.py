"""The live check before any write: each claimed instance must still exist, belong to the
managed AWS account, be in a state the action applies to, carry the owner tag value the
lease was made with, and not be protected against the action."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from zc_common.aws import error_code
from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import ActionOnExpiry

from zc_reaper.retry import ClientError, RetryPolicy, describe, is_denied

# EC2 accepts at most 200 values in one filter.
FILTER_CHUNK = 200
PAGE_SIZE = 1000
DESCRIBES_IN_FLIGHT = 4

T = TypeVar("T")

GONE_STATES = frozenset({"shutting-down", "terminated"})
STOPPABLE_STATES = frozenset({"pending", "running"})


@dataclass(frozen=True)
class Target:
    """A claimed instance and the owner it had when its lease was made."""

    instance_id: str
    owner_tag: str
    owner_tag_value: str | None


@dataclass(frozen=True)
class Settled:
    """What happened (or will not happen) to one instance, and why."""

    outcome: ReapOutcomeKind
    reason: str | None = None


@dataclass
class LiveCheck:
    actionable: list[str] = field(default_factory=list)
    settled: dict[str, Settled] = field(default_factory=dict)


@dataclass(frozen=True)
class _Protection:
    attribute: str
    answer_key: str
    reason: str


PROTECTION = {
    ActionOnExpiry.stop: _Protection("disableApiStop", "DisableApiStop", "stop protection enabled"),
    ActionOnExpiry.terminate: _Protection(
        "disableApiTermination", "DisableApiTermination", "termination protection enabled"
    ),
}


def owner_of(tags: Mapping[str, str], owner_tag: str) -> str | None:
    """The owner the tags name, read the way the api read it when it made the lease: key
    matched case-insensitively (an exact match wins), value stripped and lower-cased."""
    wanted = owner_tag.strip().lower()
    keys = sorted((k for k in tags if k.strip().lower() == wanted), key=lambda k: (k != owner_tag, k))
    for key in keys:
        value = tags[key].strip().lower()
        if value:
            return value
    return None


def judge(
    target: Target, found: tuple[str, dict[str, Any]] | None, *, account_id: str, action: ActionOnExpiry
) -> Settled | None:
    """Why this instance must not be acted on, from its DescribeInstances item and the
    reservation's OwnerId; None when it may (protection is checked separately)."""
    if found is None:
        return Settled(ReapOutcomeKind.gone, "instance no longer exists")
    owner_id, instance = found
    if owner_id != account_id:
        return Settled(
            ReapOutcomeKind.skipped,
            f"instance belongs to AWS account {owner_id}, not the managed account {account_id}",
        )
    state = instance.get("State", {}).get("Name", "unknown")
    if state in GONE_STATES:
        return Settled(ReapOutcomeKind.gone, f"instance is {state}")
    if action == ActionOnExpiry.stop and state not in STOPPABLE_STATES:
        return Settled(ReapOutcomeKind.skipped, f"instance is already {state}")
    tags = {tag["Key"]: tag.get("Value", "") for tag in instance.get("Tags") or []}
    was = (target.owner_tag_value or "").strip().lower() or None
    now = owner_of(tags, target.owner_tag)
    if now != was:
        return Settled(
            ReapOutcomeKind.skipped,
            f"owner tag '{target.owner_tag}' changed since the lease was made "
            f"(was {was or 'absent'}, now {now or 'absent'})",
        )
    return None


async def check_live(
    ec2: Any,
    targets: Sequence[Target],
    *,
    account_id: str,
    action: ActionOnExpiry,
    retry: RetryPolicy,
    concurrency: int,
) -> LiveCheck:
    """Check every target in one account and region. DescribeInstances goes by the
    ``instance-id`` filter (≤200 ids a call; ``InstanceIds`` would fail the whole call for
    one unknown id); protection is read per remaining instance, ``concurrency`` at a time.
    Raises AwsUnavailable when AWS keeps throttling."""
    result = LiveCheck()
    describes = asyncio.Semaphore(DESCRIBES_IN_FLIGHT)
    protection_reads = asyncio.Semaphore(concurrency)

    async def check_chunk(chunk: Sequence[Target]) -> None:
        async with describes:
            found = await _describe(ec2, [t.instance_id for t in chunk], retry)
        candidates = []
        for target in chunk:
            verdict = judge(target, found.get(target.instance_id), account_id=account_id, action=action)
            if verdict is None:
                candidates.append(target.instance_id)
            else:
                result.settled[target.instance_id] = verdict
        # Protection reads of this chunk start while later chunks are still being described.
        verdicts = await _all(
            *(_protection(ec2, instance_id, action, retry, protection_reads) for instance_id in candidates)
        )
        for instance_id, verdict in zip(candidates, verdicts):
            if verdict is None:
                result.actionable.append(instance_id)
            else:
                result.settled[instance_id] = verdict

    unique = list({t.instance_id: t for t in targets}.values())
    await _all(
        *(check_chunk(unique[start : start + FILTER_CHUNK]) for start in range(0, len(unique), FILTER_CHUNK))
    )
    return result


async def _all(*calls: Awaitable[T]) -> list[T]:
    """Like gather, but a failure is raised only once every call has finished, so no AWS
    call is still running unobserved when the caller reports or gives up."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


async def _describe(ec2: Any, instance_ids: list[str], retry: RetryPolicy) -> dict[str, tuple[str, dict[str, Any]]]:
    """instance id -> (reservation OwnerId, instance) for the ids AWS lists."""
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    token: str | None = None
    while True:
        request: dict[str, Any] = {
            "Filters": [{"Name": "instance-id", "Values": instance_ids}], "MaxResults": PAGE_SIZE,
        }
        if token:
            request["NextToken"] = token
        answer = await retry.call("DescribeInstances", functools.partial(ec2.describe_instances, **request))
        for reservation in answer.get("Reservations", []):
            owner_id = str(reservation.get("OwnerId", ""))
            for instance in reservation.get("Instances", []):
                found[instance["InstanceId"]] = (owner_id, instance)
        token = answer.get("NextToken")
        if not token:
            return found


async def _protection(
    ec2: Any, instance_id: str, action: ActionOnExpiry, retry: RetryPolicy, limit: asyncio.Semaphore
) -> Settled | None:
    """Skipped when the instance is protected against ``action`` or its protection cannot
    be read (never forced); gone when AWS no longer knows it; None when it may be acted on."""
    protection = PROTECTION[action]
    try:
        async with limit:
            answer = await retry.call(
                "DescribeInstanceAttribute",
                lambda: ec2.describe_instance_attribute(InstanceId=instance_id, Attribute=protection.attribute),
            )
    except ClientError as error:
        if is_denied(error):
            raise
        if (error_code(error) or "").startswith("InvalidInstanceID.NotFound"):
            return Settled(ReapOutcomeKind.gone, "instance no longer exists")
        return Settled(ReapOutcomeKind.skipped, f"could not read {protection.attribute}: {describe(error)}")
    value = answer.get(protection.answer_key, {}).get("Value")
    if value is None:
        return Settled(ReapOutcomeKind.skipped, f"could not read {protection.attribute}: AWS did not say")
    return Settled(ReapOutcomeKind.skipped, protection.reason) if value else None
