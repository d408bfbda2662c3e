"""Wiring: the reaper's process (FastAPI app with its lifespan and health routes) and the
``zerocloud-reaper`` entry point."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from zc_common.aws import AwsAccess
from zc_common.bus import Bus, create_bus
from zc_common.internal_api import InternalApi
from zc_common.service import ReadinessCheck, add_health_routes, read_command_line, serve
from zc_common.settings import ReaperSettings, load_settings

from zc_reaper import handlers
from zc_reaper.service import Reaper

__all__ = ["Reaper", "create_app", "run", "wired"]

SERVICE = "reaper"


@contextlib.asynccontextmanager
async def wired(settings: ReaperSettings, *, bus: Bus | None = None) -> AsyncIterator[Reaper]:
    """A Reaper subscribed to a started bus, with AWS access and the api client. On exit
    the bus (unless it was given) finishes the batch in hand and closes, then the api client."""
    owns_bus = bus is None
    bus = bus or create_bus(settings)
    aws = AwsAccess(
        endpoint_url=settings.aws_endpoint_url,
        default_region=settings.aws_region,
        session_name="zerocloud-reaper",
        max_attempts=settings.aws_max_attempts,
    )
    api = InternalApi(settings.api_url, settings.service_token)
    reaper = Reaper(settings, aws, api, bus=bus)
    handlers.subscribe(bus, reaper)
    try:
        await bus.start()
        try:
            yield reaper
        finally:
            if owns_bus:
                await bus.close()
    finally:
        await api.close()


def create_app(settings: ReaperSettings, *, bus: Bus | None = None) -> FastAPI:
    """The reaper's process: the LeaseExpired handler, /healthz, /readyz (bus, api and
    AWS) and /metrics. Given a bus (the embedded default shares one) it subscribes to it
    but does not close it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # wired owns the bus it creates: it drains it before closing the api client the
        # batch in hand still needs for its claim and its outcomes.
        async with wired(settings, bus=bus) as reaper:
            app.state.reaper = reaper
            yield

    app = FastAPI(title="ZeroCloud reaper", lifespan=lifespan)
    add_health_routes(app, lambda: readiness(app.state.reaper))
    return app


def readiness(reaper: Reaper) -> dict[str, ReadinessCheck]:
    checks: dict[str, ReadinessCheck] = {"api": reaper.api_answers, "aws": reaper.aws.answers}
    if reaper.bus is not None:
        checks = {"bus": reaper.bus.ping, **checks}
    return checks


def run() -> None:
    """``zerocloud-reaper``: the service in the foreground; SIGTERM drains it."""
    read_command_line(SERVICE, "ZeroCloud reaper: claims expired leases and stops or terminates their instances.")
    settings = load_settings(ReaperSettings, SERVICE)
    serve(create_app(settings), settings, SERVICE)
