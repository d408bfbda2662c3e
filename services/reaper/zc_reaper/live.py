"""The live check before any write: each claimed instance must still exist, belong to the
managed AWS account, be in a state the action applies to and carry the owner tag value the
lease was made with, read in one DescribeInstances per 1,000 instances. Stop and termination
protection are not read here: the write asks AWS, which refuses the protected (act.py)."""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from zc_common.aws import error_code
from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import ActionOnExpiry

from zc_reaper.retry import ClientError, RetryPolicy

# DescribeInstances by InstanceIds: up to 1,000 ids a call, and AWS forbids MaxResults
# with them. The instance-id filter (the fallback) takes at most 200 values.
DESCRIBE_CHUNK = 1000
FILTER_CHUNK = 200
PAGE_SIZE = 1000
DESCRIBES_IN_FLIGHT = 4
# An unknown id fails a DescribeInstances by InstanceIds; AWS names every unknown id, so
# one more call asks for the rest. A backend naming fewer (moto names one) gets this many
# rounds, then the filter, which just leaves unknown ids out: a bounded number of calls.
NOT_FOUND_ROUNDS = 3

_INSTANCE_ID = re.compile(r"\bi-[0-9a-f]{8,17}\b")

T = TypeVar("T")

GONE_STATES = frozenset({"shutting-down", "terminated"})
STOPPABLE_STATES = frozenset({"pending", "running"})
# Where each action leaves an instance.
DONE_STATES = {
    ActionOnExpiry.stop: frozenset({"stopping", "stopped"}),
    ActionOnExpiry.terminate: GONE_STATES,
}


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
    reservation's OwnerId; None when it may (AWS itself refuses a protected instance)."""
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
    written: Collection[str] = (),
) -> LiveCheck:
    """Check every target in one account and region: one DescribeInstances per 1,000
    instances (``DESCRIBES_IN_FLIGHT`` at a time), a few more when some no longer exist.
    ``written``: instances an earlier write may have reached without an answer (the call
    failed after AWS acted, or moto acted before refusing another); one found where the
    action leaves it is judged as if still running, so the write is made again (AWS
    answers its state: done) instead of reporting as skipped what the reaper did.
    Raises AwsUnavailable when AWS keeps throttling, ClientError when the role is denied."""
    result = LiveCheck()
    describes = asyncio.Semaphore(DESCRIBES_IN_FLIGHT)

    async def check_chunk(chunk: Sequence[Target]) -> None:
        async with describes:
            found = await _describe(ec2, [t.instance_id for t in chunk], retry)
        for target in chunk:
            item = found.get(target.instance_id)
            if item is not None and target.instance_id in written:
                owner_id, instance = item
                if instance.get("State", {}).get("Name") in DONE_STATES[action]:
                    item = (owner_id, {**instance, "State": {"Name": "running"}})
            verdict = judge(target, item, account_id=account_id, action=action)
            if verdict is None:
                result.actionable.append(target.instance_id)
            else:
                result.settled[target.instance_id] = verdict

    unique = list({t.instance_id: t for t in targets}.values())
    await _all(
        *(check_chunk(unique[start : start + DESCRIBE_CHUNK]) for start in range(0, len(unique), DESCRIBE_CHUNK))
    )
    return result


def named_instances(error: ClientError, asked: Collection[str]) -> set[str]:
    """The instance ids an AWS error message names, among those asked about ("The
    instance IDs 'i-a, i-b' do not exist", "The instance 'i-a' may not be terminated…")."""
    message = str(error.response.get("Error", {}).get("Message") or "")
    return set(_INSTANCE_ID.findall(message)) & set(asked)


def is_not_found(error: ClientError) -> bool:
    return (error_code(error) or "").startswith("InvalidInstanceID.NotFound")


async def _all(*calls: Awaitable[T]) -> list[T]:
    """Like gather, but a failure is raised only once every call has finished, so no AWS
    call is still running unobserved when the caller reports or gives up."""
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


Found = dict[str, tuple[str, dict[str, Any]]]


async def _describe(ec2: Any, instance_ids: list[str], retry: RetryPolicy) -> Found:
    """instance id -> (reservation OwnerId, instance) for the ids AWS lists; an id it does
    not know is left out. By ``InstanceIds``, dropping the ids a NotFound names and asking
    again; by the ``instance-id`` filter when the unknown ids cannot be told apart."""
    asked = instance_ids
    for _ in range(NOT_FOUND_ROUNDS):
        if not asked:
            return {}
        try:
            return await _pages(ec2, {"InstanceIds": asked}, retry)
        except ClientError as error:
            code = error_code(error) or ""
            if code.startswith("InvalidInstanceID.Malformed"):
                break  # an id that never was one: the filter just leaves it out
            if not is_not_found(error):
                raise
            unknown = named_instances(error, asked)
            if not unknown:
                break
            asked = [instance_id for instance_id in asked if instance_id not in unknown]
    found: Found = {}
    for start in range(0, len(asked), FILTER_CHUNK):
        chunk = asked[start : start + FILTER_CHUNK]
        found.update(
            await _pages(ec2, {"Filters": [{"Name": "instance-id", "Values": chunk}], "MaxResults": PAGE_SIZE}, retry)
        )
    return found


async def _pages(ec2: Any, request: dict[str, Any], retry: RetryPolicy) -> Found:
    """Every page of one DescribeInstances request."""
    found: Found = {}
    token: str | None = None
    while True:
        page = {**request, "NextToken": token} if token else request
        answer = await retry.call("DescribeInstances", functools.partial(ec2.describe_instances, **page))
        for reservation in answer.get("Reservations", []):
            owner_id = str(reservation.get("OwnerId", ""))
            for instance in reservation.get("Instances", []):
                found[instance["InstanceId"]] = (owner_id, instance)
        token = answer.get("NextToken")
        if not token:
            return found
