"""The cloud accounts the reaper acts in, from the api, cached: one api call per batch at
most, and a fresh look before declining to act on a record that may be stale."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from zc_common.internal_api import CloudAccountRecord, InternalApi
from zc_common.messages import CloudAccountMode

# A record that forbids acting (missing, observe mode) is looked up again, but not more
# often than this: a batch with many such leases makes one api call, not one per lease.
RECHECK_SECONDS = 1.0


class CloudAccounts:
    def __init__(
        self, api: InternalApi, *, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.api = api
        self.ttl = ttl
        self.clock = clock
        self._records: dict[int, CloudAccountRecord] = {}
        self._loaded_at: float | None = None
        self._lock = asyncio.Lock()

    async def get(self, cloud_account_id: int) -> CloudAccountRecord | None:
        """The record, or None when the cloud account is not onboarded (any more). A
        cached answer that would stop the reaper from acting is checked with the api."""
        record = (await self._load(max_age=self.ttl)).get(cloud_account_id)
        if record is None or record.mode != CloudAccountMode.enforce:
            record = (await self._load(max_age=RECHECK_SECONDS)).get(cloud_account_id)
        return record

    async def _load(self, *, max_age: float) -> dict[int, CloudAccountRecord]:
        async with self._lock:
            if self._loaded_at is None or self.clock() - self._loaded_at >= max_age:
                records = await self.api.cloud_accounts()
                self._records = {record.id: record for record in records}
                self._loaded_at = self.clock()
            return self._records
