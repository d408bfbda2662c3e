"""The api served for real on this machine, as production runs it: its public listener
(with the lifespan) and, once that has started, its internal one on a port of its own."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from zc_common.bus import Bus
from zc_common.settings import ApiSettings

from zc_api.main import create_app, internal_app
from zc_cli.local_server import serving


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
