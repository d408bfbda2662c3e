"""The writes on their own: up to 1,000 ids a call, a refused instance isolated without
holding back the rest, throttling retried and then raised."""

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


async def test_instance_protected_after_the_live_check_is_isolated_and_skipped(customer: CustomerAccount) -> None:
    # AWS refuses the whole StopInstances for one protected instance.
    plain = await customer.launch(5)
    [protected] = await customer.launch(stop_protected=True)

    async with customer.ec2() as ec2:
        settled = await collect(ec2, ActionOnExpiry.stop, [*plain[:3], protected, *plain[3:]])

    assert {i: settled[i].outcome for i in plain} == {i: ReapOutcomeKind.stopped for i in plain}
    assert settled[protected].outcome is ReapOutcomeKind.skipped
    assert "OperationNotPermitted" in (settled[protected].reason or "")
    assert await customer.states(*plain, protected) == {**{i: "stopped" for i in plain}, protected: "running"}
