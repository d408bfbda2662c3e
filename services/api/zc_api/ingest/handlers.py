"""Bus subscribers of the ingestion domain: ResourceChange batches into resources and
leases, acknowledged only after the commit."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.exc import DBAPIError

from zc_common.bus import Bus, DependencyDown, PermanentFailure, topology
from zc_common.errors import database_unreachable
from zc_common.messages import ResourceChange, utcnow

from zc_api.database import is_unstorable, transaction
from zc_api.ingest.service import IngestResult, apply_changes
from zc_api.runtime import ApiRuntime

log = logging.getLogger("zc.api.ingest")

# Deadlock and serialisation failures between concurrent batches are retried here, at
# once, rather than by the bus (which would split the batch and back off).
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
ATTEMPTS = 3


def subscribe(bus: Bus, runtime: ApiRuntime) -> None:
    """Subscribe the api's queue; call before ``bus.start()``."""

    async def handle(changes: Sequence[ResourceChange]) -> None:
        try:
            await ingest(runtime, changes)
        except Exception as error:
            if database_unreachable(error):
                # The changes wait on the queue for the database, however long it is away.
                raise DependencyDown(f"the database cannot be reached: {error}") from error
            raise

    bus.subscribe(topology.API, handle, batch_size=runtime.settings.ingest_batch_size, max_wait=0.05)


async def ingest(runtime: ApiRuntime, changes: Sequence[ResourceChange]) -> IngestResult:
    """Apply a batch in one transaction and return once it is committed (the bus acks
    after that); then let the outbox relay publish what it wrote."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with transaction(runtime.sessions) as session:
                result = await apply_changes(session, changes, now=utcnow())
            break
        except DBAPIError as error:
            if is_unstorable(error):
                # Never right on a retry: dead-lettered now, alone (the bus handles a failed
                # batch one message at a time), with the database's reason.
                raise PermanentFailure(f"a value in it cannot be stored: {error.orig}") from error
            sqlstate = getattr(error.orig, "sqlstate", None)
            if sqlstate not in RETRYABLE_SQLSTATES or attempt == ATTEMPTS:
                raise
            log.info("ingest batch of %d hit %s; retrying", len(changes), sqlstate)
            await asyncio.sleep(0.05 * attempt)
    if result.messages:
        runtime.wake_outbox()
    log.debug(
        "ingested %d changes: %d discovered, %d updated, %d stale, %d leases created, %d released",
        result.received, result.discovered, result.updated, result.stale,
        len(result.leases_created), len(result.leases_released),
    )
    return result
