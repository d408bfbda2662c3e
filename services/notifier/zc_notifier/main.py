"""The notifier's process: settings, logging, the bus, health. Its handlers arrive with
the lease lifecycle; until then it connects, reports readiness and consumes nothing."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from zc_common.bus import Bus, create_bus
from zc_common.service import add_health_routes, serve
from zc_common.settings import NotifierSettings, load_settings


def create_app(settings: NotifierSettings, *, bus: Bus | None = None) -> FastAPI:
    """Given a bus (the embedded default shares one) it does not close it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.bus = bus or create_bus(settings)
        await app.state.bus.start()
        try:
            yield
        finally:
            if bus is None:
                await app.state.bus.close()

    app = FastAPI(title="ZeroCloud notifier", lifespan=lifespan)
    add_health_routes(app, lambda: {"bus": app.state.bus.ping})
    return app


def run() -> None:
    settings = load_settings(NotifierSettings, "notifier")
    serve(create_app(settings), settings, "notifier")
