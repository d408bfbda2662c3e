"""Lease schedules in, warnings and expiries out: each timer once, at (never before) its
time, carrying the lease version; newer versions replace older ones' timers and older
versions, however late they arrive, change nothing."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import asyncpg
import pytest
from prometheus_client import REGISTRY

from zc_common.messages import LeaseChange, LeaseExpired, LeaseExpiringSoon

from tests.scheduler.conftest import Replicas
from tests.scheduler.factories import Observer, lease_changed, now, seconds_from_now
from tests.support.waiting import eventually
from zc_scheduler.timers import service

# How late a timer may arrive here: the firing loop's work plus the bus, on a busy machine.
PROMPT = timedelta(seconds=0.6)


async def test_warnings_then_expiry_fire_once_each_at_their_times(replicas: Replicas, observer: Observer) -> None:
    scheduler = await replicas.start()
    warnings = [seconds_from_now(1.0), seconds_from_now(1.6)]
    expire_at = seconds_from_now(2.2)
    # A neighbour due a moment before each: the loop is awake then, and must still leave
    # lease 7's timers alone until they are due.
    moment = timedelta(seconds=0.2)

    await replicas.publish(
        lease_changed(7, 3, expire_at=expire_at, warn_at=reversed(warnings)),
        lease_changed(8, 1, expire_at=expire_at - moment, warn_at=[at - moment for at in warnings]),
    )
    await observer.wait_for(6, timeout=10)
    await asyncio.sleep(1.0)  # anything fired twice would have come by now

    arrivals = [r for r in observer.lease_messages() if r.message.lease.lease_id == 7]  # type: ignore[attr-defined]
    assert [type(r.message) for r in arrivals] == [LeaseExpiringSoon, LeaseExpiringSoon, LeaseExpired]
    dues = [*warnings, expire_at]
    for received, due in zip(arrivals, dues):
        assert received.message.lease.version == 3  # type: ignore[attr-defined]
        assert due <= received.at < due + PROMPT, (received.message.type, received.at - due)
    assert [r.message.warning_at for r in arrivals[:2]] == warnings  # type: ignore[attr-defined]
    assert len(observer.lease_messages()) == 6
    assert (await scheduler.pending(limit=10)).count == 0


async def test_a_schedule_that_warns_now_fires_its_warning_at_once(replicas: Replicas, observer: Observer) -> None:
    # The api's answer to a warning that could not go out in time: a new version whose
    # schedule warns at the moment it was made, with the reap its lead later.
    await replicas.start()
    warned_at, expire_at = now(), seconds_from_now(30)

    await replicas.publish(
        lease_changed(5, 4, expire_at=expire_at, warn_at=[warned_at], change=LeaseChange.warning_deferred)
    )
    await observer.wait_for(1, LeaseExpiringSoon, timeout=10)

    [(warning, at)] = observer.of(LeaseExpiringSoon)
    assert (warning.lease.version, warning.warning_at) == (4, warned_at)
    assert at < warned_at + PROMPT + timedelta(seconds=1), "not held back for being due already"
    assert observer.of(LeaseExpired) == []


async def test_newer_version_cancels_the_older_versions_timers(replicas: Replicas, observer: Observer) -> None:
    scheduler = await replicas.start()
    await replicas.publish(lease_changed(1, 1, expire_at=seconds_from_now(1.2), warn_at=[seconds_from_now(0.8)]))
    await eventually(lambda: scheduler.counters["timers_stored"] == 2)

    renewed_until = seconds_from_now(1.8)
    await replicas.publish(lease_changed(1, 2, expire_at=renewed_until, change=LeaseChange.renewed))
    await observer.wait_for(1, LeaseExpired, timeout=10)
    await asyncio.sleep(1.0)

    [(expired, at)] = observer.of(LeaseExpired)
    assert expired.lease.version == 2
    assert at >= renewed_until
    assert observer.of(LeaseExpiringSoon) == []


async def test_older_version_arriving_after_a_newer_one_changes_nothing(
    replicas: Replicas, observer: Observer, scheduler_db: str
) -> None:
    scheduler = await replicas.start()
    newer = lease_changed(5, 2, expire_at=seconds_from_now(1.5))
    await replicas.publish(newer)
    await eventually(lambda: scheduler.counters["timers_stored"] == 1)

    # Re-ordered on the way: version 1, due sooner and with a warning, comes last; and
    # version 2 itself is delivered again.
    await replicas.publish(
        lease_changed(5, 1, expire_at=seconds_from_now(0.6), warn_at=[seconds_from_now(0.3)]), newer
    )
    await eventually(lambda: scheduler.counters["leases_stale"] >= 1)
    await observer.wait_for(1, LeaseExpired, timeout=10)
    await asyncio.sleep(0.8)

    [(expired, _)] = observer.of(LeaseExpired)
    assert expired.lease.version == 2
    assert observer.of(LeaseExpiringSoon) == []
    connection = await asyncpg.connect(scheduler_db)
    try:
        assert await connection.fetchval("SELECT version FROM scheduler_lease WHERE lease_id = 5") == 2
    finally:
        await connection.close()


async def test_in_one_batch_the_newest_version_wins_whatever_the_order(replicas: Replicas) -> None:
    scheduler = await replicas.start()
    far = seconds_from_now(3600)

    stored = await scheduler.schedule([
        lease_changed(9, 3, expire_at=far, warn_at=[far - timedelta(minutes=30)]),
        lease_changed(9, 1, expire_at=far - timedelta(minutes=1)),
        lease_changed(9, 2, expire_at=far - timedelta(minutes=2)),
    ])

    pending = await scheduler.pending(limit=10, lease_id=9)
    assert stored == 2
    assert {(t.kind.value, t.lease_version) for t in pending.data} == {("warning", 3), ("expiry", 3)}
    assert pending.data[-1].fire_at == far


async def test_expire_at_none_cancels_the_lease_timers(replicas: Replicas, observer: Observer) -> None:
    scheduler = await replicas.start()
    await replicas.publish(lease_changed(3, 1, expire_at=seconds_from_now(1.0), warn_at=[seconds_from_now(0.6)]))
    await eventually(lambda: scheduler.counters["timers_stored"] == 2)

    await replicas.publish(lease_changed(3, 2, expire_at=None, change=LeaseChange.released))
    await eventually(lambda: scheduler.counters["timers_cancelled"] == 2)
    await asyncio.sleep(1.5)

    assert observer.received == []
    assert (await scheduler.pending(limit=10)).count == 0


async def test_a_timer_due_now_fires_at_once_without_waiting_for_the_next_poll(
    replicas: Replicas, observer: Observer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown (expire_at = now) wakes the firing loop, which otherwise sleeps until
    the next timer or its longest pause (made 5 s here so a missing wake-up shows)."""
    monkeypatch.setattr(service, "MAX_PAUSE", 5.0)
    await replicas.start()
    lags = []
    for lease_id in range(1, 6):
        await asyncio.sleep(random.uniform(0.1, 0.5))
        asked = now()
        await replicas.publish(lease_changed(lease_id, 2, expire_at=asked, change=LeaseChange.shutdown_requested))
        await observer.wait_for(lease_id, LeaseExpired, timeout=10)
        lags.append((observer.of(LeaseExpired)[-1][1] - asked).total_seconds())

    assert max(lags) < 1.0, lags


