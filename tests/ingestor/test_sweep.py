"""The inventory sweep: every listed instance is published, terminated or unlisted ones
as gone, and one failing account does not stop the others."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from zc_common.messages import InstanceState

from tests.ingestor.conftest import IngestorFactory
from tests.ingestor.factories import (
    CUSTOMER,
    OTHER_CUSTOMER,
    REGION,
    CustomerAccount,
    FakeApi,
    RecordingBus,
    aws_of,
    cloud_account,
)
from zc_ingestor import describe
from zc_ingestor.service import Ingestor
from zc_ingestor.sweep import NothingToSweep

pytestmark = pytest.mark.asyncio


async def test_sweep_publishes_every_instance_of_the_account(
    ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount, recording_bus: RecordingBus
) -> None:
    fake_api.records = [cloud_account(regions=(REGION, "eu-west-1"))]
    east = await customer.launch(3)
    west = await customer.launch(2, region="eu-west-1")

    result = await ingestor.sweep()

    assert (result.regions, result.instances, result.gone, result.failures) == (2, 5, 0, [])
    assert sorted(c.instance_id for c in recording_bus.changes) == sorted([*east, *west])
    assert {(c.event_name, c.event_source, c.event_id) for c in recording_bus.changes} == {
        ("Sweep", "zerocloud.sweep", None)
    }
    assert {c.aws_region for c in recording_bus.changes if c.instance_id in west} == {"eu-west-1"}
    assert all(c.instance is not None and c.instance.state is InstanceState.running for c in recording_bus.changes)
    assert all(c.recipient_account_id == CUSTOMER and not c.gone for c in recording_bus.changes)


async def test_terminated_instance_is_published_gone(
    ingestor: Ingestor, customer: CustomerAccount, recording_bus: RecordingBus
) -> None:
    kept, terminated = await customer.launch(2)
    await customer.terminate(terminated)

    await ingestor.sweep()

    by_id = {c.instance_id: c for c in recording_bus.changes}
    assert not by_id[kept].gone
    assert by_id[terminated].gone
    assert by_id[terminated].instance is not None
    assert by_id[terminated].instance.state is InstanceState.terminated


async def test_instance_the_api_knows_but_aws_no_longer_lists_is_published_gone(
    ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount, recording_bus: RecordingBus
) -> None:
    [listed] = await customer.launch()
    vanished = "i-0123456789abcdef0"
    fake_api.known[(1, REGION)] = [listed, vanished]

    result = await ingestor.sweep()

    assert result.gone == 1
    by_id = {c.instance_id: c for c in recording_bus.changes}
    assert set(by_id) == {listed, vanished}
    assert by_id[vanished].gone and by_id[vanished].instance is None
    assert not by_id[listed].gone
    # The absence was seen no later than anything the listing saw.
    assert by_id[vanished].observed_at <= by_id[listed].observed_at


async def test_a_refused_account_does_not_stop_the_sweep_of_another(
    ingestor: Ingestor,
    fake_api: FakeApi,
    customer: CustomerAccount,
    other_customer: CustomerAccount,
    recording_bus: RecordingBus,
) -> None:
    fake_api.records = [cloud_account(1, CUSTOMER), cloud_account(2, OTHER_CUSTOMER)]
    fake_api.known[(1, REGION)] = ["i-0123456789abcdef0"]
    await customer.launch(2)
    theirs = await other_customer.launch(2)
    aws_of(ingestor).refused.add(f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud")

    result = await ingestor.sweep()

    [failure] = result.failures
    assert (failure.cloud_account_id, failure.region) == (1, REGION)
    assert "AccessDenied" in failure.reason
    assert result.regions == 1
    assert sorted(c.instance_id for c in recording_bus.changes) == sorted(theirs)
    assert ingestor.counters["sweep_failures"] == 1


async def test_sweep_of_one_cloud_account_and_region(
    ingestor: Ingestor,
    fake_api: FakeApi,
    customer: CustomerAccount,
    other_customer: CustomerAccount,
    recording_bus: RecordingBus,
) -> None:
    fake_api.records = [cloud_account(1, CUSTOMER, (REGION, "eu-west-1")), cloud_account(2, OTHER_CUSTOMER)]
    await customer.launch()
    [west] = await customer.launch(region="eu-west-1")
    await other_customer.launch()

    result = await ingestor.sweep(cloud_account_id=1, region="eu-west-1")

    assert result.regions == 1
    assert [c.instance_id for c in recording_bus.changes] == [west]


async def test_sweep_of_an_account_not_onboarded_is_refused(ingestor: Ingestor) -> None:
    with pytest.raises(NothingToSweep):
        await ingestor.sweep(cloud_account_id=99)


async def test_sweep_pages_through_the_listing(
    ingestor: Ingestor, customer: CustomerAccount, recording_bus: RecordingBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(describe, "PAGE_SIZE", 2)
    launched = [i for _ in range(5) for i in await customer.launch()]  # moto pages by reservation

    result = await ingestor.sweep()

    assert aws_of(ingestor).calls["DescribeInstances"] == 3
    assert result.instances == 5
    assert sorted(c.instance_id for c in recording_bus.changes) == sorted(launched)


THREE_REGIONS = (REGION, "eu-west-1", "ap-southeast-2")


def count_assume_role(ingestor: Ingestor, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The role ARNs the ingestor asks STS for, refused ones too (CountingAwsAccess
    refuses before any call is made, so its own count misses them)."""
    aws = aws_of(ingestor)
    asked: list[str] = []
    assume = aws.assume_role

    async def counted(role: Any) -> Any:
        asked.append(role.role_arn)
        return await assume(role)

    monkeypatch.setattr(aws, "assume_role", counted)
    return asked


