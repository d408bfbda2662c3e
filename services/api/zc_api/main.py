"""The api's two apps: the public one (REST /api/v1, web UI, mailed links) that owns the
wiring of the database, the bus and the outbox relay, and the internal one (/internal/v1
for the other services, /metrics, the full OpenAPI) served on a listener of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from zc_common.aws import AwsAccess
from zc_common.bus import Bus, create_bus
from zc_common.service import SHUTDOWN_GRACE, add_health_routes
from zc_common.settings import ApiSettings

from zc_api import errors
from zc_api.auth.bootstrap import ensure_bootstrap_admin
from zc_api.database import create_engine, ensure_migrated, session_maker
from zc_api.ingest.handlers import subscribe as subscribe_ingest
from zc_api.leases.past_lease_digest import run_past_lease_digests
from zc_api.metrics import count_leases
from zc_api.outbox.relay import BATCH, publish_pending, run_relay
from zc_api.routes import internal_router, router
from zc_api.runtime import ApiRuntime
from zc_api.web.render import STATIC_DIR

log = logging.getLogger("zc.api")


async def _database_answers(app: FastAPI) -> bool:
    runtime: ApiRuntime = app.state.runtime
    async with runtime.engine.connect() as connection:
        return bool((await connection.scalar(text("SELECT 1"))) == 1)


async def _flush_outbox(runtime: ApiRuntime) -> None:
    """Publish the outbox's unpublished rows, for up to SHUTDOWN_GRACE seconds; what is
    left (the bus or the database is down) stays for the next instance's relay."""
    try:
        async with asyncio.timeout(SHUTDOWN_GRACE):
            while await publish_pending(runtime.sessions, runtime.bus) == BATCH:
                pass
    except Exception as error:  # noqa: BLE001 - shutting down: say so, the rows are safe
        log.warning("outbox not flushed at shutdown (%s: %s); the next start publishes it", type(error).__name__, error)


def create_app(settings: ApiSettings, *, bus: Bus | None = None) -> FastAPI:
    """The api's public app; ``internal_app(app)`` is its internal one, which shares its
    runtime and is served on ``settings.internal_port`` (never the public listener).
    Given a bus (the embedded default shares one), it neither starts nor closes it
    beyond subscribing; otherwise it owns its own."""
    owns_bus = bus is None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        await ensure_migrated(engine)
        runtime = ApiRuntime(
            settings=settings,
            engine=engine,
            sessions=session_maker(engine),
            bus=bus or create_bus(settings),
            aws=AwsAccess(
                endpoint_url=settings.aws_endpoint_url,
                default_region=settings.aws_region,
                session_name="zerocloud-api",
                max_attempts=settings.aws_max_attempts,
            ),
        )
        app.state.runtime = runtime
        await ensure_bootstrap_admin(runtime)
        subscribe_ingest(runtime.bus, runtime)
        await runtime.bus.start()
        relay = asyncio.create_task(run_relay(runtime), name="outbox-relay")
        digests = asyncio.create_task(run_past_lease_digests(runtime), name="past-lease-digests")
        log.info("api ready on %s", settings.public_url)
        try:
            yield
        finally:
            # Shutdown (SIGTERM): stop taking ResourceChange and let the batch in hand
            # commit, then publish what it (and anything before it) left in the outbox,
            # so the next instance starts with nothing owed. A shared bus is the
            # embedded runner's to stop.
            if owns_bus:
                await runtime.bus.stop_consuming()
            relay.cancel()
            digests.cancel()
            await asyncio.gather(relay, digests, return_exceptions=True)
            if owns_bus:
                await _flush_outbox(runtime)
                await runtime.bus.close()
            await engine.dispose()

    app = FastAPI(
        title="ZeroCloud",
        version="1",
        summary="Leases for every EC2 instance: you define the policies, ZeroCloud enforces them.",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    checks = lambda: {"database": lambda: _database_answers(app), "bus": app.state.runtime.bus.ping}  # noqa: E731
    add_health_routes(app, checks, metrics_route=False)  # lease counts of every tenant: internal only

    internal = FastAPI(
        title="ZeroCloud (internal listener)",
        version="1",
        summary="The routes the ZeroCloud services call, each with its own credential, and the operators' metrics.",
    )
    internal.state = app.state  # one runtime, set by the public app's lifespan
    errors.install(internal)
    internal.include_router(internal_router)
    add_health_routes(internal, checks, before_scrape=lambda: count_leases(app.state.runtime))
    app.state.internal_app = internal
    return app


def internal_app(app: FastAPI) -> FastAPI:
    """The internal app of a public app made by ``create_app``."""
    internal: FastAPI = app.state.internal_app
    return internal
