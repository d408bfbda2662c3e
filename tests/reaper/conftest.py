"""Fixtures for the reaper's tests: the customer's account in moto (the server comes from
tests/conftest.py), the fake api, counting AWS access, and a Reaper wired to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from zc_common.internal_api import InternalApi

from tests.reaper.factories import (
    OTHER_CUSTOMER,
    CountingAwsAccess,
    CustomerAccount,
    FakeApi,
    reaper_settings,
)
from zc_reaper.service import Reaper

ReaperFactory = Callable[..., Reaper]


@pytest.fixture
def customer(moto: str) -> CustomerAccount:
    return CustomerAccount(moto)


@pytest.fixture
def other_customer(moto: str) -> CustomerAccount:
    return CustomerAccount(moto, OTHER_CUSTOMER)


@pytest.fixture
def fake_api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def aws(moto: str) -> CountingAwsAccess:
    return CountingAwsAccess(endpoint_url=moto, session_name="zerocloud-reaper-test")


@pytest_asyncio.fixture
async def make_reaper(moto: str, fake_api: FakeApi, aws: CountingAwsAccess) -> AsyncIterator[ReaperFactory]:
    """Build a Reaper on the fake api and the counting AWS access, with settings
    overridden by keyword."""
    clients: list[InternalApi] = []

    def make(**overrides: Any) -> Reaper:
        api = fake_api.client()
        clients.append(api)
        return Reaper(reaper_settings(moto, **overrides), aws, api)

    yield make
    for api in clients:
        await api.close()


@pytest.fixture
def reaper(make_reaper: ReaperFactory) -> Reaper:
    return make_reaper()
