"""An ASGI app served on this machine beside other work: on the running event loop, or
from a thread of its own, on a free port unless one is given. The sandbox serves its
fake GitHub this way; tests serve the api and their fakes of it this way."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import uvicorn
from fastapi import FastAPI


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the program hosting it. Each plain server
    takes SIGINT and SIGTERM for itself while it serves and raises them again when done;
    several on one loop pass one Ctrl-C along, and a server that gets it after its host
    already told it to exit takes it as a second Ctrl-C and cancels its lifespan (a
    traceback instead of a clean stop). The host stops its servers itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _server(app: FastAPI, host: str, port: int, lifespan: bool) -> uvicorn.Server:
    return EmbeddedServer(
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
    servers = [_server(app, host, port, lifespan and index == 0) for index, (app, port) in enumerate(apps)]

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
        yield [_bound_url(server, host) for server in servers]
    finally:
        for server in reversed(servers):
            server.should_exit = True
        thread.join(timeout=10)
