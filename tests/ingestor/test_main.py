"""The process: the app's lifespan wires a working ingestor with health routes, and
run_poller (behind `zerocloud-cli poll_cloudevent_queue`) follows the queue."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from zc_common.cloudevents import state_change_event

from tests.ingestor.factories import (
    CUSTOMER,
    REGION,
    CustomerAccount,
    EventQueues,
    FakeApi,
)
from tests.ingestor.factories import ingestor_settings as settings_for
from tests.support.ports import free_port
from zc_cli.local_server import serving
from zc_ingestor.main import create_app, run_poller

pytestmark = pytest.mark.asyncio


@pytest.fixture
def process_logging() -> Iterator[None]:
    """run_poller sets up the process's logging; give pytest its own back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def probe(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingestor")


@pytest_asyncio.fixture
async def served_api(fake_api: FakeApi) -> AsyncIterator[str]:
    """The fake api over real HTTP, for code that builds its own api client."""
    async with serving(fake_api.app) as url:
        yield url


async def test_app_is_ready_when_bus_api_and_aws_answer(moto: str, served_api: str) -> None:
    app = create_app(settings_for(moto, api_url=served_api))

    async with app.router.lifespan_context(app), probe(app) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")

    assert ready.status_code == 200
    assert ready.json()["checks"] == {"bus": True, "api": True, "aws": True}


async def test_app_is_not_ready_when_aws_does_not_answer(moto: str, served_api: str) -> None:
    app = create_app(settings_for(moto, api_url=served_api, aws_endpoint_url=f"http://127.0.0.1:{free_port()}"))

    async with app.router.lifespan_context(app), probe(app) as http:
        ready = await http.get("/readyz")

    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"bus": True, "api": True, "aws": False}}


async def test_app_exports_its_counters_on_metrics(moto: str, served_api: str) -> None:
    app = create_app(settings_for(moto, api_url=served_api))

    async with app.router.lifespan_context(app), probe(app) as http:
        app.state.ingestor.counters["events_received"] += 5
        text = (await http.get("/metrics")).text

    families = {family.name: family for family in text_string_to_metric_families(text)}
    received = families["zc_ingestor_events_received"]
    assert received.type == "counter" and received.documentation
    assert received.samples[0].value >= 5
    assert "zc_bus_messages_consumed" in families and "zc_aws_calls" in families


async def test_app_is_not_ready_without_the_api(moto: str) -> None:
    app = create_app(settings_for(moto, api_url=f"http://127.0.0.1:{free_port()}"))

    async with app.router.lifespan_context(app), probe(app) as http:
        ready = await http.get("/readyz")

    assert ready.status_code == 503
    assert ready.json()["checks"] == {"bus": True, "api": False, "aws": True}


async def test_run_poller_once_follows_the_queue(
    moto: str,
    served_api: str,
    queues: EventQueues,
    customer: CustomerAccount,
    fake_api: FakeApi,
    process_logging: None,
) -> None:
    [instance_id] = await customer.launch()
    event = state_change_event(account_id=CUSTOMER, region=REGION, instance_id=instance_id, state="running")
    await queues.send(json.dumps(event))
    settings = settings_for(moto, queues, api_url=served_api)

    await asyncio.to_thread(run_poller, settings, once=True)

    assert fake_api.requests["cloudaccounts"] == 1
    assert await queues.waiting() == 0


async def test_run_poller_without_queues_says_so(moto: str, process_logging: None) -> None:
    with pytest.raises(SystemExit, match="ZC_EVENT_QUEUE_URLS is empty"):
        run_poller(settings_for(moto, api_url="http://127.0.0.1:9"))
