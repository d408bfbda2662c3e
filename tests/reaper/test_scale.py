"""What a reap costs in AWS calls, at the sizes the reaper is built for: 1,000 expired
instances of one account and region in one DescribeInstances and one StopInstances (plus
the AssumeRole), protected instances settled by AWS's refusals in a few more calls (one
per protected instance in moto, which names one per refusal), ids AWS no longer knows
dropped in a few more describes.

Launching 1,000 instances costs moto seconds, so the stop tests share one fleet, started
again before each test; nothing here resets moto after the fleet is launched (the
terminate test launches its own instances in another region)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import ActionOnExpiry

from tests.reaper.factories import (
    OTHER_REGION,
    REGION,
    CountingAwsAccess,
    CustomerAccount,
    FakeApi,
    reaper_settings,
)
from zc_reaper.service import Reaper

pytestmark = pytest.mark.asyncio

MANY = 1000


@dataclass(frozen=True)
class Fleet:
    customer: CustomerAccount
    plain: list[str]  # 1,000
    stop_protected: list[str]  # 10
    termination_protected: list[str]  # 5: termination protection does not keep one from stopping

    @property
    def everyone(self) -> list[str]:
        return [*self.plain, *self.stop_protected, *self.termination_protected]


@pytest_asyncio.fixture(scope="module")
async def fleet(moto_url: str) -> Fleet:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{moto_url}/moto-api/reset", timeout=10)).raise_for_status()
    customer = CustomerAccount(moto_url)
    return Fleet(
        customer,
        plain=await customer.launch(MANY),
        stop_protected=await customer.launch(10, stop_protected=True),
        termination_protected=await customer.launch(5, termination_protected=True),
    )


@pytest_asyncio.fixture
async def running(fleet: Fleet) -> Fleet:
    """The fleet, every instance running again (fails loudly should moto have been reset)."""
    async with fleet.customer.ec2() as ec2:
        await ec2.start_instances(InstanceIds=fleet.everyone)
    return fleet


async def states(customer: CustomerAccount, instance_ids: list[str], *, region: str = REGION) -> dict[str, str]:
    """Like CustomerAccount.states, in a fraction of moto's time for 1,000 instances."""
    async with customer.ec2(region) as ec2:
        answer = await ec2.describe_instance_status(InstanceIds=instance_ids, IncludeAllInstances=True)
    return {status["InstanceId"]: status["InstanceState"]["Name"] for status in answer["InstanceStatuses"]}


@pytest.fixture
def aws(moto_url: str) -> CountingAwsAccess:
    return CountingAwsAccess(endpoint_url=moto_url, session_name="zerocloud-reaper-test")


@pytest_asyncio.fixture
async def reaper(moto_url: str, fake_api: FakeApi, aws: CountingAwsAccess) -> AsyncIterator[Reaper]:
    api = fake_api.client()
    yield Reaper(reaper_settings(moto_url), aws, api)
    await api.close()


def interleave(plain: list[str], special: list[str]) -> list[str]:
    """``special`` spread evenly through ``plain``, none first: moto acts on the instances
    before a protected one and then refuses, so each refusal comes after real work."""
    step = len(plain) // len(special)
    mixed: list[str] = []
    for n, instance_id in enumerate(special):
        mixed.extend(plain[n * step : (n + 1) * step])
        mixed.append(instance_id)
    mixed.extend(plain[len(special) * step :])
    return mixed


async def test_1000_expired_instances_cost_one_describe_and_one_stop(
    reaper: Reaper, fake_api: FakeApi, running: Fleet, aws: CountingAwsAccess
) -> None:
    launched = running.plain
    leases = [fake_api.lease(i) for i in launched]

    report = await reaper.reap(fake_api.expired(*leases))

    assert dict(aws.calls) == {"AssumeRole": 1, "DescribeInstances": 1, "StopInstances": 1}
    assert report.count(ReapOutcomeKind.stopped) == MANY
    assert await states(running.customer, launched) == {i: "stopped" for i in launched}