async def test_a_timer_whose_message_cannot_be_read_is_dropped_and_holds_back_nothing(
    replicas: Replicas, observer: Observer, scheduler_db: str
) -> None:
    scheduler = await replicas.start()
    connection = await asyncpg.connect(scheduler_db)
    try:
        await connection.execute(
            "INSERT INTO scheduler_timer (kind, lease_id, lease_version, fire_at, payload) "
            "VALUES ('expiry', 1, 1, now(), '{\"type\": \"LeaseExpired\", \"lease\": {}}')"
        )
    finally:
        await connection.close()
    await scheduler.schedule([lease_changed(2, 1, expire_at=seconds_from_now(0.2))])

    await observer.wait_for(1, LeaseExpired, timeout=10)

    assert [message.lease.lease_id for message, _ in observer.of(LeaseExpired)] == [2]
    assert scheduler.counters["timers_undecodable"] == 1
    assert (await scheduler.pending(limit=10)).count == 0


async def test_each_fired_timer_is_observed_by_the_lag_histogram(replicas: Replicas, observer: Observer) -> None:
    def lag(suffix: str) -> float:
        return REGISTRY.get_sample_value(f"zc_scheduler_timer_lag_seconds_{suffix}", {"kind": "expiry"}) or 0.0

    await replicas.start()
    count, total = lag("count"), lag("sum")

    await replicas.publish(*(lease_changed(lease_id, expire_at=seconds_from_now(0.5)) for lease_id in (41, 42, 43)))
    await observer.wait_for(3, LeaseExpired, timeout=10)

    # Observed once the firing transaction commits, a moment after its messages are out.
    await eventually(lambda: lag("count") - count == 3)
    assert 0 <= lag("sum") - total < 3 * PROMPT.total_seconds()
