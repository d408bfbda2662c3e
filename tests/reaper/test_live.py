"""The live check on its own: the reservation's owner, DescribeInstances by InstanceIds
1,000 at a time, unknown ids dropped in one more call per round, the filter as the
fallback, pages followed."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import ActionOnExpiry

from tests.reaper.factories import CUSTOMER, OTHER_CUSTOMER, OWNER, CountingAwsAccess, CustomerAccount
from zc_reaper.live import DESCRIBE_CHUNK, FILTER_CHUNK, Settled, Target, check_live
from zc_reaper.retry import RetryPolicy

pytestmark = pytest.mark.asyncio

RETRY = RetryPolicy(attempts=2, delay=0.01)
GONE = Settled(ReapOutcomeKind.gone, "instance no longer exists")


def targets(*instance_ids: str) -> list[Target]:
    return [Target(instance_id, "owner", OWNER) for instance_id in instance_ids]


async def test_instance_whose_reservation_belongs_to_another_account_is_skipped(
    other_customer: CustomerAccount,
) -> None:
    [instance_id] = await other_customer.launch()

    async with other_customer.ec2() as ec2:
        live = await check_live(ec2, targets(instance_id), account_id=CUSTOMER, action=ActionOnExpiry.stop, retry=RETRY)

    assert live.actionable == []
    verdict = live.settled[instance_id]
    assert verdict.outcome is ReapOutcomeKind.skipped
    assert verdict.reason == f"instance belongs to AWS account {OTHER_CUSTOMER}, not the managed account {CUSTOMER}"


async def test_unknown_ids_are_gone_and_the_rest_described_again_in_moto(
    moto: str, customer: CustomerAccount
) -> None:
    launched = await customer.launch(3)
    unknown = ["i-0123456789abcdef0", "i-0fedcba9876543210"]
    aws = CountingAwsAccess(endpoint_url=moto, session_name="developer")

    async with aws.client("ec2", role=customer.role) as ec2:
        live = await check_live(
            ec2, targets(unknown[0], *launched, unknown[1]), account_id=CUSTOMER, action=ActionOnExpiry.stop,
            retry=RETRY,
        )

    assert sorted(live.actionable) == sorted(launched)
    assert live.settled == {i: GONE for i in unknown}
    # moto names one unknown id per answer (AWS names them all): a call per round.
    assert aws.calls["DescribeInstances"] == 3


class FakeEc2:
    """DescribeInstances over ``known`` instances (running, owned by CUSTOMER, a
    reservation each), answering an unknown id as AWS does, or naming only one of them, or
    none in a form the reaper can read; ``page`` reservations a page. Records each request."""

    def __init__(self, known: list[str], *, naming: str = "all", page: int = 10_000) -> None:
        self.known = set(known)
        self.naming = naming
        self.page = page
        self.requests: list[dict[str, Any]] = []

    async def describe_instances(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if "InstanceIds" in request:
            assert "MaxResults" not in request and "Filters" not in request  # AWS forbids MaxResults here
            assert len(request["InstanceIds"]) <= DESCRIBE_CHUNK
            asked = request["InstanceIds"]
            unknown = [i for i in asked if i not in self.known]
            if unknown:
                raise ClientError(
                    {"Error": {"Code": "InvalidInstanceID.NotFound", "Message": self._not_found(unknown)},
                     "ResponseMetadata": {"HTTPStatusCode": 400}},
                    "DescribeInstances",
                )
        else:
            [instance_filter] = request["Filters"]
            assert instance_filter["Name"] == "instance-id"
            assert len(instance_filter["Values"]) <= FILTER_CHUNK
            asked = [i for i in instance_filter["Values"] if i in self.known]
        start = int(request.get("NextToken", 0))
        reservations = [
            {"OwnerId": CUSTOMER, "Instances": [
                {"InstanceId": i, "State": {"Name": "running"}, "Tags": [{"Key": "owner", "Value": OWNER}]}]}
            for i in asked
        ]
        answer: dict[str, Any] = {"Reservations": reservations[start : start + self.page]}
        if start + self.page < len(reservations):
            answer["NextToken"] = str(start + self.page)
        return answer

    def _not_found(self, unknown: list[str]) -> str:
        if self.naming == "none":
            return "Some of the instance IDs do not exist"
        if self.naming == "one" or len(unknown) == 1:
            return f"The instance ID '{unknown[0]}' does not exist"
        return f"The instance IDs '{', '.join(unknown)}' do not exist"

    def sizes(self) -> list[tuple[str, int]]:
        return [
            ("ids", len(r["InstanceIds"])) if "InstanceIds" in r else ("filter", len(r["Filters"][0]["Values"]))
            for r in self.requests
        ]


def ids(count: int, start: int = 0) -> list[str]:
    return [f"i-{n:017x}" for n in range(start, start + count)]


async def test_describe_asks_by_instance_ids_1000_at_a_time() -> None:
    known = ids(2500)
    ec2 = FakeEc2(known)

    live = await check_live(ec2, targets(*known, *known[:5]), account_id=CUSTOMER, action=ActionOnExpiry.stop,
                            retry=RETRY)

    assert sorted(ec2.sizes()) == [("ids", 500), ("ids", 1000), ("ids", 1000)]
    assert sorted(live.actionable) == known and live.settled == {}


async def test_ids_a_not_found_names_are_gone_and_the_rest_asked_once_more() -> None:
    known, unknown = ids(900), ids(3, start=5000)
    ec2 = FakeEc2(known)

    live = await check_live(ec2, targets(*unknown[:2], *known, unknown[2]), account_id=CUSTOMER,
                            action=ActionOnExpiry.stop, retry=RETRY)

    assert ec2.sizes() == [("ids", 903), ("ids", 900)]
    assert sorted(live.actionable) == known
    assert live.settled == {i: GONE for i in unknown}


async def test_a_not_found_naming_nobody_falls_back_to_the_filter_200_at_a_time() -> None:
    known, unknown = ids(450), ids(2, start=5000)
    ec2 = FakeEc2(known, naming="none")

    live = await check_live(ec2, targets(*known, *unknown), account_id=CUSTOMER, action=ActionOnExpiry.stop,
                            retry=RETRY)

    assert ec2.sizes() == [("ids", 452), ("filter", 200), ("filter", 200), ("filter", 52)]
    assert sorted(live.actionable) == known
    assert live.settled == {i: GONE for i in unknown}


async def test_a_backend_naming_one_unknown_id_a_time_costs_a_bounded_number_of_calls() -> None:
    known, unknown = ids(300), ids(10, start=5000)
    ec2 = FakeEc2(known, naming="one")

    live = await check_live(ec2, targets(*known, *unknown), account_id=CUSTOMER, action=ActionOnExpiry.stop,
                            retry=RETRY)

    # Three rounds by InstanceIds (one unknown id dropped each), then the filter.
    assert ec2.sizes() == [("ids", 310), ("ids", 309), ("ids", 308), ("filter", 200), ("filter", 107)]
    assert sorted(live.actionable) == known
    assert live.settled == {i: GONE for i in unknown}


async def test_pages_are_followed() -> None:
    known = ids(25)
    ec2 = FakeEc2(known, page=10)

    live = await check_live(ec2, targets(*known), account_id=CUSTOMER, action=ActionOnExpiry.stop, retry=RETRY)

    assert [r.get("NextToken") for r in ec2.requests] == [None, "10", "20"]
    assert sorted(live.actionable) == known
