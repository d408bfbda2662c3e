"""The pages an address-confirmation link opens: GET shows the address and a button,
only the POST confirms (mail scanners follow links). The token is the credential, as
for action links: no session and no CSRF field are needed, and it works once."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from zc_common.messages import utcnow

from zc_api.confirmations import service
from zc_api.deps import SessionDep
from zc_api.display import stamp as _stamp
from zc_api.single_use import LinkRefused
from zc_api.web.render import page
from zc_api.web.session import Viewer, ViewerDep

router = APIRouter(include_in_schema=False)

# The token is in the URL: no other site may learn it from a Referer, no index keeps it.
TOKEN_PAGE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}



def _refused(request: Request, viewer: Viewer | None, refusal: LinkRefused) -> HTMLResponse:
    return page(
        request, "people_link_refused.html", viewer=viewer, title=refusal.title, status=refusal.status_code,
        headers=TOKEN_PAGE_HEADERS, message=refusal.message, reason=refusal.reason.value,
    )


@router.get("/confirm-email/{token}", response_class=HTMLResponse)
async def confirmation_page(token: str, request: Request, session: SessionDep, viewer: ViewerDep) -> HTMLResponse:
    try:
        found = await service.inspect(session, token=token, now=utcnow())
    except LinkRefused as refusal:
        return _refused(request, viewer, refusal)
    return page(
        request, "confirm_email.html", viewer=viewer, title="Confirm your address", headers=TOKEN_PAGE_HEADERS,
        email=found.row.email, expires=_stamp(found.row.expires_at),
    )


@router.post("/confirm-email/{token}", response_class=HTMLResponse)
async def confirm_email(token: str, request: Request, session: SessionDep, viewer: ViewerDep) -> HTMLResponse:
    try:
        found = await service.confirm(session, token=token, now=utcnow())
    except LinkRefused as refusal:
        return _refused(request, viewer, refusal)
    return page(
        request, "confirm_email_done.html", viewer=viewer, title="Address confirmed", headers=TOKEN_PAGE_HEADERS,
        email=found.row.email,
    )
