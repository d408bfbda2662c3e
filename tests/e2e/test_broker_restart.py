"""RabbitMQ restarts while events flow: nothing is lost and nothing is doubled."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from zc_common.cloudevents import state_change_event

from tests.e2e.conftest import CUSTOMER, REGION, Stack, eventually

pytestmark = [
    pytest.mark.skipif(shutil.which("rabbitmqctl") is None, reason="needs the local RabbitMQ's rabbitmqctl"),
    pytest.mark.serial,  # it stops the RabbitMQ every other test uses
]


def restart_rabbitmq() -> None:
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=60)
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "await_startup"], check=True, capture_output=True, timeout=120)


async def test_rabbitmq_restart_while_events_flow_leaves_every_instance_exactly_one_lease(stack: Stack) -> None:
    await stack.onboard()
    instances = await stack.run_instances(count=30, tags={"owner": "alice@bigdb.com"})
    events = [state_change_event(account_id=CUSTOMER, region=REGION, instance_id=i, state="running") for i in instances]
    async with stack.ingestor(visibility_timeout=5):
        await stack.send(*events[:10])
        restart = asyncio.create_task(asyncio.to_thread(restart_rabbitmq))
        for start in range(10, 30, 5):
            await stack.send(*events[start : start + 5])
            await asyncio.sleep(0.5)
        await restart
        await stack.send(*events[:3])  # and a few duplicates once it is back

        async def all_leased() -> list[dict[str, object]]:
            leases = await stack.leases()
            return leases if len({lease["instance_id"] for lease in leases}) == 30 else []

        leases = await eventually(all_leased, timeout=120, interval=1)
    assert sorted(lease["instance_id"] for lease in leases) == sorted(instances)
    assert len(leases) == 30, "exactly one lease per instance"
