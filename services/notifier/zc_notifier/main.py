"""Wiring: the notifier's process (FastAPI app with its lifespan and health routes) and
the ``zerocloud-notifier`` entry point."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from zc_common.bus import Bus, create_bus
from zc_common.internal_api import InternalApi
from zc_common.logging import configure_logging
from zc_common.service import ReadinessCheck, add_health_routes, read_command_line, serve
from zc_common.settings import NotifierSettings, load_settings

from zc_notifier import handlers
from zc_notifier.service import Notifier

__all__ = ["Notifier", "create_app", "run", "wired"]

SERVICE = "notifier"


@contextlib.asynccontextmanager
async def wired(
    settings: NotifierSettings, *, bus: Bus | None = None, api: InternalApi | None = None
) -> AsyncIterator[Notifier]:
    """A Notifier subscribed on a started bus. On exit the batch in hand finishes, then
    the bus (unless it was given), the channels and the api client (unless given) close."""
    owns_bus, owns_api = bus is None, api is None
    bus = bus or create_bus(settings)
    api = api or InternalApi(settings.api_url, settings.service_token)
    notifier = Notifier(settings, api, bus=bus)
    try:
        handlers.subscribe(bus, notifier)
        await bus.start()
        try:
            yield notifier
        finally:
            if owns_bus:
                await bus.close()
    finally:
        await notifier.close()
        if owns_api:
            await api.close()


def create_app(settings: NotifierSettings | None = None, *, bus: Bus | None = None) -> FastAPI:
    """The notifier's process: the bus handler, /healthz and /readyz (the bus, and the
    mail server answering). Without settings they are read at start; given a bus (the
    embedded default shares one) it subscribes to it but does not close it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings
        if current is None:
            current = load_settings(NotifierSettings, SERVICE)
            configure_logging(SERVICE, current.log_level)
        async with wired(current, bus=bus) as notifier:
            app.state.notifier = notifier
            yield

    app = FastAPI(title="ZeroCloud notifier", lifespan=lifespan)
    add_health_routes(app, lambda: readiness(app))
    return app


def readiness(app: FastAPI) -> dict[str, ReadinessCheck]:
    notifier: Notifier = app.state.notifier
    return notifier.readiness_checks()


def run() -> None:
    """``zerocloud-notifier``: the service in the foreground; SIGTERM drains it."""
    read_command_line(SERVICE, "ZeroCloud notifier: mails lease notices, warnings and people's links (SMTP or SES, optional webhook).")
    settings = load_settings(NotifierSettings, SERVICE)
    serve(create_app(settings), settings, SERVICE)
