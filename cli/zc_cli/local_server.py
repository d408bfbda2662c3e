"""An ASGI app served on this machine beside other work: on the running event loop, or
from a thread of its own, on a free port unless one is given. The sandbox serves its
fake GitHub this way; tests serve the api and their fakes of it this way."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI


def _server(app: FastAPI, host: str, port: int, lifespan: bool) -> uvicorn.Server:
    return uvicorn.Server(
        uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="on" if lifespan else "off"
        )
    )


def _bound_url(server: uvicorn.Server, host: str) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def serving(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, lifespan: bool = False, name: str = "server"
) -> AsyncIterator[str]:
    """Serve ``app`` on this event loop (port 0: a free one), running its lifespan when
    asked; yields its base URL once it accepts connections, stops it on leaving."""
    server = _server(app, host, port, lifespan)
    task = asyncio.create_task(server.serve(), name=name)
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"{name} did not start")
            await asyncio.sleep(0.01)
        yield _bound_url(server, host)
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)


@contextlib.contextmanager
def serving_in_thread(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, lifespan: bool = False, name: str = "server",
    start_timeout: float = 10.0,
) -> Iterator[str]:
    """Serve ``app`` from a thread of its own (for synchronous callers); yields its base URL."""
    server = _server(app, host, port, lifespan)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.01)
    try:
        yield _bound_url(server, host)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
