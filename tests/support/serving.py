"""Servers on this machine for tests: the api served for real, as production runs it (its
public listener with the lifespan and, once that has started, its internal one on a port
of its own), and any app served from a thread of its own for synchronous callers (the
CLI's tests). On the running event loop, zc_cli.local_server.serving (the sandbox's) does."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass

from fastapi import FastAPI

from zc_common.bus import Bus
from zc_common.settings import ApiSettings

from zc_api.main import create_app, internal_app
from zc_cli.local_server import bound_url, embedded_server, serving


@dataclass(frozen=True)
class ServedApi:
    public_url: str  # the REST API, web UI and mailed links
    internal_url: str  # what the other services call: their ZC_API_URL


@contextlib.asynccontextmanager
async def serving_api(settings: ApiSettings, *, bus: Bus | None = None) -> AsyncIterator[ServedApi]:
    """Serve an api on ``settings.http_port`` and ``settings.internal_port`` (0: free ones)."""
    app = create_app(settings, bus=bus)
    async with (
        serving(app, port=settings.http_port, lifespan=True, name="api") as public_url,
        serving(internal_app(app), port=settings.internal_port, name="api-internal") as internal_url,
    ):
        yield ServedApi(public_url=public_url, internal_url=internal_url)


@contextlib.contextmanager
def serving_in_thread(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, lifespan: bool = False, name: str = "server",
    start_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve ``app`` from a thread of its own (for synchronous callers); yields its base URL."""
    with serving_together_in_thread([(app, port)], host=host, lifespan=lifespan, name=name,
                                    start_timeout=start_timeout) as [url]:
        yield url


@contextlib.contextmanager
def serving_together_in_thread(
    apps: Sequence[tuple[FastAPI, int]], *, host: str = "127.0.0.1", lifespan: bool = False, name: str = "server",
    start_timeout: float = 10.0,
) -> Iterator[list[str]]:
    """Serve several apps (each on its port, 0: a free one) from one thread and one event
    loop, the first with its lifespan when asked and the others only once it has started
    (the api's public and internal listeners share its runtime); yields their base URLs."""
    servers = [embedded_server(app, host, port, lifespan and index == 0) for index, (app, port) in enumerate(apps)]

    async def serve_all() -> None:
        first = asyncio.create_task(servers[0].serve())
        while not servers[0].started and not first.done():  # noqa: ASYNC110 - uvicorn has no "started" event
            await asyncio.sleep(0.01)
        await asyncio.gather(first, *(server.serve() for server in servers[1:]))

    thread = threading.Thread(target=lambda: asyncio.run(serve_all()), name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not all(server.started for server in servers):
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.01)
    try:
        yield [bound_url(server, host) for server in servers]
    finally:
        for server in reversed(servers):
            server.should_exit = True
        thread.join(timeout=10)
