"""SQL over the scheduler's tables: set-based statements, each one round trip,
on a connection the caller holds inside its transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg  # type: ignore[import-untyped]

from zc_scheduler.timers.plan import Timer, TimerKind

# Newer versions win: an insert for a lease never seen, an update only when the incoming
# version is higher. Rows come in lease-id order, the lock order of every replica.
_ADVANCE_LEASES = """
INSERT INTO scheduler_lease AS known (lease_id, version)
SELECT lease_id, version
FROM unnest($1::bigint[], $2::integer[]) AS incoming(lease_id, version)
ORDER BY lease_id
ON CONFLICT (lease_id) DO UPDATE SET version = excluded.version, updated_at = now()
WHERE excluded.version > known.version
RETURNING lease_id
"""

_CANCEL_TIMERS = "DELETE FROM scheduler_timer WHERE lease_id = ANY($1::bigint[])"

_INSERT_TIMERS = """
INSERT INTO scheduler_timer (kind, lease_id, lease_version, fire_at, payload)
SELECT kind, lease_id, lease_version, fire_at, payload::jsonb
FROM unnest($1::text[], $2::bigint[], $3::integer[], $4::timestamptz[], $5::text[])
    AS timer(kind, lease_id, lease_version, fire_at, payload)
"""

# Due timers, oldest first, that no other replica holds; deleted here and gone for good
# once the caller commits (after the bus confirmed their messages).
_TAKE_DUE = """
DELETE FROM scheduler_timer
WHERE id IN (
    SELECT id FROM scheduler_timer
    WHERE fire_at <= now()
    ORDER BY fire_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
RETURNING id, kind, lease_id, lease_version, fire_at, payload, now() AS taken_at
"""

_SECONDS_TO_NEXT = "SELECT extract(epoch FROM min(fire_at) - clock_timestamp())::float8 FROM scheduler_timer"

# The first sweep comes soon after the first start; a later start (a restart, another
# replica) only brings a pending sweep forward when the interval got shorter.
_ENSURE_SWEEP = """
INSERT INTO scheduler_timer AS pending (kind, fire_at, payload)
VALUES ('sweep', now() + make_interval(secs => $1), $3::jsonb)
ON CONFLICT (kind) WHERE kind = 'sweep'
DO UPDATE SET fire_at = least(pending.fire_at, now() + make_interval(secs => $2))
"""

_STORE_NEXT_SWEEP = """
INSERT INTO scheduler_timer (kind, fire_at, payload) VALUES ('sweep', $1, $2::jsonb)
ON CONFLICT (kind) WHERE kind = 'sweep' DO NOTHING
"""

_DROP_SWEEP = "DELETE FROM scheduler_timer WHERE kind = 'sweep'"

_PENDING = """
SELECT id, kind, lease_id, lease_version, fire_at FROM scheduler_timer
WHERE $2::bigint IS NULL OR lease_id = $2
ORDER BY fire_at, id
LIMIT $1
"""

_COUNT_PENDING = "SELECT count(*) FROM scheduler_timer WHERE $1::bigint IS NULL OR lease_id = $1"


@dataclass(frozen=True)
class DueTimer:
    id: int
    kind: TimerKind
    lease_id: int | None
    lease_version: int | None
    fire_at: datetime
    payload: str
    taken_at: datetime


async def advance_leases(connection: asyncpg.Connection, versions: Sequence[tuple[int, int]]) -> set[int]:
    """Record each (lease id, version) that is newer than what is known; return those
    lease ids. Callers pass lease ids once each, in ascending order."""
    if not versions:
        return set()
    rows = await connection.fetch(
        _ADVANCE_LEASES, [lease_id for lease_id, _ in versions], [version for _, version in versions]
    )
    return {int(row["lease_id"]) for row in rows}


async def cancel_timers(connection: asyncpg.Connection, lease_ids: Sequence[int]) -> int:
    status = await connection.execute(_CANCEL_TIMERS, list(lease_ids))
    return int(str(status).rsplit(" ", 1)[-1])


async def insert_timers(connection: asyncpg.Connection, timers: Sequence[Timer]) -> None:
    if not timers:
        return
    await connection.execute(
        _INSERT_TIMERS,
        [timer.kind.value for timer in timers],
        [timer.lease_id for timer in timers],
        [timer.lease_version for timer in timers],
        [timer.fire_at for timer in timers],
        [timer.payload for timer in timers],
    )


async def take_due(connection: asyncpg.Connection, limit: int) -> list[DueTimer]:
    """Delete up to ``limit`` due timers and return them oldest first."""
    rows = await connection.fetch(_TAKE_DUE, limit)
    taken = [
        DueTimer(
            id=row["id"], kind=TimerKind(row["kind"]), lease_id=row["lease_id"],
            lease_version=row["lease_version"], fire_at=row["fire_at"], payload=row["payload"],
            taken_at=row["taken_at"],
        )
        for row in rows
    ]
    # RETURNING has no order of its own.
    taken.sort(key=lambda timer: (timer.fire_at, timer.id))
    return taken


async def seconds_to_next(connection: asyncpg.Connection | asyncpg.Pool) -> float | None:
    """Seconds until the earliest pending timer (negative when overdue); None if none."""
    value = await connection.fetchval(_SECONDS_TO_NEXT)
    return None if value is None else float(value)


async def ensure_sweep(
    connection: asyncpg.Connection | asyncpg.Pool, *, first_in: float, interval: float, payload: str
) -> None:
    await connection.execute(_ENSURE_SWEEP, first_in, interval, payload)


async def store_next_sweep(connection: asyncpg.Connection, fire_at: datetime, payload: str) -> None:
    await connection.execute(_STORE_NEXT_SWEEP, fire_at, payload)


async def drop_sweep(connection: asyncpg.Connection | asyncpg.Pool) -> None:
    await connection.execute(_DROP_SWEEP)


async def pending(
    connection: asyncpg.Connection, *, limit: int, lease_id: int | None = None
) -> tuple[list[asyncpg.Record], int]:
    """Pending timers soonest first, and how many there are."""
    rows = await connection.fetch(_PENDING, limit, lease_id)
    count = await connection.fetchval(_COUNT_PENDING, lease_id)
    return list(rows), int(count)
