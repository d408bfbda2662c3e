"""Fixtures for the ingestor's tests: the customer's account and ZeroCloud's queues in
moto (the server comes from tests/conftest.py), the fake api, the recording bus, and an
Ingestor wired to them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from zc_common.aws import AwsAccess
from zc_common.bus import Bus
from zc_common.internal_api import InternalApi

from tests.ingestor.factories import (
    OTHER_CUSTOMER,
    CountingAwsAccess,
    CustomerAccount,
    EventQueues,
    FakeApi,
    RecordingBus,
    ingestor_settings,
)
from zc_ingestor.service import Ingestor

IngestorFactory = Callable[..., Ingestor]


@pytest.fixture
def customer(moto: str) -> CustomerAccount:
    return CustomerAccount(moto)


@pytest.fixture
def other_customer(moto: str) -> CustomerAccount:
    return CustomerAccount(moto, OTHER_CUSTOMER)


@pytest_asyncio.fixture
async def queues(moto: str) -> EventQueues:
    aws = AwsAccess(endpoint_url=moto, session_name="zerocloud-test")
    async with aws.client("sqs") as sqs:
        url = (await sqs.create_queue(QueueName="zc-events"))["QueueUrl"]
        dead_letter_url = (await sqs.create_queue(QueueName="zc-events-dead"))["QueueUrl"]
    return EventQueues(aws, url, dead_letter_url)


@pytest.fixture
def fake_api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def recording_bus() -> RecordingBus:
    """The in-process bus, recording what the ingestor publishes."""
    return RecordingBus()


@pytest_asyncio.fixture
async def make_ingestor(
    moto: str, recording_bus: RecordingBus, fake_api: FakeApi, queues: EventQueues
) -> AsyncIterator[IngestorFactory]:
    """Build an Ingestor on the recording bus (or ``on_bus``), the fake api and moto, with
    settings overridden by keyword."""
    built: list[tuple[Ingestor, InternalApi]] = []

    def make(*, on_bus: Bus | None = None, **overrides: Any) -> Ingestor:
        api = fake_api.client()
        settings = ingestor_settings(moto, queues, **overrides)
        ingestor = Ingestor(settings, on_bus or recording_bus, CountingAwsAccess(endpoint_url=moto), api)
        built.append((ingestor, api))
        return ingestor

    yield make
    for ingestor, api in built:
        await ingestor.stop()
        await api.close()
        await ingestor.aws.close()


@pytest.fixture
def ingestor(make_ingestor: IngestorFactory) -> Ingestor:
    return make_ingestor()
