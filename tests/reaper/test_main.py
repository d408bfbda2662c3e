"""The process: the app's lifespan wires a working reaper with health routes; /readyz
checks the bus, the api and AWS."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from zc_common.bus.memory import InProcessBus

from tests.reaper.factories import CustomerAccount, FakeApi, reaper_settings
from tests.support.ports import free_port
from tests.support.waiting import eventually
from zc_cli.local_server import serving
from zc_reaper.main import create_app

pytestmark = pytest.mark.asyncio


def probe(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reaper")


@pytest_asyncio.fixture
async def served_api(fake_api: FakeApi) -> AsyncIterator[str]:
    """The fake api over real HTTP, for the app's own api client."""
    async with serving(fake_api.app) as url:
        yield url


async def test_app_is_ready_when_bus_api_and_aws_answer(moto: str, served_api: str) -> None:
    app = create_app(reaper_settings(moto, api_url=served_api))

    async with app.router.lifespan_context(app), probe(app) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"bus": True, "api": True, "aws": True}


async def test_app_is_not_ready_when_aws_does_not_answer(moto: str, served_api: str) -> None:
    app = create_app(reaper_settings(moto, api_url=served_api, aws_endpoint_url=f"http://127.0.0.1:{free_port()}"))

    async with app.router.lifespan_context(app), probe(app) as http:
        ready = await http.get("/readyz")

    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"bus": True, "api": True, "aws": False}}


async def test_app_is_not_ready_without_the_api(moto: str) -> None:
    app = create_app(reaper_settings(moto, api_url=f"http://127.0.0.1:{free_port()}"))

    async with app.router.lifespan_context(app), probe(app) as http:
        ready = await http.get("/readyz")

    assert ready.status_code == 503
    assert ready.json()["checks"] == {"bus": True, "api": False, "aws": True}


async def test_app_reaps_from_a_shared_bus(
    moto: str, served_api: str, fake_api: FakeApi, customer: CustomerAccount
) -> None:
    bus = InProcessBus()
    app = create_app(reaper_settings(moto, api_url=served_api), bus=bus)
    [instance_id] = await customer.launch()
    lease = fake_api.lease(instance_id)

    try:
        async with app.router.lifespan_context(app):
            await bus.publish(*fake_api.expired(lease))
            await eventually(lambda: len(fake_api.reported) == 1)
    finally:
        await bus.close()

    assert await customer.states(instance_id) == {instance_id: "stopped"}
