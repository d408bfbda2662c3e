"""An ASGI app served on this machine beside other work, on the running event loop, on a
free port unless one is given: the sandbox serves its api and fake GitHub this way.
(Tests serve theirs the same way, and from a thread of their own with
tests/support/serving.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

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


def embedded_server(app: FastAPI, host: str, port: int, lifespan: bool) -> uvicorn.Server:
    """An EmbeddedServer for ``app`` on ``host``:``port`` (0: a free one), quiet, its lifespan on when asked."""
    return EmbeddedServer(
        uvicorn.Config(
            app, host=host, port=port, log_config=None, access_log=False, lifespan="on" if lifespan else "off"
        )
    )


def bound_url(server: uvicorn.Server, host: str) -> str:
    """The base URL a started server listens on (its port, when it was given 0)."""
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://{host}:{port}"


@contextlib.asynccontextmanager
async def serving(
    app: FastAPI, *, host: str = "127.0.0.1", port: int = 0, lifespan: bool = False, name: str = "server"
) -> AsyncIterator[str]:
    """Serve ``app`` on this event loop (port 0: a free one), running its lifespan when
    asked; yields its base URL once it accepts connections, stops it on leaving."""
    server = embedded_server(app, host, port, lifespan)
    task = asyncio.create_task(server.serve(), name=name)
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"{name} did not start")
            await asyncio.sleep(0.01)
        yield bound_url(server, host)
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
