"""The outbox relay: publishes committed outbox rows with confirms and marks them sent
(invariant 4). Safe with several api replicas: each takes rows no other one holds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from zc_common.bus import Bus
from zc_common.messages import Message, utcnow

from zc_api import bulk
from zc_api.database import transaction
from zc_api.models import OutboxMessage
from zc_api.runtime import ApiRuntime

log = logging.getLogger("zc.api.outbox")

BATCH = 500
POLL_SECONDS = 1.0
KEEP_PUBLISHED = timedelta(days=1)
PRUNE_EVERY_SECONDS = 600.0
PRUNE_CHUNK = 10_000

_OUTBOX = bulk.table(OutboxMessage)
_TAKE = (
    sa.select(_OUTBOX.c.id, _OUTBOX.c.message_id, _OUTBOX.c.type, _OUTBOX.c.body)
    .where(_OUTBOX.c.published_at.is_(None))  # the partial index of unpublished rows
    .order_by(_OUTBOX.c.id)
    .limit(sa.bindparam("limit", type_=sa.Integer))
    .with_for_update(skip_locked=True)
)
_MARK = (
    sa.update(_OUTBOX)
    .values(published_at=sa.func.now())
    .where(_OUTBOX.c.id == sa.any_(bulk.array("ids", _OUTBOX.c.id)))
)
# Published rows are roughly in id order, so walking the primary key finds the old ones
# first and the LIMIT keeps one prune cheap however far behind it is.
_PRUNE = sa.delete(_OUTBOX).where(
    _OUTBOX.c.id.in_(
        sa.select(_OUTBOX.c.id)
        .where(_OUTBOX.c.published_at < sa.bindparam("cutoff", type_=_OUTBOX.c.published_at.type))
        .order_by(_OUTBOX.c.id)
        .limit(sa.bindparam("limit", type_=sa.Integer))
    )
)


class CommittedMessage(Message):
    """An outbox row on its way out: the body goes on the wire exactly as it was
    committed, without being decoded and encoded again (consumers validate it)."""

    body: str

    def encode(self) -> bytes:
        return self.body.encode()


async def publish_pending(sessions: async_sessionmaker[AsyncSession], bus: Bus, *, limit: int = BATCH) -> int:
    """Publish up to ``limit`` unpublished rows, oldest first, and mark them, in one
    transaction: if the bus refuses, the rows stay unpublished. Returns the rows taken."""
    async with transaction(sessions) as session:
        rows = (await session.execute(_TAKE, {"limit": limit})).all()
        if not rows:
            return 0
        await bus.publish(
            *(CommittedMessage.model_construct(message_id=row.message_id, type=row.type, body=row.body) for row in rows)
        )
        await session.execute(_MARK, {"ids": [row.id for row in rows]})
    return len(rows)


async def prune(sessions: async_sessionmaker[AsyncSession], *, keep: timedelta = KEEP_PUBLISHED) -> int:
    """Delete (a chunk of) the rows published longer ago than ``keep``."""
    async with transaction(sessions) as session:
        result = await session.execute(_PRUNE, {"cutoff": utcnow() - keep, "limit": PRUNE_CHUNK})
    return int(getattr(result, "rowcount", 0) or 0)


async def run_relay(runtime: ApiRuntime, *, poll_seconds: float = POLL_SECONDS) -> None:
    """Publish outbox rows until cancelled: at once when this replica committed some
    (``runtime.wake_outbox``), and every ``poll_seconds`` for those of other replicas."""
    loop = asyncio.get_running_loop()
    failures = 0
    next_prune = loop.time() + PRUNE_EVERY_SECONDS
    while True:
        # Cleared before draining: a commit during the drain sets it again and we go round.
        runtime.outbox_wakeup.clear()
        try:
            while await publish_pending(runtime.sessions, runtime.bus) == BATCH:
                pass
            failures = 0
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the database or the bus is down: wait, retry
            failures += 1
            delay = min(30.0, 0.5 * 2 ** (failures - 1))
            log.warning("outbox relay failed (%s: %s); retrying in %.1fs", type(error).__name__, error, delay)
            await asyncio.sleep(delay)
            continue
        if loop.time() >= next_prune:
            next_prune = loop.time() + PRUNE_EVERY_SECONDS
            try:
                pruned = await prune(runtime.sessions)
                if pruned:
                    log.info("pruned %d published outbox rows", pruned)
            except Exception as error:  # noqa: BLE001 - pruning is housekeeping; try next time
                log.warning("outbox prune failed: %s", error)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # races a wake-up, and the api's shutdown would then wait for the relay forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(poll_seconds):
                await runtime.outbox_wakeup.wait()
