"""Routes of action links: minting them (internal, for the notifier) and the pages a
link opens (public: the token is the credential). GET shows, only POST acts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from zc_common.internal_api import ActionLinksRequest, ActionLinksResult
from zc_common.messages import utcnow

from zc_api.deps import NotifierDep, RuntimeDep, SessionDep
from zc_api.errors import responses
from zc_api.links import pages, service
from zc_api.single_use import LinkRefused

internal_router = APIRouter(tags=["internal"])
pages_router = APIRouter(tags=["action links"], include_in_schema=False)


@internal_router.post(
    "/action-links", response_model=ActionLinksResult, responses=responses(401, 404, 422),
    summary="Mint single-use renew / shut-down links for leases at their current version (notifier)",
)
async def mint_action_links(
    body: ActionLinksRequest, session: SessionDep, runtime: RuntimeDep, _: NotifierDep
) -> ActionLinksResult:
    links = await service.mint(
        session, refs=body.leases, wanted=body.actions, public_url=runtime.settings.public_url,
        ttl_seconds=runtime.settings.action_token_ttl_seconds,
    )
    return ActionLinksResult(data=links)


@pages_router.get("/a/{token}", response_class=HTMLResponse)
async def confirm_action(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    now = utcnow()
    try:
        link = await service.inspect(session, token=token, now=now)
    except LinkRefused as refusal:
        return pages.refused(request, refusal)
    return pages.confirmation(request, link, now=now)


@pages_router.post("/a/{token}", response_class=HTMLResponse)
async def perform_action(token: str, request: Request, session: SessionDep) -> HTMLResponse:
    now = utcnow()
    try:
        done = await service.use(session, token=token, now=now)
    except LinkRefused as refusal:
        return pages.refused(request, refusal)
    return pages.outcome(request, done, now=now)
