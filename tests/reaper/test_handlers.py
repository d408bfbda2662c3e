"""The reaper's bus queue, on both bus implementations: LeaseExpired in batches is
claimed and acted on once per batch; throttling past the retry loop goes back to the bus
and is done later, nothing dropped; a slow account holds back only its own batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from zc_common.bus import Bus, topology
from zc_common.bus.memory import InProcessBus
from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import LeaseStatus

from tests.reaper.conftest import ReaperFactory
from tests.reaper.factories import OTHER_CUSTOMER, CountingAwsAccess, CustomerAccount, FakeApi, cloud_account
from tests.support.waiting import eventually
from zc_reaper import handlers

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def reaping_bus(make_reaper: ReaperFactory, bus: Bus) -> AsyncIterator[Bus]:
    """The test's bus (in-process or RabbitMQ) with a reaper consuming from it."""
    handlers.subscribe(bus, make_reaper(batch_wait=0.5))
    await bus.start()
    yield bus


async def test_expired_leases_on_the_bus_are_reaped_in_one_batch(
    reaping_bus: Bus, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    launched = await customer.launch(4)
    [renewed_instance] = await customer.launch()
    leases = [fake_api.lease(i) for i in launched]
    renewed = fake_api.lease(renewed_instance)
    stale_timer = fake_api.expired(renewed)
    fake_api.renew(renewed)

    await reaping_bus.publish(*fake_api.expired(*leases), *stale_timer)
    await eventually(lambda: len(fake_api.reported) == 4)

    assert await customer.states(*launched, renewed_instance) == {
        **{i: "stopped" for i in launched}, renewed_instance: "running"
    }
    assert aws.calls["StopInstances"] == 1
    assert fake_api.requests["claim"] == 1
    assert {o.outcome for o in fake_api.reported} == {ReapOutcomeKind.stopped}
    assert renewed.status is LeaseStatus.active
    assert await reaping_bus.dead_letters(topology.REAPER.name) == []


async def test_throttling_past_the_retry_loop_is_retried_by_the_bus(
    make_reaper: ReaperFactory, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    bus = InProcessBus()
    handlers.subscribe(bus, make_reaper(aws_attempts=2, message_retry_delay=0.3))
    await bus.start()
    try:
        launched = await customer.launch(5)
        leases = [fake_api.lease(i) for i in launched]
        aws.throttle("StopInstances", 3)  # more than one batch's two tries

        await bus.publish(*fake_api.expired(*leases))
        await eventually(lambda: len(fake_api.reported) == 5)

        assert await customer.states(*launched) == {i: "stopped" for i in launched}
        assert sorted(o.lease_id for o in fake_api.reported) == sorted(lease.lease_id for lease in leases)
        assert await bus.dead_letters(topology.REAPER.name) == []
        # Two tries, the bus's retry, two more: the one-at-a-time pass after the failed
        # batch left the throttled account alone instead of one call per lease.
        assert aws.calls["StopInstances"] == 4
    finally:
        await bus.close()


async def test_a_slow_account_does_not_hold_back_another_accounts_leases(
    make_reaper: ReaperFactory, bus: Bus, fake_api: FakeApi, customer: CustomerAccount,
    other_customer: CustomerAccount, aws: CountingAwsAccess,
) -> None:
    fake_api.records[2] = cloud_account(id=2, upstream_account_id=OTHER_CUSTOMER)
    slow_role = fake_api.records[2].role_arn
    entered, release = asyncio.Event(), asyncio.Event()
    assume_role = aws.assume_role

    async def slow_assume_role(role: Any) -> Any:
        if role.role_arn == slow_role:
            entered.set()
            await release.wait()
        return await assume_role(role)

    aws.assume_role = slow_assume_role  # type: ignore[method-assign]
    handlers.subscribe(bus, make_reaper(batch_wait=0.05, batches_in_flight=2))
    await bus.start()
    slow_ids, fast_ids = await other_customer.launch(2), await customer.launch(2)
    slow = [fake_api.lease(i, cloud_account_id=2) for i in slow_ids]
    fast = [fake_api.lease(i) for i in fast_ids]

    await bus.publish(*fake_api.expired(*slow))
    await asyncio.wait_for(entered.wait(), timeout=10)
    await bus.publish(*fake_api.expired(*fast))

    await eventually(lambda: len(fake_api.reported) == 2)
    assert sorted(o.lease_id for o in fake_api.reported) == [lease.lease_id for lease in fast]
    assert await customer.states(*fast_ids) == {i: "stopped" for i in fast_ids}
    release.set()
    await eventually(lambda: len(fake_api.reported) == 4)
    assert await other_customer.states(*slow_ids) == {i: "stopped" for i in slow_ids}
