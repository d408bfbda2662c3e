"""What every service's HTTP face shares: /healthz (alive), /readyz (its dependencies
answer), and running it under uvicorn with JSON logs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from zc_common.logging import configure_logging
from zc_common.settings import ZeroCloudSettings

ReadinessCheck = Callable[[], Awaitable[bool]]


def add_health_routes(app: FastAPI, checks: Callable[[], Mapping[str, ReadinessCheck]]) -> None:
    """``checks`` is called per request, so it can read the app's runtime state."""

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


def serve(app: FastAPI, settings: ZeroCloudSettings, service: str) -> None:
    """Run a service's app in the foreground; SIGTERM drains it through the lifespan."""
    configure_logging(service, settings.log_level)
    uvicorn.run(
        app, host=settings.http_host, port=settings.http_port, log_config=None, timeout_graceful_shutdown=20
    )

