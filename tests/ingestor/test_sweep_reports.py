"""A sweep an admin asked for is reported to the api by its sweep id: running, then done
with what it counted, or failed with the reason — and a report that cannot be made does
not undo the sweep."""

from __future__ import annotations

import pytest

from zc_common.internal_api import SweepState

from tests.ingestor.factories import (
    CUSTOMER,
    REGION,
    CustomerAccount,
    FakeApi,
    RecordingBus,
    aws_of,
    cloud_account,
)
from zc_ingestor.service import Ingestor

pytestmark = pytest.mark.asyncio


async def test_requested_sweep_reports_running_then_done_with_its_counts(
    ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount
) -> None:
    await customer.launch(3)
    fake_api.known[(1, REGION)] = ["i-0123456789abcdef0"]  # held by the api, no longer listed

    await ingestor.sweeper.requested(1, REGION, [7])

    states = [(sweep_id, report.state) for sweep_id, report in fake_api.sweep_reports]
    assert states == [(7, SweepState.running), (7, SweepState.done)]
    done = fake_api.sweep_reports[-1][1]
    assert (done.instances_seen, done.instances_gone, done.error) == (3, 1, None)


async def test_every_sweep_id_asking_for_the_same_target_is_reported(
    ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount, recording_bus: RecordingBus
) -> None:
    await customer.launch()

    await ingestor.sweeper.requested(1, REGION, [7, 8])

    assert [(i, r.state) for i, r in fake_api.sweep_reports if r.state is SweepState.done] == [
        (7, SweepState.done), (8, SweepState.done)
    ]
    assert len(recording_bus.changes) == 1, "swept once"


async def test_sweep_failing_part_way_reports_failed_and_declares_nothing_gone(
    ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount, recording_bus: RecordingBus
) -> None:
    await customer.launch(2)
    fake_api.known[(1, REGION)] = ["i-0123456789abcdef0"]
    fake_api.failing.add("instances")  # AWS listed, then the api could not say what it holds

    await ingestor.sweeper.requested(1, REGION, [7])

    [running, failed] = [report for _, report in fake_api.sweep_reports]
    assert running.state is SweepState.running
    assert failed.state is SweepState.failed
    assert failed.error is not None and REGION in failed.error and "500" in failed.error
    assert failed.instances_gone == 0
    assert not any(change.gone for change in recording_bus.changes), "fail closed: nothing gone"


async def test_sweep_refused_by_aws_reports_failed_with_the_reason(
    ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount
) -> None:
    await customer.launch()
    aws_of(ingestor).refused.add(f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud")

    await ingestor.sweeper.requested(1, REGION, [7])

    failed = fake_api.sweep_reports[-1][1]
    assert failed.state is SweepState.failed
    assert failed.error is not None and "AccessDenied" in failed.error


async def test_sweep_of_a_cloud_account_no_longer_in_force_reports_failed(
    ingestor: Ingestor, fake_api: FakeApi
) -> None:
    fake_api.records = [cloud_account(2)]

    assert await ingestor.sweeper.requested(1, REGION, [7]) is None

    failed = fake_api.sweep_reports[-1][1]
    assert failed.state is SweepState.failed
    assert failed.error is not None and "cloud account 1" in failed.error


async def test_timer_sweep_reports_nothing(ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount) -> None:
    await customer.launch()

    result = await ingestor.sweeper.requested(None, None)

    assert result is not None and result.instances == 1
    assert fake_api.sweep_reports == [] and fake_api.requests["sweep_report"] == 0


async def test_a_report_the_api_refuses_does_not_undo_the_sweep(
    ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount, recording_bus: RecordingBus
) -> None:
    await customer.launch(2)
    fake_api.failing.add("sweep_report")

    result = await ingestor.sweeper.requested(1, REGION, [7])

    assert result is not None and result.instances == 2
    assert len(recording_bus.changes) == 2
    assert fake_api.requests["sweep_report"] == 2  # running, done: both tried
    assert ingestor.counters["sweep_reports_failed"] == 2
