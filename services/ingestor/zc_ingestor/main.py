"""Wiring: the ingestor's process (FastAPI app with its lifespan and health routes), the
``zerocloud-ingestor`` entry point, and ``run_poller`` behind
``zerocloud-cli poll_cloudevent_queue``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from fastapi import FastAPI

from zc_common.aws import AwsAccess
from zc_common.bus import Bus, create_bus
from zc_common.internal_api import InternalApi
from zc_common.logging import configure_logging
from zc_common.service import add_health_routes, read_command_line, serve
from zc_common.settings import IngestorSettings, load_settings

from zc_ingestor import handlers
from zc_ingestor.service import Ingestor

__all__ = ["Ingestor", "create_app", "run", "run_poller", "wired"]

log = logging.getLogger("zc.ingestor")

SERVICE = "ingestor"


@contextlib.asynccontextmanager
async def wired(
    settings: IngestorSettings, *, bus: Bus | None = None, subscribe: bool = True
) -> AsyncIterator[Ingestor]:
    """An Ingestor on a started bus, with AWS access and the api client. On exit the
    pollers finish the batch in hand, then the bus (unless it was given) and the api
    client close."""
    owns_bus = bus is None
    bus = bus or create_bus(settings)
    aws = AwsAccess(
        endpoint_url=settings.aws_endpoint_url,
        default_region=settings.aws_region,
        session_name="zerocloud-ingestor",
        max_attempts=settings.aws_max_attempts,
    )
    api = InternalApi(settings.api_url, settings.service_token)
    ingestor = Ingestor(settings, bus, aws, api)
    if subscribe:
        handlers.subscribe(bus, ingestor)
    try:
        await bus.start()
        try:
            yield ingestor
        finally:
            # The pollers and the bus consumer stop together, each finishing what it holds
            # (publishing still works until the bus closes).
            await asyncio.gather(ingestor.stop(), bus.stop_consuming() if owns_bus else asyncio.sleep(0))
            if owns_bus:
                await bus.close()
    finally:
        await api.close()
        await aws.close()


def create_app(settings: IngestorSettings | None = None, *, bus: Bus | None = None) -> FastAPI:
    """The ingestor's process: pollers, sweep timer, bus handlers, /healthz, /readyz (bus,
    api and AWS) and /metrics.
    Without settings they are read at start; given a bus (the embedded default shares
    one) it subscribes to it but does not close it."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings
        if current is None:
            current = load_settings(IngestorSettings, SERVICE)
            configure_logging(SERVICE, current.log_level)
        async with wired(current, bus=bus) as ingestor:
            app.state.ingestor = ingestor
            await ingestor.start()
            yield

    app = FastAPI(title="ZeroCloud ingestor", lifespan=lifespan)
    add_health_routes(
        app,
        lambda: {
            "bus": app.state.ingestor.bus.ping,
            "api": app.state.ingestor.api_answers,
            "aws": app.state.ingestor.aws.answers,
        },
    )
    return app


def run() -> None:
    """``zerocloud-ingestor``: the service in the foreground; SIGTERM drains it."""
    read_command_line(SERVICE, "ZeroCloud ingestor: long-polls the event queues, runs inventory sweeps, publishes ResourceChange.")
    settings = load_settings(IngestorSettings, SERVICE)
    serve(create_app(settings), settings, SERVICE)


def run_poller(settings: IngestorSettings, *, once: bool = False) -> None:
    """Poll the event queues in the foreground, with neither HTTP nor sweeps, until Ctrl-C
    or SIGTERM; with ``once``, one receive batch per queue. Exits 1 if a once-round failed."""
    configure_logging(SERVICE, settings.log_level)
    if not settings.event_queue_urls:
        raise SystemExit(f"zerocloud-{SERVICE}: ZC_EVENT_QUEUE_URLS is empty: no event queue to poll")
    if settings.bus == "memory":
        log.warning("the bus is in-process: what is published here reaches no other process")
    asyncio.run(_poll(settings, once=once))


async def _poll(settings: IngestorSettings, *, once: bool) -> None:
    async with wired(settings, subscribe=False) as ingestor:
        if once:
            results = await asyncio.gather(
                *(ingestor.poll_once(url) for url in settings.event_queue_urls), return_exceptions=True
            )
            for url, result in zip(settings.event_queue_urls, results):
                if isinstance(result, BaseException):
                    log.error("polling %s failed: %s: %s", url, type(result).__name__, result)
                else:
                    log.info("polled %s: %s", url, result)
            if any(isinstance(result, BaseException) for result in results):
                raise SystemExit(1)
            return
        interrupted = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, interrupted.set)
        await ingestor.start()
        await interrupted.wait()
        log.info("stopping: finishing the batches in hand")
