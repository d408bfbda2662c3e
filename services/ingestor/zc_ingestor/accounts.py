"""Which onboarded cloud accounts an upstream AWS account id belongs to, cached so a burst
of events does not become a burst of api calls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from zc_common.internal_api import CloudAccountRecord, InternalApi

# A not-onboarded answer is kept only briefly: an account onboarded a moment ago should
# start being watched within seconds, not after the full cache lifetime.
NEGATIVE_SECONDS = 5.0
# Past this many cached account ids, expired answers are dropped before adding one, so
# events naming ever new account ids cannot grow the cache without bound.
MAX_ENTRIES = 10_000


class CloudAccountDirectory:
    """Onboarded cloud accounts by upstream account id, through the api, with a TTL cache."""

    def __init__(
        self,
        api: InternalApi,
        *,
        ttl: float,
        negative_ttl: float = NEGATIVE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.ttl = ttl
        self.negative_ttl = min(ttl, negative_ttl)
        self.clock = clock
        self._cache: dict[str, tuple[float, list[CloudAccountRecord]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def lookup(self, upstream_account_id: str) -> list[CloudAccountRecord]:
        """The cloud accounts of this AWS account id; empty when it is not onboarded.
        Raises the api's error when the api cannot answer (the caller retries later)."""
        cached = self._fresh(upstream_account_id)
        if cached is not None:
            return cached
        # One api call per account id however many events ask at once.
        async with self._locks.setdefault(upstream_account_id, asyncio.Lock()):
            cached = self._fresh(upstream_account_id)
            if cached is not None:
                return cached
            records = await self.api.cloud_accounts(upstream_account_id=upstream_account_id)
            lifetime = self.ttl if records else self.negative_ttl
            if len(self._cache) >= MAX_ENTRIES:
                self._drop_expired()
            self._cache[upstream_account_id] = (self.clock() + lifetime, records)
            return records

    def forget(self, upstream_account_id: str) -> None:
        """Ask the api again next time (what is cached may predate a verify)."""
        self._cache.pop(upstream_account_id, None)

    def _drop_expired(self) -> None:
        now = self.clock()
        for upstream_account_id, (expires_at, _) in list(self._cache.items()):
            if expires_at <= now:
                del self._cache[upstream_account_id]
                lock = self._locks.get(upstream_account_id)
                if lock is not None and not lock.locked():
                    del self._locks[upstream_account_id]

    def _fresh(self, upstream_account_id: str) -> list[CloudAccountRecord] | None:
        entry = self._cache.get(upstream_account_id)
        if entry is None or entry[0] <= self.clock():
            return None
        return entry[1]
