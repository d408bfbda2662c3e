"""The cloud-account lookup: cached for the configured time, a not-onboarded answer only
briefly, one api call however many events ask at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from zc_common.internal_api import InternalApi

from tests.ingestor.factories import CUSTOMER, NOT_ONBOARDED, FakeApi
from zc_ingestor import accounts
from zc_ingestor.accounts import CloudAccountDirectory

pytestmark = pytest.mark.asyncio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def api(fake_api: FakeApi) -> AsyncIterator[InternalApi]:
    client = fake_api.client()
    yield client
    await client.close()


async def test_onboarded_account_is_cached_for_the_configured_time(
    fake_api: FakeApi, api: InternalApi
) -> None:
    clock = Clock()
    directory = CloudAccountDirectory(api, ttl=60, clock=clock)

    [record] = await directory.lookup(CUSTOMER)
    await directory.lookup(CUSTOMER)
    clock.now += 59
    await directory.lookup(CUSTOMER)
    assert fake_api.requests["cloudaccounts"] == 1

    clock.now += 2
    await directory.lookup(CUSTOMER)
    assert fake_api.requests["cloudaccounts"] == 2
    assert record.upstream_account_id == CUSTOMER


async def test_not_onboarded_is_remembered_only_briefly(fake_api: FakeApi, api: InternalApi) -> None:
    clock = Clock()
    directory = CloudAccountDirectory(api, ttl=60, negative_ttl=5, clock=clock)

    assert await directory.lookup(NOT_ONBOARDED) == []
    assert await directory.lookup(NOT_ONBOARDED) == []
    assert fake_api.requests["cloudaccounts"] == 1

    clock.now += 6
    await directory.lookup(NOT_ONBOARDED)
    assert fake_api.requests["cloudaccounts"] == 2


async def test_concurrent_lookups_ask_the_api_once(fake_api: FakeApi, api: InternalApi) -> None:
    directory = CloudAccountDirectory(api, ttl=60)

    answers = await asyncio.gather(*(directory.lookup(CUSTOMER) for _ in range(20)))

    assert fake_api.requests["cloudaccounts"] == 1
    assert all(len(answer) == 1 for answer in answers)


async def test_expired_answers_make_room_for_new_account_ids(
    fake_api: FakeApi, api: InternalApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(accounts, "MAX_ENTRIES", 3)
    clock = Clock()
    directory = CloudAccountDirectory(api, ttl=60, negative_ttl=5, clock=clock)
    for n in range(3):
        await directory.lookup(f"99999999999{n}")
    clock.now += 6

    await directory.lookup(CUSTOMER)

    assert len(directory._cache) == 1
