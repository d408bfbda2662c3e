"""Personal API tokens: the list (never the secrets), creating one — shown once, with the
command that logs the CLI in — and revoking."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from zc_api.bounds import RowId
from zc_api.deps import RuntimeDep, SessionDep
from zc_api.pagination import PageParams
from zc_api.tokens import service as tokens
from zc_api.web.forms import read_form
from zc_api.web.render import page
from zc_api.web.session import CsrfDep, PersonDep, Viewer

router = APIRouter(include_in_schema=False)

NAME_CHARS = 100
_NOTICES = {"revoked": "The token was revoked: anything still using it is refused from now on."}


async def _list_page(
    request: Request, session: SessionDep, viewer: Viewer, *, status: int = 200, notice: str | None = None,
    values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
) -> HTMLResponse:
    rows, count = await tokens.get_all(session, caller=viewer.principal, page=PageParams(limit=500, offset=0))
    return page(
        request, "tokens.html", viewer=viewer, title="API tokens", status=status, rows=rows, count=count,
        notice=notice, values=values or {}, errors=errors or {},
    )


@router.get("/tokens", response_class=HTMLResponse)
async def list_tokens(
    request: Request, session: SessionDep, viewer: PersonDep,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    return await _list_page(request, session, viewer, notice=_NOTICES.get(notice or ""))


@router.post("/tokens", response_class=HTMLResponse)
async def create_token(request: Request, session: SessionDep, viewer: CsrfDep, runtime: RuntimeDep) -> HTMLResponse:
    form = await read_form(request)
    name = form.text("name")
    if not name:
        form.fail("name", "Give the token a name, such as the laptop or the CI job that will use it.")
    elif len(name) > NAME_CHARS:
        form.fail("name", f"A token's name is at most {NAME_CHARS} characters ({len(name)} now).")
    if not form.ok:
        return await _list_page(request, session, viewer, status=422, values=form.values, errors=form.errors)
    row, token = await tokens.create(session, caller=viewer.principal, name=name)
    return page(
        request, "token_created.html", viewer=viewer, title="Your new API token", row=row, token=token,
        api_url=runtime.settings.public_url.rstrip("/"),
    )


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: RowId, session: SessionDep, viewer: CsrfDep) -> Response:
    await tokens.revoke(session, caller=viewer.principal, token_id=token_id)
    return RedirectResponse("/tokens?notice=revoked", status_code=303)
