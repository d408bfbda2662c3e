"""What every service's HTTP face shares: /healthz (alive), /readyz (its dependencies
answer), /metrics (Prometheus), and running it under uvicorn with JSON logs and a
graceful SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import FrameType

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from zc_common import metrics
from zc_common.bus.base import SHUTDOWN_GRACE
from zc_common.logging import configure_logging, redact_access_log
from zc_common.settings import ZeroCloudSettings

__all__ = ["SHUTDOWN_GRACE", "ReadinessCheck", "ScrapeHook", "add_health_routes", "serve"]

log = logging.getLogger("zc.service")

ReadinessCheck = Callable[[], Awaitable[bool]]
ScrapeHook = Callable[[], Awaitable[None]]


def add_health_routes(
    app: FastAPI,
    checks: Callable[[], Mapping[str, ReadinessCheck]],
    *,
    before_scrape: ScrapeHook | None = None,
) -> None:
    """``checks`` is called per request, so it can read the app's runtime state.
    ``before_scrape`` brings gauges read from elsewhere (a database) up to date; if it
    fails, /metrics still answers with everything else."""

    @app.get("/healthz", tags=["operations"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], summary="Every dependency answers")
    async def readyz() -> JSONResponse:
        results: dict[str, bool] = {}
        for name, check in checks().items():
            try:
                results[name] = bool(await asyncio.wait_for(check(), timeout=5))
            except Exception:  # noqa: BLE001 - any failure means not ready
                results[name] = False
        ok = all(results.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": results}, status_code=200 if ok else 503
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Metrics in Prometheus's text format",
        response_class=Response,
        responses={200: {"content": {metrics.CONTENT_TYPE_LATEST: {}}}},
    )
    async def prometheus_metrics() -> Response:
        if before_scrape is not None:
            try:
                await asyncio.wait_for(before_scrape(), timeout=5)
            except Exception as error:  # noqa: BLE001 - the other metrics are still worth having
                log.warning("metrics scrape hook failed: %s: %s", type(error).__name__, error)
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE_LATEST)


def _exit_after_shutdown(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def serve(app: FastAPI, settings: ZeroCloudSettings, service: str) -> None:
    """Run a service's app in the foreground. SIGTERM (or Ctrl-C) drains it: uvicorn stops
    accepting connections and gives open requests SHUTDOWN_GRACE seconds, then the app's
    lifespan stops consuming and lets the work in hand finish (also bounded by
    SHUTDOWN_GRACE), closes its connections, and the process exits 0."""
    configure_logging(service, settings.log_level)
    redact_access_log()  # configure_logging does it too; said here, where the access log starts
    # uvicorn re-raises the signal it drained for once it is done, under the handler that
    # was there before it; left at the defaults, SIGTERM would then kill the process (exit
    # -15) and Ctrl-C end in a KeyboardInterrupt traceback after a clean shutdown. This
    # handler turns both into exit 0 (and, before uvicorn takes over, ends a process that
    # has not started anything yet).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_after_shutdown)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
    )


def read_command_line(service: str, description: str, argv: Sequence[str] | None = None) -> None:
    """The command line of a service that takes no arguments: ``--help`` says what it is
    and where its settings come from (before any setting is read); anything else is a
    usage error (exit 2)."""
    argparse.ArgumentParser(
        prog=f"zerocloud-{service}",
        description=f"{description} Settings come from ZC_* environment variables and config.yml (its path in "
        "ZC_CONFIG); docs/configuration.md lists them. SIGTERM drains it and exits 0.",
    ).parse_args(argv)
