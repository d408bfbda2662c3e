"""The live check on its own: the reservation's owner, the filter chunks, the bound on
protection reads."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import ActionOnExpiry

from tests.reaper.factories import CUSTOMER, OTHER_CUSTOMER, OWNER, CustomerAccount
from zc_reaper.live import FILTER_CHUNK, Target, check_live
from zc_reaper.retry import RetryPolicy

pytestmark = pytest.mark.asyncio

RETRY = RetryPolicy(attempts=2, delay=0.01)


async def test_instance_whose_reservation_belongs_to_another_account_is_skipped(
    other_customer: CustomerAccount,
) -> None:
    [instance_id] = await other_customer.launch()

    async with other_customer.ec2() as ec2:
        live = await check_live(
            ec2, [Target(instance_id, "owner", OWNER)], account_id=CUSTOMER, action=ActionOnExpiry.stop,
            retry=RETRY, concurrency=4,
        )

    assert live.actionable == []
    verdict = live.settled[instance_id]
    assert verdict.outcome is ReapOutcomeKind.skipped
    assert verdict.reason == f"instance belongs to AWS account {OTHER_CUSTOMER}, not the managed account {CUSTOMER}"


class FakeEc2:
    """Answers DescribeInstances (every asked id, running, owned by CUSTOMER) and
    DescribeInstanceAttribute (unprotected), recording how it was asked."""

    def __init__(self) -> None:
        self.filters: list[list[str]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def describe_instances(self, Filters: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        [instance_filter] = Filters
        assert instance_filter["Name"] == "instance-id"
        ids = instance_filter["Values"]
        self.filters.append(ids)
        instances = [
            {"InstanceId": i, "State": {"Name": "running"}, "Tags": [{"Key": "owner", "Value": OWNER}]} for i in ids
        ]
        return {"Reservations": [{"OwnerId": CUSTOMER, "Instances": instances}]}

    async def describe_instance_attribute(self, InstanceId: str, Attribute: str) -> dict[str, Any]:
        assert Attribute == "disableApiStop"
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.001)
        self.in_flight -= 1
        return {"InstanceId": InstanceId, "DisableApiStop": {"Value": False}}


async def test_describe_uses_the_instance_id_filter_200_at_a_time_and_bounds_protection_reads() -> None:
    ec2 = FakeEc2()
    targets = [Target(f"i-{n:017x}", "owner", OWNER) for n in range(450)]

    live = await check_live(ec2, targets, account_id=CUSTOMER, action=ActionOnExpiry.stop, retry=RETRY, concurrency=7)

    assert [len(ids) for ids in ec2.filters] == [200, 200, 50]
    assert max(len(ids) for ids in ec2.filters) <= FILTER_CHUNK
    assert sorted(live.actionable) == sorted(t.instance_id for t in targets)
    assert 1 < ec2.most_in_flight <= 7
