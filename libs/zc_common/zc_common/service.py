"""What every service's HTTP face shares: /healthz (alive), /readyz (its dependencies
answer), /metrics (Prometheus), and running it under uvicorn with JSON logs and a
graceful SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from zc_common import metrics
from zc_common.bus.base import SHUTDOWN_GRACE
from zc_common.logging import configure_logging, redact_access_log
from zc_common.settings import ZeroCloudSettings

__all__ = ["SHUTDOWN_GRACE", "Listener", "ReadinessCheck", "ScrapeHook", "add_health_routes", "add_metrics_route",
           "serve"]

log = logging.getLogger("zc.service")

ReadinessCheck = Callable[[], Awaitable[bool]]
ScrapeHook = Callable[[], Awaitable[None]]


def add_health_routes(
    app: FastAPI,
    checks: Callable[[], Mapping[str, ReadinessCheck]],
    *,
    before_scrape: ScrapeHook | None = None,
    metrics_route: bool = True,
) -> None:
    """/healthz, /readyz and (unless ``metrics_route`` is False) /metrics. ``checks`` is
    called per request, so it can read the app's runtime state."""

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

    if metrics_route:
        add_metrics_route(app, before_scrape=before_scrape)


def add_metrics_route(app: FastAPI, *, before_scrape: ScrapeHook | None = None) -> None:
    """/metrics. ``before_scrape`` brings gauges read from elsewhere (a database) up to
    date; if it fails, /metrics still answers with everything else."""

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


@dataclass(frozen=True)
class Listener:
    """A second HTTP listener of the same process (the api's internal one)."""

    app: FastAPI
    host: str
    port: int


class _SecondListener(uvicorn.Server):
    """The first listener owns the signals and the lifespan; this one only follows it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def serve(app: FastAPI, settings: ZeroCloudSettings, service: str, *, also: Sequence[Listener] = ()) -> None:
    """Run a service's app in the foreground (and ``also`` on listeners of their own,
    started once the app's lifespan has). SIGTERM (or Ctrl-C) drains it: uvicorn stops
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
    main = uvicorn.Server(uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_config=None,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
    ))
    others = [
        _SecondListener(uvicorn.Config(
            listener.app, host=listener.host, port=listener.port, log_config=None, lifespan="off",
            timeout_graceful_shutdown=int(SHUTDOWN_GRACE),
        ))
        for listener in also
    ]
    asyncio.run(_serve_together(main, others))


async def _serve_together(main: uvicorn.Server, others: Sequence[uvicorn.Server]) -> None:
    serving = asyncio.create_task(main.serve())
    while not main.started:
        if serving.done():
            return await serving  # the lifespan failed: uvicorn has said why, and exits
        await asyncio.sleep(0.05)
    followers = [asyncio.create_task(other.serve()) for other in others]
    # A signal to the main listener stops the others with it; another listener that
    # stops by itself (its port is taken) takes the process down: half an api is worse.
    while not main.should_exit and not any(task.done() for task in followers):  # noqa: ASYNC110 - a flag set by a signal handler
        await asyncio.sleep(0.1)
    stopped_early = [task for task in followers if task.done()]
    main.should_exit = True
    for other in others:
        other.should_exit = True
    await asyncio.gather(serving, *followers, return_exceptions=True)
    for task in stopped_early:
        task.result()  # re-raises its SystemExit(1) after the main listener drained
    if stopped_early:
        raise SystemExit(1)


def read_command_line(service: str, description: str, argv: Sequence[str] | None = None) -> None:
    """The command line of a service that takes no arguments: ``--help`` says what it is
    and where its settings come from (before any setting is read); anything else is a
    usage error (exit 2)."""
    argparse.ArgumentParser(
        prog=f"zerocloud-{service}",
        description=f"{description} Settings come from ZC_* environment variables and config.yml (its path in "
        "ZC_CONFIG); docs/configuration.md lists them. SIGTERM drains it and exits 0.",
    ).parse_args(argv)
