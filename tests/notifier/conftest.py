"""Fixtures for the notifier's tests: the fake api, a running SMTP sink, and Notifiers
subscribed on a bus (the in-process one, or the ``bus`` fixture's two implementations)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from zc_common.bus import Bus
from zc_common.bus.memory import InProcessBus
from zc_common.internal_api import InternalApi

from tests.notifier.factories import FakeApi, SmtpSink, notifier_settings
from zc_notifier import handlers
from zc_notifier.service import Notifier

StartNotifier = Callable[..., Awaitable[Notifier]]


@pytest.fixture
def fake_api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP server keeping every mail."""
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def memory_bus() -> InProcessBus:
    return InProcessBus()


@pytest.fixture
async def start_notifier(fake_api: FakeApi, smtp_sink: SmtpSink) -> AsyncIterator[StartNotifier]:
    """Subscribe a Notifier (settings from ``notifier_settings``, SMTP at the sink unless
    overridden) on ``bus`` and start the bus. Everything is closed afterwards."""
    started: list[tuple[Bus, Notifier, InternalApi]] = []

    async def start(bus: Bus, **overrides: Any) -> Notifier:
        api = fake_api.client()
        notifier = Notifier(notifier_settings(smtp_sink, **overrides), api)
        handlers.subscribe(bus, notifier)
        await bus.start()
        started.append((bus, notifier, api))
        return notifier

    yield start
    for bus, notifier, api in started:
        await bus.close()
        await notifier.close()
        await api.close()
