"""The scheduler as a plain object: stores lease schedules as timers and fires them.

Firing takes due timers with ``FOR UPDATE SKIP LOCKED`` inside a transaction, publishes
their messages, and commits the delete only once the bus confirmed them: a failed or
interrupted publish rolls back and the timers fire again (at least once; the messages
carry stable ids). Replicas skip each other's locked rows, so each timer fires once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

import asyncpg  # type: ignore[import-untyped]

from zc_common.bus import Bus
from zc_common.bus.base import SHUTDOWN_GRACE
from zc_common.messages import LeaseChanged, Message, UndecodableMessage, decode
from zc_common.metrics import KEPT_COUNTS, TIMER_LAG
from zc_common.settings import SchedulerSettings

from zc_scheduler.timers import repository
from zc_scheduler.timers.plan import (
    TimerKind,
    earliest,
    newest_per_lease,
    sweep_message,
    sweep_payload,
    timers_for,
)
from zc_scheduler.timers.schemas import PendingTimer, PendingTimers

log = logging.getLogger("zc.scheduler")

# The firing loop never sleeps longer: it notices timers stored by other replicas
# within this bound. Timers stored here wake it at once.
MAX_PAUSE = 1.0
# When due timers exist but another replica holds them all, look again this soon.
BUSY_PAUSE = 0.02
# Sleep a hair past the due time: a timer is fired when the database's now() reached it.
OVERSLEEP = 0.002
FIRST_SWEEP_DELAY = 5.0
MAX_RETRY_DELAY = 30.0
MAX_BATCHES_IN_FLIGHT = 4
STOP_GRACE = SHUTDOWN_GRACE


class Scheduler:
    def __init__(self, settings: SchedulerSettings, bus: Bus, pool: asyncpg.Pool) -> None:
        self.settings = settings
        self.bus = bus
        self.pool = pool
        # Named counts of what happened, for operators (/metrics) and tests.
        self.counters: Counter[str] = Counter()
        KEPT_COUNTS.track("scheduler", self.counters)
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._firing: asyncio.Task[None] | None = None
        self._failures = 0  # consecutive failed batches: the loop backs off

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Make sure the sweep job is pending (or gone, when sweeps are off), then fire
        timers until ``stop``."""
        await self.schedule_sweeps()
        self._stop.clear()
        self._firing = asyncio.create_task(self._fire_forever(), name="scheduler:firing")
        log.info(
            "scheduler started: firing up to %d timers per batch, sweep every %.0fs",
            self.settings.fire_batch_size, self.settings.sweep_interval,
        )

    async def stop(self, *, grace: bool = True) -> None:
        """Stop firing. With grace the batch in hand is finished (published and
        committed, or rolled back); without, the loop is cancelled where it stands, as
        when the process is killed: an uncommitted batch rolls back and fires later."""
        task, self._firing = self._firing, None
        if task is None:
            return
        self._stop.set()
        self._wake.set()
        if grace:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=STOP_GRACE)
            except TimeoutError:
                log.warning("firing loop did not stop within %.0fs; cancelling it", STOP_GRACE)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    @property
    def running(self) -> bool:
        return self._firing is not None and not self._firing.done()

    # --- lease schedules -------------------------------------------------------------

    async def schedule(self, changes: Sequence[LeaseChanged]) -> int:
        """Store a batch of lease schedules in one transaction; return the number of
        timers stored. Per lease only the newest version counts, and only if it is newer
        than any seen before: then that lease's timers are replaced by the message's
        (none when ``expire_at`` is None). An older version changes nothing."""
        newest = newest_per_lease(changes)
        if not newest:
            return 0
        async with self.pool.acquire() as connection, connection.transaction():
            advanced = await repository.advance_leases(
                connection, [(change.lease.lease_id, change.lease.version) for change in newest]
            )
            timers = [timer for change in newest if change.lease.lease_id in advanced for timer in timers_for(change)]
            if advanced:
                cancelled = await repository.cancel_timers(connection, sorted(advanced))
                await repository.insert_timers(connection, timers)
            else:
                cancelled = 0
        self.counters["leases_advanced"] += len(advanced)
        self.counters["leases_stale"] += len(newest) - len(advanced)
        self.counters["timers_cancelled"] += cancelled
        self.counters["timers_stored"] += len(timers)
        self._wake_for(earliest(timers))
        return len(timers)

    def _wake_for(self, fire_at: datetime | None) -> None:
        # The loop sleeps at most MAX_PAUSE: only a timer due sooner needs to wake it.
        if fire_at is not None and fire_at <= datetime.now(timezone.utc) + timedelta(seconds=MAX_PAUSE):
            self._wake.set()

    # --- sweep jobs ------------------------------------------------------------------

    async def schedule_sweeps(self) -> None:
        """One pending sweep timer shared by every replica; none when sweeps are off."""
        interval = self.settings.sweep_interval
        if interval <= 0:
            await repository.drop_sweep(self.pool)
            return
        await repository.ensure_sweep(
            self.pool, first_in=min(FIRST_SWEEP_DELAY, interval), interval=interval, payload=sweep_payload()
        )
        self._wake.set()

    # --- firing ----------------------------------------------------------------------

    async def fire_due(self, *, taken: Callable[[int], None] | None = None) -> int:
        """Fire one batch of due timers, oldest first; return how many. Raises when the
        bus does not confirm: the transaction rolls back and the timers stay. ``taken``
        hears how many were taken as soon as they are (before the publish)."""
        async with self.pool.acquire() as connection, connection.transaction():
            due = await repository.take_due(connection, self.settings.fire_batch_size)
            took = time.monotonic()
            if taken is not None:
                taken(len(due))
            if not due:
                return 0
            messages: list[Message] = []
            for timer in due:
                if timer.kind is TimerKind.sweep:
                    messages.append(sweep_message(timer.fire_at))
                    if self.settings.sweep_interval > 0:
                        await repository.store_next_sweep(
                            connection, self._next_sweep_at(timer.fire_at, timer.taken_at), sweep_payload()
                        )
                    continue
                try:
                    messages.append(decode(timer.payload.encode(), None))
                except UndecodableMessage as error:
                    # Never blocks the timers behind it; said loudly, with what it was.
                    log.error(
                        "timer %d (%s, lease %s v%s) dropped: its message cannot be read: %s; payload %s",
                        timer.id, timer.kind.value, timer.lease_id, timer.lease_version, error, timer.payload,
                    )
                    self.counters["timers_undecodable"] += 1
            publishing = time.monotonic()
            if messages:
                await self.bus.publish(*messages)
            confirmed = time.monotonic()
        self.counters.update(f"fired_{timer.kind.value}" for timer in due)
        # Lag on the database's clock up to the take (the clock fire_at is compared with),
        # plus this process's time from the take to the commit.
        since_take = time.monotonic() - took
        for timer in due:
            TIMER_LAG.labels(timer.kind.value).observe(
                max(0.0, (timer.taken_at - timer.fire_at).total_seconds()) + since_take
            )
        log.debug(
            "fired %d timers: the oldest taken %.3fs after its time, confirmed in %.3fs, committed in %.3fs",
            len(due), (due[0].taken_at - due[0].fire_at).total_seconds(), confirmed - publishing,
            time.monotonic() - confirmed,
        )
        return len(due)

    def _next_sweep_at(self, fired_at: datetime, now: datetime) -> datetime:
        """On the interval's beat; after downtime, one interval from now (never a burst)."""
        interval = timedelta(seconds=self.settings.sweep_interval)
        following = fired_at + interval
        return following if following > now else now + interval

    async def _fire_forever(self) -> None:
        """Take due timers batch after batch. A batch waits for the broker's confirms
        before it commits; meanwhile the next due timers are taken by another batch (up to
        MAX_BATCHES_IN_FLIGHT), so one slow confirm does not hold back what falls due."""
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while not self._stop.is_set():
                self._wake.clear()
                if self._failures:
                    await self._pause(self._stop, min(MAX_RETRY_DELAY, 0.5 * 2 ** (self._failures - 1)))
                    if self._stop.is_set():
                        break
                if len(in_flight) >= MAX_BATCHES_IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                taken: asyncio.Future[int] = asyncio.get_running_loop().create_future()
                batch = asyncio.create_task(self._fire_batch(taken), name="scheduler:batch")
                in_flight.add(batch)
                batch.add_done_callback(in_flight.discard)
                count = await taken
                if count < 0 or count >= self.settings.fire_batch_size:
                    continue  # failed (backs off above), or more may be due right now
                await self._pause(self._wake, await self._pause_before_next(count))
        except asyncio.CancelledError:
            for batch in in_flight:
                batch.cancel()
            raise
        finally:
            # Graceful: the batches in hand are published and committed (or rolled back).
            if in_flight:
                await asyncio.wait(in_flight)

    async def _fire_batch(self, taken: asyncio.Future[int]) -> None:
        def heard(count: int) -> None:
            if not taken.done():
                taken.set_result(count)

        try:
            await self.fire_due(taken=heard)
            self._failures = 0
        except Exception as error:  # noqa: BLE001 - the loop must outlive a broken bus or database
            self._failures += 1
            log.warning(
                "firing failed (%s: %s); the timers stay and are tried again", type(error).__name__, error
            )
        finally:
            heard(-1)  # failed before taking anything (or cancelled): the loop must not hang

    async def _pause_before_next(self, fired: int) -> float:
        """Until the next pending timer is due, at most MAX_PAUSE; 0 to go on at once."""
        try:
            until = await repository.seconds_to_next(self.pool)
        except Exception as error:  # noqa: BLE001
            log.warning("cannot see the next timer (%s: %s)", type(error).__name__, error)
            return MAX_PAUSE
        if until is None:
            return MAX_PAUSE
        if until > 0:
            return min(MAX_PAUSE, until + OVERSLEEP)
        # Due already: became due meanwhile (go on), or held by batches in flight here or
        # in another replica (look again shortly).
        return 0.0 if fired else BUSY_PAUSE

    @staticmethod
    async def _pause(event: asyncio.Event, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(event.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # --- operators -------------------------------------------------------------------

    async def pending(self, *, limit: int, lease_id: int | None = None) -> PendingTimers:
        async with self.pool.acquire() as connection:
            rows, count = await repository.pending(connection, limit=limit, lease_id=lease_id)
        return PendingTimers(data=[PendingTimer(**dict(row)) for row in rows], count=count, limit=limit)

    async def database_answers(self) -> bool:
        return bool(await self.pool.fetchval("SELECT 1") == 1)