async def test_each_account_is_assumed_once_whatever_its_regions_and_not_again_while_fresh(
    ingestor: Ingestor,
    fake_api: FakeApi,
    customer: CustomerAccount,
    other_customer: CustomerAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake_api.records = [cloud_account(1, CUSTOMER, THREE_REGIONS), cloud_account(2, OTHER_CUSTOMER, THREE_REGIONS)]
    for region in THREE_REGIONS:
        await customer.launch(region=region)
        await other_customer.launch(region=region)
    asked = count_assume_role(ingestor, monkeypatch)

    first = await ingestor.sweep()
    second = await ingestor.sweep()

    assert (first.regions, first.instances, first.failures) == (6, 6, [])
    assert (second.regions, second.instances, second.failures) == (6, 6, [])
    # Once per account for the first sweep, none for the second: the credentials are cached.
    assert sorted(asked) == sorted(f"arn:aws:iam::{a}:role/ZeroCloud" for a in (CUSTOMER, OTHER_CUSTOMER))
    assert aws_of(ingestor).calls["AssumeRole"] == 2
    assert aws_of(ingestor).calls["DescribeInstances"] == 12


async def test_a_refused_role_is_asked_once_per_sweep_not_once_per_region(
    ingestor: Ingestor, fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_api.records = [cloud_account(1, CUSTOMER, THREE_REGIONS)]
    aws_of(ingestor).refused.add(f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud")
    asked = count_assume_role(ingestor, monkeypatch)

    result = await ingestor.sweep()

    assert sorted(f.region for f in result.failures) == sorted(THREE_REGIONS)
    assert all("AccessDenied" in f.reason for f in result.failures)
    assert len(asked) == 1
    assert aws_of(ingestor).calls["DescribeInstances"] == 0

    await ingestor.sweep()  # a refusal is not cached across sweeps: the next one asks again

    assert len(asked) == 2


@pytest.mark.parametrize("bound", [1, 2, 8])
async def test_regions_listed_at_once_stay_within_the_configured_bound(
    make_ingestor: IngestorFactory, fake_api: FakeApi, monkeypatch: pytest.MonkeyPatch, bound: int
) -> None:
    ingestor = make_ingestor(sweep_concurrency=bound)
    fake_api.records = [cloud_account(n, f"{n:012d}", THREE_REGIONS) for n in range(1, 5)]
    aws = aws_of(ingestor)
    in_flight, peak = 0, 0
    client = aws.client

    @contextlib.asynccontextmanager
    async def watched(service: str, region: str | None = None, role: Any = None) -> AsyncIterator[Any]:
        nonlocal in_flight, peak
        if service != "ec2":
            async with client(service, region, role) as plain:
                yield plain
            return
        async with client(service, region, role) as ec2:
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                yield ec2
            finally:
                in_flight -= 1

    monkeypatch.setattr(aws, "client", watched)

    result = await ingestor.sweep()

    assert (result.regions, result.failures) == (12, [])
    assert aws.calls["AssumeRole"] == 4
    # All twelve are ready to go at once, so the bound is reached, never passed.
    assert peak == min(bound, 12)
