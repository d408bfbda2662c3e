"""Request dependencies as Annotated aliases, so handlers read like a sentence:
``async def get_lease(lease_id: int, session: SessionDep, caller: CallerDep)``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.errors import NotAuthenticated, NotFound

from zc_api.auth.principal import Principal
from zc_api.auth.service import principal_for
from zc_api.runtime import ApiRuntime

_bearer = HTTPBearer(auto_error=False, description="An API token (zc_…); on the internal listener, a service's own credential.")


async def get_runtime(request: Request) -> ApiRuntime:
    runtime: ApiRuntime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[ApiRuntime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """Commit at the edge: after the handler returns; roll back if it raised."""
    async with runtime.sessions() as session:
        async with session.begin():
            yield session
    if session.info.get("outbox_written"):
        runtime.wake_outbox()


# scope="function": commit before the response is sent, so a client never sees a 2xx
# for a change that then failed to commit (FastAPI's default ends it after sending).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_caller(
    runtime: RuntimeDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or not credentials.credentials:
        raise NotAuthenticated("an API token is required: send 'Authorization: Bearer <token>'")
    token = credentials.credentials
    principal = await principal_for(session, token, service_tokens=runtime.service_tokens)
    if principal is None:
        raise NotAuthenticated("this API token is not valid (unknown or revoked)")
    return principal


CallerDep = Annotated[Principal, Depends(get_caller)]


async def get_user(caller: CallerDep) -> Principal:
    """A person's token: the public API is not for a service credential."""
    if caller.kind != "user":
        raise NotFound("not found")
    return caller


UserDep = Annotated[Principal, Depends(get_user)]


def service_allowed(*services: str) -> Callable[[Principal], Awaitable[Principal]]:
    """Internal endpoints answer only the services whose work they are (the ingestor
    cannot mint action links, only the reaper can claim); to anyone else, a user or
    another service, they do not exist."""

    async def allowed(caller: CallerDep) -> Principal:
        if caller.kind != "service" or caller.service not in services:
            raise NotFound("not found")
        return caller

    return allowed


IngestorDep = Annotated[Principal, Depends(service_allowed("ingestor"))]
NotifierDep = Annotated[Principal, Depends(service_allowed("notifier"))]
ReaperDep = Annotated[Principal, Depends(service_allowed("reaper"))]
CloudAccountReaderDep = Annotated[Principal, Depends(service_allowed("ingestor", "reaper"))]
