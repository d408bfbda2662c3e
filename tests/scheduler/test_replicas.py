"""Several replicas and crashes: each timer fires exactly once, overdue timers fire at
once in expiry order after a restart, and sweep jobs come from one replica at a time."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

from zc_common.bus import Bus
from zc_common.messages import LeaseExpired, Message, SweepRequested

from tests.scheduler.conftest import Replicas
from tests.scheduler.factories import Observer, lease_changed, now, seconds_from_now, settings
from tests.support.waiting import eventually
from zc_scheduler.main import wired


async def test_two_replicas_fire_each_of_2000_timers_exactly_once(replicas: Replicas, observer: Observer) -> None:
    first = await replicas.start()
    second = await replicas.start()
    start = seconds_from_now(3.0)
    due = {lease_id: start + timedelta(milliseconds=lease_id) for lease_id in range(1, 2001)}  # within 2 s

    await replicas.publish(*(lease_changed(lease_id, 1, expire_at=at) for lease_id, at in due.items()))
    await eventually(lambda: first.counters["timers_stored"] + second.counters["timers_stored"] == 2000)
    await observer.wait_for(2000, LeaseExpired, timeout=30)
    await asyncio.sleep(1.5)  # a timer fired twice would have arrived by now

    fired = observer.of(LeaseExpired)
    assert sorted(message.lease.lease_id for message, _ in fired) == sorted(due)  # none missing, none twice
    assert len({message.message_id for message, _ in fired}) == 2000
    assert all(at >= due[message.lease.lease_id] for message, at in fired)
    assert first.counters["fired_expiry"] + second.counters["fired_expiry"] == 2000
    assert first.counters["fired_expiry"] > 0 and second.counters["fired_expiry"] > 0  # both took part


async def test_killed_scheduler_leaves_its_due_timers_to_the_next_which_fires_them_at_once_oldest_first(
    replicas: Replicas, observer: Observer
) -> None:
    killed = await replicas.start()
    # Far enough ahead that storing 300 timers on a loaded machine ends before any is due:
    # the kill must come first for this test to mean anything (asserted below).
    start = seconds_from_now(5.0)
    lease_ids = list(range(1, 301))
    random.shuffle(lease_ids)  # expiry order is not lease or arrival order
    due = {lease_id: start + timedelta(milliseconds=index) for index, lease_id in enumerate(lease_ids)}
    await replicas.publish(*(lease_changed(lease_id, 4, expire_at=due[lease_id]) for lease_id in sorted(due)))
    await eventually(lambda: killed.counters["timers_stored"] == 300)

    await replicas.kill(killed)
    assert now() < start, "the scheduler was killed only after its timers were due: the machine is too slow"
    await asyncio.sleep((max(due.values()) - now()).total_seconds() + 0.5)  # all overdue now
    assert observer.received == []
    restarted_at = now()
    await replicas.start()
    await observer.wait_for(300, LeaseExpired, timeout=10)
    await asyncio.sleep(1.0)

    fired = observer.of(LeaseExpired)
    assert [message.lease.lease_id for message, _ in fired] == lease_ids  # each once, in expiry order
    assert all(message.lease.version == 4 for message, _ in fired)
    assert max(at for _, at in fired) - restarted_at < timedelta(seconds=3)  # at once, not on a schedule


class HangingBus(Bus):
    """A bus whose broker never confirms: publish blocks forever."""

    def __init__(self) -> None:
        super().__init__()
        self.publishing = asyncio.Event()

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def publish(self, *messages: Message) -> None:
        self.publishing.set()
        await asyncio.Event().wait()

    async def dead_letters(self, queue: str, limit: int = 100) -> list[Any]:
        return []


async def test_scheduler_killed_before_the_bus_confirmed_leaves_the_timers_to_fire_once(
    replicas: Replicas, observer: Observer, scheduler_db: str
) -> None:
    hanging = HangingBus()
    async with wired(settings(scheduler_db), bus=hanging) as stuck:
        start = seconds_from_now(0.3)
        await stuck.schedule([
            lease_changed(lease_id, 1, expire_at=start + timedelta(milliseconds=lease_id)) for lease_id in range(1, 51)
        ])
        await asyncio.wait_for(hanging.publishing.wait(), timeout=5)  # the batch is taken, unconfirmed
        await replicas.kill(stuck)

    await replicas.start()
    await observer.wait_for(50, LeaseExpired, timeout=10)
    await asyncio.sleep(1.0)

    assert [message.lease.lease_id for message, _ in observer.of(LeaseExpired)] == list(range(1, 51))


class FailingBus(Bus):
    """Refuses the first ``failures`` publishes (the broker is away), then passes them on."""

    def __init__(self, inner: Bus, failures: int) -> None:
        super().__init__()
        self.inner = inner
        self.failures = failures
        self.subscriptions = inner.subscriptions

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        pass

    async def publish(self, *messages: Message) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("2 messages not confirmed by RabbitMQ")
        await self.inner.publish(*messages)

    async def dead_letters(self, queue: str, limit: int = 100) -> list[Any]:
        return await self.inner.dead_letters(queue, limit)


async def test_timers_whose_publish_failed_fire_again_once(
    replicas: Replicas, observer: Observer, scheduler_db: str
) -> None:
    failing = FailingBus(replicas.publisher, failures=2)
    async with wired(settings(scheduler_db), bus=failing) as scheduler:
        await scheduler.schedule([lease_changed(lease_id, 1, expire_at=seconds_from_now(0.2)) for lease_id in (1, 2)])
        await observer.wait_for(2, LeaseExpired, timeout=10)
        await asyncio.sleep(1.0)

    assert failing.failures == 0
    assert sorted(message.lease.lease_id for message, _ in observer.of(LeaseExpired)) == [1, 2]


async def test_sweep_jobs_come_on_the_interval_from_exactly_one_of_two_replicas(
    replicas: Replicas, observer: Observer
) -> None:
    first = await replicas.start(sweep_interval=0.5)
    second = await replicas.start(sweep_interval=0.5)

    await asyncio.sleep(3.3)
    await first.stop()
    await second.stop()
    fired = first.counters["fired_sweep"] + second.counters["fired_sweep"]
    await eventually(lambda: len(observer.of(SweepRequested)) >= fired)

    sweeps = sorted((message for message, _ in observer.of(SweepRequested)), key=lambda m: m.occurred_at)
    assert 4 <= len(sweeps) == fired <= 7, (len(sweeps), fired)  # every 0.5 s; a sweep per replica: ~12
    gaps = [(later.occurred_at - earlier.occurred_at).total_seconds() for earlier, later in zip(sweeps, sweeps[1:])]
    assert all(abs(gap - 0.5) < 0.01 for gap in gaps), gaps  # on the beat, none twice
    assert len({message.message_id for message in sweeps}) == len(sweeps)
    pending = await first.pending(limit=10)
    assert [timer.kind.value for timer in pending.data] == ["sweep"]


async def test_sweeps_turned_off_remove_the_pending_sweep_job(replicas: Replicas, observer: Observer) -> None:
    first = await replicas.start(sweep_interval=600)
    assert [timer.kind.value for timer in (await first.pending(limit=10)).data] == ["sweep"]
    await first.stop()

    second = await replicas.start(sweep_interval=0)
    await asyncio.sleep(0.5)

    assert (await second.pending(limit=10)).count == 0
    assert observer.of(SweepRequested) == []
