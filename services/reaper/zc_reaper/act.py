"""The writes: StopInstances / TerminateInstances, one call per up to 1,000 instances of
one account, region and action, and what AWS answered for each instance. Protection is
AWS's to enforce: a call it refuses for the instances its message names (protected, gone)
is made again for the rest, so k refused instances cost about k more calls, not one read
per instance."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from zc_common.aws import error_code
from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import ActionOnExpiry

from zc_reaper.live import DONE_STATES, Settled, is_not_found, named_instances
from zc_reaper.retry import ClientError, RetryPolicy, describe, is_denied

# StopInstances and TerminateInstances take up to 1,000 ids.
WRITE_CHUNK = 1000


@dataclass(frozen=True)
class _Write:
    operation: str
    method: str
    answer_key: str
    done: ReapOutcomeKind
    done_states: frozenset[str]


WRITES = {
    ActionOnExpiry.stop: _Write(
        "StopInstances", "stop_instances", "StoppingInstances", ReapOutcomeKind.stopped,
        DONE_STATES[ActionOnExpiry.stop],
    ),
    ActionOnExpiry.terminate: _Write(
        "TerminateInstances", "terminate_instances", "TerminatingInstances", ReapOutcomeKind.terminated,
        DONE_STATES[ActionOnExpiry.terminate],
    ),
}


async def act(
    ec2: Any, action: ActionOnExpiry, instance_ids: Sequence[str], *, retry: RetryPolicy
) -> AsyncIterator[dict[str, Settled]]:
    """Stop or terminate these instances of one account and region; yields what happened
    to each, a chunk of up to 1,000 at a time, so what is done is known even when a later
    chunk fails. Raises AwsUnavailable when AWS keeps throttling, ClientError when the
    role is denied."""
    unique = list(dict.fromkeys(instance_ids))
    for start in range(0, len(unique), WRITE_CHUNK):
        yield await _write(ec2, WRITES[action], unique[start : start + WRITE_CHUNK], retry)


# The instance attribute an OperationNotPermitted names, and what it means for the lease.
PROTECTIONS = {
    "disableApiStop": "stop protection enabled",
    "disableApiTermination": "termination protection enabled",
}


async def _write(ec2: Any, write: _Write, instance_ids: list[str], retry: RetryPolicy) -> dict[str, Settled]:
    """One call for all of ``instance_ids``; when AWS refuses it, the instances its message
    names are settled (skipped, gone) and the call is made again for the rest. AWS checks
    every instance before acting on any; moto acts on those before the refused one first,
    which the call for the rest then answers as stopping/stopped (shutting-down/terminated),
    i.e. done. A refusal naming none of them is halved until the refused one stands alone."""
    call = getattr(ec2, write.method)
    settled: dict[str, Settled] = {}
    pending = instance_ids
    while pending:
        asked = pending
        try:
            answer = await retry.call(write.operation, functools.partial(call, InstanceIds=asked))
        except ClientError as error:
            if is_denied(error):
                raise
            named = named_instances(error, asked)
            if named:
                settled.update((instance_id, _refused(write, error)) for instance_id in named)
                pending = [instance_id for instance_id in asked if instance_id not in named]
                continue
            if len(asked) == 1:
                settled[asked[0]] = _refused(write, error)
                return settled
            half = len(asked) // 2
            settled.update(await _write(ec2, write, asked[:half], retry))
            settled.update(await _write(ec2, write, asked[half:], retry))
            return settled
        settled.update(_answered(write, asked, answer))
        return settled
    return settled


def _answered(write: _Write, instance_ids: list[str], answer: dict[str, Any]) -> dict[str, Settled]:
    """What a call that went through did to each instance, from the states it answered."""
    states = {item["InstanceId"]: item.get("CurrentState", {}).get("Name") for item in answer.get(write.answer_key, [])}
    settled: dict[str, Settled] = {}
    for instance_id in instance_ids:
        state = states.get(instance_id)
        if state in write.done_states:
            settled[instance_id] = Settled(write.done)
        elif state in ("shutting-down", "terminated"):
            settled[instance_id] = Settled(ReapOutcomeKind.gone, f"instance is {state}")
        else:
            settled[instance_id] = Settled(
                ReapOutcomeKind.skipped, f"{write.operation} left the instance {state or 'unreported'}"
            )
    return settled


def _refused(write: _Write, error: ClientError) -> Settled:
    """What a refusal naming the instance means for it: gone, protected, or skipped with
    AWS's own words."""
    if is_not_found(error):
        return Settled(ReapOutcomeKind.gone, "instance no longer exists")
    if error_code(error) == "OperationNotPermitted":
        message = str(error.response.get("Error", {}).get("Message") or "")
        for attribute, reason in PROTECTIONS.items():
            if attribute in message:
                return Settled(ReapOutcomeKind.skipped, reason)
    return Settled(ReapOutcomeKind.skipped, f"AWS refused {write.operation}: {describe(error)}")
