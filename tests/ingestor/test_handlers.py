"""The ingestor's bus queue, on both bus implementations: sweep requests run a sweep;
events posted to the api are followed like queue events, and unusable ones are
dead-lettered with the reason."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio

from zc_common.bus import Bus, topology
from zc_common.cloudevents import state_change_event
from zc_common.internal_api import SweepState
from zc_common.messages import CloudEventReceived, ResourceChange, SweepRequested

from tests.ingestor.conftest import IngestorFactory
from tests.ingestor.factories import CUSTOMER, NOT_ONBOARDED, REGION, CustomerAccount, FakeApi
from tests.support.waiting import eventually
from zc_ingestor import handlers
from zc_ingestor.service import Ingestor

pytestmark = pytest.mark.asyncio


class ApiQueue:
    """Stands in for the api's subscription: collects every ResourceChange."""

    def __init__(self, bus: Bus) -> None:
        self.changes: list[ResourceChange] = []
        bus.subscribe(topology.API, self.receive, batch_size=100)

    async def receive(self, messages: Sequence[Any]) -> None:
        self.changes.extend(messages)


@pytest.fixture
def ingestor_on_bus(make_ingestor: IngestorFactory, bus: Bus) -> Ingestor:
    """An ingestor publishing on the test's bus (in-process or RabbitMQ)."""
    return make_ingestor(on_bus=bus)


@pytest_asyncio.fixture
async def api_queue(ingestor_on_bus: Ingestor, bus: Bus) -> AsyncIterator[ApiQueue]:
    handlers.subscribe(bus, ingestor_on_bus)
    api_queue = ApiQueue(bus)
    await bus.start()
    yield api_queue


async def dead_letters(bus: Bus) -> list[str]:
    return [dead.reason for dead in await bus.dead_letters(topology.INGESTOR.name)]


def running(instance_id: str, account_id: str = CUSTOMER) -> dict[str, Any]:
    return state_change_event(account_id=account_id, region=REGION, instance_id=instance_id, state="running")


async def test_sweep_requested_runs_a_sweep(api_queue: ApiQueue, bus: Bus, customer: CustomerAccount) -> None:
    launched = await customer.launch(2)

    await bus.publish(SweepRequested(cloud_account_id=1, region=REGION))

    await eventually(lambda: len(api_queue.changes) == 2, timeout=30)
    assert sorted(c.instance_id for c in api_queue.changes) == sorted(launched)
    assert {c.event_name for c in api_queue.changes} == {"Sweep"}


async def test_sweep_requested_for_a_removed_account_is_dropped(
    api_queue: ApiQueue, bus: Bus, ingestor_on_bus: Ingestor
) -> None:
    await bus.publish(SweepRequested(cloud_account_id=99))
    await bus.publish(SweepRequested(cloud_account_id=1))

    await eventually(lambda: ingestor_on_bus.counters["sweeps"] == 1, timeout=30)
    assert await dead_letters(bus) == []


async def test_sweep_requested_with_a_sweep_id_is_reported_to_the_api(
    api_queue: ApiQueue, bus: Bus, customer: CustomerAccount, fake_api: FakeApi
) -> None:
    await customer.launch(2)

    await bus.publish(SweepRequested(cloud_account_id=1, region=REGION, sweep_id=5))

    await eventually(lambda: any(r.state is SweepState.done for _, r in fake_api.sweep_reports), timeout=30)
    assert [(i, r.state) for i, r in fake_api.sweep_reports] == [(5, SweepState.running), (5, SweepState.done)]
    assert fake_api.sweep_reports[-1][1].instances_seen == 2


async def test_event_posted_to_the_api_is_followed(
    api_queue: ApiQueue, bus: Bus, customer: CustomerAccount
) -> None:
    [instance_id] = await customer.launch()
    event = running(instance_id)

    await bus.publish(CloudEventReceived(event=event))

    await eventually(lambda: len(api_queue.changes) == 1, timeout=30)
    [change] = api_queue.changes
    assert change.instance_id == instance_id and change.instance is not None
    assert change.event_id == event["id"]


async def test_unusable_posted_event_is_dead_lettered_and_the_others_followed(
    api_queue: ApiQueue, bus: Bus, customer: CustomerAccount
) -> None:
    [instance_id] = await customer.launch()
    good = running(instance_id)
    unusable = good | {"detail-type": "EC2 Spot Instance Interruption Warning"}

    await bus.publish(CloudEventReceived(event=unusable), CloudEventReceived(event=good))

    await eventually(lambda: len(api_queue.changes) >= 1, timeout=30)
    await eventually(lambda: dead_letters(bus), timeout=30)
    [reason] = await dead_letters(bus)
    assert "detail-type 'EC2 Spot Instance Interruption Warning' is not one ZeroCloud reads" in reason
    assert {c.instance_id for c in api_queue.changes} == {instance_id}


async def test_posted_event_of_account_not_onboarded_is_dead_lettered(api_queue: ApiQueue, bus: Bus) -> None:
    await bus.publish(CloudEventReceived(event=running("i-0123456789abcdef0", account_id=NOT_ONBOARDED)))

    await eventually(lambda: dead_letters(bus), timeout=30)
    [reason] = await dead_letters(bus)
    assert reason.endswith(f"AWS account {NOT_ONBOARDED} is not onboarded")
    assert api_queue.changes == []