async def test_10_stop_protected_among_1000_are_skipped_and_the_rest_stopped_in_few_calls(
    reaper: Reaper, fake_api: FakeApi, running: Fleet, aws: CountingAwsAccess
) -> None:
    plain = running.plain[: MANY - 15]
    protected = running.stop_protected
    termination_only = running.termination_protected
    instance_ids = interleave(plain + termination_only, protected)
    assert len(instance_ids) == MANY
    leases = {i: fake_api.lease(i) for i in instance_ids}

    await reaper.reap(fake_api.expired(*leases.values()))

    assert aws.calls["StopInstances"] == 11  # moto names one refused instance per answer
    assert aws.calls["DescribeInstances"] == 1 and aws.calls["AssumeRole"] == 1
    assert sum(aws.calls.values()) <= 25
    outcomes = {i: [(o.outcome, o.reason) for o in fake_api.outcomes_of(lease)] for i, lease in leases.items()}
    assert outcomes == {
        **{i: [(ReapOutcomeKind.stopped, None)] for i in plain + termination_only},
        **{i: [(ReapOutcomeKind.skipped, "stop protection enabled")] for i in protected},
    }
    assert await states(running.customer, instance_ids) == {
        **{i: "stopped" for i in plain + termination_only}, **{i: "running" for i in protected}
    }


async def test_10_termination_protected_among_300_are_skipped_and_the_rest_terminated_in_few_calls(
    reaper: Reaper, fake_api: FakeApi, fleet: Fleet, aws: CountingAwsAccess
) -> None:
    # The same path as the stop test at 1,000; smaller, because a terminated fleet cannot
    # be started again for the next test and launching costs moto seconds.
    customer = fleet.customer
    plain = await customer.launch(300 - 15, region=OTHER_REGION)
    protected = await customer.launch(10, region=OTHER_REGION, termination_protected=True)
    stop_only = await customer.launch(5, region=OTHER_REGION, stop_protected=True)  # does not keep one from terminating
    instance_ids = interleave(plain + stop_only, protected)
    leases = {i: fake_api.lease(i, action=ActionOnExpiry.terminate, region=OTHER_REGION) for i in instance_ids}

    await reaper.reap(fake_api.expired(*leases.values()))

    assert aws.calls["TerminateInstances"] == 11
    assert aws.calls["DescribeInstances"] == 1 and aws.calls["AssumeRole"] == 1
    assert sum(aws.calls.values()) <= 25
    outcomes = {i: [(o.outcome, o.reason) for o in fake_api.outcomes_of(lease)] for i, lease in leases.items()}
    assert outcomes == {
        **{i: [(ReapOutcomeKind.terminated, None)] for i in plain + stop_only},
        **{i: [(ReapOutcomeKind.skipped, "termination protection enabled")] for i in protected},
    }
    assert await states(customer, instance_ids, region=OTHER_REGION) == {
        **{i: "terminated" for i in plain + stop_only}, **{i: "running" for i in protected}
    }


async def test_ids_aws_never_knew_are_gone_and_the_rest_stopped_in_few_calls(
    reaper: Reaper, fake_api: FakeApi, running: Fleet, aws: CountingAwsAccess
) -> None:
    launched = running.plain[:50]
    unknown = ["i-0123456789abcdef0", "i-0fedcba987654321f"]
    leases = {i: fake_api.lease(i) for i in interleave(launched, unknown)}

    await reaper.reap(fake_api.expired(*leases.values()))

    # moto names one unknown id per DescribeInstances answer (AWS names all): 2 + 1.
    assert dict(aws.calls) == {"AssumeRole": 1, "DescribeInstances": 3, "StopInstances": 1}
    outcomes = {i: [(o.outcome, o.reason) for o in fake_api.outcomes_of(lease)] for i, lease in leases.items()}
    assert outcomes == {
        **{i: [(ReapOutcomeKind.stopped, None)] for i in launched},
        **{i: [(ReapOutcomeKind.gone, "instance no longer exists")] for i in unknown},
    }
    assert await states(running.customer, launched) == {i: "stopped" for i in launched}
