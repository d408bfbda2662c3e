"""Fixtures for the api's HTTP tests: a running api on a clean database (moto for AWS)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from zc_common.settings import ApiSettings

from tests.api.factories import Api, Tenant, make_tenant, running_api, settings


@pytest.fixture
def api_settings(clean_database: str, moto_url: str) -> Callable[..., ApiSettings]:
    """Settings for an api on this test's clean database; keyword arguments override."""

    def build(**overrides: Any) -> ApiSettings:
        return settings(clean_database, moto_url, **overrides)

    return build


@pytest.fixture
async def api(api_settings: Callable[..., ApiSettings]) -> AsyncIterator[Api]:
    async with running_api(api_settings()) as started:
        yield started


@pytest.fixture
async def tenant(api: Api) -> Tenant:
    """An account (BigDB) with its admin and a developer."""
    return await make_tenant(api)


@pytest.fixture
async def other_tenant(api: Api) -> Tenant:
    """A second, unrelated account: nothing of it may ever show through the first."""
    return await make_tenant(api)
