"""The writes on their own: up to 1,000 ids a call, the instances AWS's refusal names
settled and the rest acted on in one more call, a refusal naming nobody halved until
everyone is settled, throttling retried and then raised."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import ActionOnExpiry

from tests.reaper.factories import CustomerAccount
from zc_reaper.act import WRITE_CHUNK, act
from zc_reaper.live import Settled
from zc_reaper.retry import AwsUnavailable, RetryPolicy

pytestmark = pytest.mark.asyncio

RETRY = RetryPolicy(attempts=3, delay=0.01)


class FakeEc2:
    def __init__(self, *, throttled: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.throttled = throttled

    async def stop_instances(self, InstanceIds: list[str]) -> dict[str, Any]:
        self.calls.append(InstanceIds)
        if self.throttled:
            self.throttled -= 1
            raise ClientError(
                {"Error": {"Code": "RequestLimitExceeded", "Message": "slow down"},
                 "ResponseMetadata": {"HTTPStatusCode": 503}},
                "StopInstances",
            )
        return {"StoppingInstances": [
            {"InstanceId": i, "CurrentState": {"Name": "stopping"}, "PreviousState": {"Name": "running"}}
            for i in InstanceIds
        ]}


async def collect(ec2: Any, action: ActionOnExpiry, ids: list[str]) -> dict[str, Settled]:
    settled: dict[str, Settled] = {}
    async for done in act(ec2, action, ids, retry=RETRY):
        settled.update(done)
    return settled


async def test_one_call_per_1000_ids() -> None:
    ec2 = FakeEc2()
    ids = [f"i-{n:017x}" for n in range(2500)]

    settled = await collect(ec2, ActionOnExpiry.stop, ids + ids[:10])  # a duplicate is acted on once

    assert [len(call) for call in ec2.calls] == [WRITE_CHUNK, WRITE_CHUNK, 500]
    assert {s.outcome for s in settled.values()} == {ReapOutcomeKind.stopped} and len(settled) == 2500


async def test_throttling_is_retried_then_raised() -> None:
    assert (await collect(FakeEc2(throttled=2), ActionOnExpiry.stop, ["i-00000000000000001"])) == {
        "i-00000000000000001": Settled(ReapOutcomeKind.stopped)
    }
    with pytest.raises(AwsUnavailable, match="RequestLimitExceeded"):
        await collect(FakeEc2(throttled=3), ActionOnExpiry.stop, ["i-00000000000000001"])


async def test_protected_instance_named_by_the_refusal_is_skipped_and_the_rest_done_in_one_more_call(
    customer: CustomerAccount,
) -> None:
    plain = await customer.launch(5)
    [protected] = await customer.launch(stop_protected=True)

    async with customer.ec2() as ec2:
        recording = RecordingEc2(ec2)
        settled = await collect(recording, ActionOnExpiry.stop, [*plain[:3], protected, *plain[3:]])

    # moto stopped the first three, then refused the protected one; the second call (the
    # rest) answers those three as stopped again: done, and reported once.
    assert recording.calls == [[*plain[:3], protected, *plain[3:]], plain]
    assert settled == {**{i: Settled(ReapOutcomeKind.stopped) for i in plain},
                       protected: Settled(ReapOutcomeKind.skipped, "stop protection enabled")}
    assert await customer.states(*plain, protected) == {**{i: "stopped" for i in plain}, protected: "running"}


async def test_termination_protected_instance_is_skipped_and_the_rest_terminated(customer: CustomerAccount) -> None:
    plain = await customer.launch(4)
    guarded = await customer.launch(2, termination_protected=True)
    stop_guarded = await customer.launch(1, stop_protected=True)  # stop protection does not stop a terminate

    async with customer.ec2() as ec2:
        recording = RecordingEc2(ec2)
        settled = await collect(recording, ActionOnExpiry.terminate, [guarded[0], *plain, guarded[1], *stop_guarded])

    assert len(recording.calls) == 3
    assert settled == {
        **{i: Settled(ReapOutcomeKind.terminated) for i in [*plain, *stop_guarded]},
        **{i: Settled(ReapOutcomeKind.skipped, "termination protection enabled") for i in guarded},
    }
    assert await customer.states(*plain, *guarded, *stop_guarded) == {
        **{i: "terminated" for i in [*plain, *stop_guarded]}, **{i: "running" for i in guarded}
    }


async def test_instances_aws_no_longer_knows_are_gone_and_the_rest_done(customer: CustomerAccount) -> None:
    plain = await customer.launch(3)
    unknown = ["i-0123456789abcdef0", "i-0fedcba9876543210"]

    async with customer.ec2() as ec2:
        recording = RecordingEc2(ec2)
        settled = await collect(recording, ActionOnExpiry.stop, [unknown[0], *plain, unknown[1]])

    assert len(recording.calls) == 2  # AWS names every unknown id at once
    assert settled == {
        **{i: Settled(ReapOutcomeKind.stopped) for i in plain},
        **{i: Settled(ReapOutcomeKind.gone, "instance no longer exists") for i in unknown},
    }
    assert await customer.states(*plain) == {i: "stopped" for i in plain}


class RecordingEc2:
    """A real client's stop/terminate calls, recorded."""

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2
        self.calls: list[list[str]] = []

    async def stop_instances(self, InstanceIds: list[str]) -> dict[str, Any]:
        self.calls.append(list(InstanceIds))
        return await self.ec2.stop_instances(InstanceIds=InstanceIds)  # type: ignore[no-any-return]

    async def terminate_instances(self, InstanceIds: list[str]) -> dict[str, Any]:
        self.calls.append(list(InstanceIds))
        return await self.ec2.terminate_instances(InstanceIds=InstanceIds)  # type: ignore[no-any-return]


