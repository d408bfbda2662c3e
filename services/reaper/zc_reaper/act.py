"""The writes: StopInstances / TerminateInstances, one call per up to 1,000 instances of
one account, region and action, and what AWS answered for each instance."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from zc_common.aws import error_code
from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import ActionOnExpiry

from zc_reaper.live import Settled
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
        frozenset({"stopping", "stopped"}),
    ),
    ActionOnExpiry.terminate: _Write(
        "TerminateInstances", "terminate_instances", "TerminatingInstances", ReapOutcomeKind.terminated,
        frozenset({"shutting-down", "terminated"}),
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


async def _write(ec2: Any, write: _Write, instance_ids: list[str], retry: RetryPolicy) -> dict[str, Settled]:
    call = getattr(ec2, write.method)
    try:
        answer = await retry.call(write.operation, lambda: call(InstanceIds=instance_ids))
    except ClientError as error:
        if is_denied(error):
            raise
        if len(instance_ids) == 1:
            return {instance_ids[0]: _refused(write, error)}
        # AWS refuses the whole call for one instance that changed since the live check
        # (protection switched on, stopped, gone): halve until the refused ones stand alone.
        half = len(instance_ids) // 2
        return {
            **await _write(ec2, write, instance_ids[:half], retry),
            **await _write(ec2, write, instance_ids[half:], retry),
        }
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
    code = error_code(error) or ""
    if code.startswith("InvalidInstanceID.NotFound"):
        return Settled(ReapOutcomeKind.gone, "instance no longer exists")
    return Settled(ReapOutcomeKind.skipped, f"AWS refused {write.operation}: {describe(error)}")