class ValidatingEc2:
    """AWS as it behaves: every instance is checked before any is acted on, a refused call
    does nothing. ``named`` False: the refusal names no instance (a message in a form the
    reaper cannot read), so only halving can find the refused ones."""

    def __init__(self, states: dict[str, str], protected: set[str], *, named: bool) -> None:
        self.states = states
        self.protected = protected
        self.named = named
        self.calls: list[list[str]] = []
        self.acted: list[str] = []

    async def stop_instances(self, InstanceIds: list[str]) -> dict[str, Any]:
        self.calls.append(list(InstanceIds))
        refused = [i for i in InstanceIds if i in self.protected]
        if refused:
            message = (
                f"The instance '{refused[0]}' may not be stopped. Modify its 'disableApiStop' instance attribute "
                "and try again." if self.named else "One or more instances may not be stopped."
            )
            raise ClientError(
                {"Error": {"Code": "OperationNotPermitted", "Message": message},
                 "ResponseMetadata": {"HTTPStatusCode": 400}},
                "StopInstances",
            )
        answer = []
        self.acted.extend(InstanceIds)
        for instance_id in InstanceIds:
            previous, self.states[instance_id] = self.states[instance_id], "stopping"
            answer.append({"InstanceId": instance_id, "CurrentState": {"Name": "stopping"},
                           "PreviousState": {"Name": previous}})
        return {"StoppingInstances": answer}


@pytest.mark.parametrize("named", [True, False], ids=["refusal-names-the-instance", "refusal-names-nobody"])
async def test_refusals_settle_everyone_whether_or_not_the_instance_is_named(named: bool) -> None:
    ids = [f"i-{n:017x}" for n in range(64)]
    protected = {ids[5], ids[40]}
    ec2 = ValidatingEc2({i: "running" for i in ids}, protected, named=named)

    settled = await collect(ec2, ActionOnExpiry.stop, ids)

    expected_reason = "stop protection enabled" if named else (
        "AWS refused StopInstances: OperationNotPermitted: One or more instances may not be stopped."
    )
    assert settled == {
        **{i: Settled(ReapOutcomeKind.stopped) for i in ids if i not in protected},
        **{i: Settled(ReapOutcomeKind.skipped, expected_reason) for i in protected},
    }
    assert ec2.states == {i: "running" if i in protected else "stopping" for i in ids}
    assert sorted(ec2.acted) == sorted(set(ids) - protected)  # each acted on once, the protected never
    if named:
        assert len(ec2.calls) == 3  # one per protected instance, then the rest
    else:
        # Halving: about 2·k·log2(N) calls for k refused among N, far below one per instance.
        assert 3 < len(ec2.calls) <= 2 * len(protected) * 6 + 1
