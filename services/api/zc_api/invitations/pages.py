"""The page an invitation link opens: who invites you where, as what, and the button
that starts the GitHub sign-in which accepts it. The token is the credential (no
session needed); opening the page changes nothing."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from zc_common.messages import utcnow

from zc_api.deps import RuntimeDep, SessionDep
from zc_api.display import stamp as _stamp
from zc_api.invitations import service
from zc_api.single_use import LinkRefused
from zc_api.web.login import sign_in_form_headers
from zc_api.web.render import page
from zc_api.web.session import Viewer, ViewerDep

router = APIRouter(include_in_schema=False)

# The token is in the URL: no other site may learn it from a Referer, no index keeps it.
TOKEN_PAGE_HEADERS = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}




def refused(request: Request, viewer: Viewer | None, refusal: LinkRefused) -> HTMLResponse:
    return page(
        request, "people_link_refused.html", viewer=viewer, title=refusal.title, status=refusal.status_code,
        headers=TOKEN_PAGE_HEADERS, message=refusal.message, reason=refusal.reason.value,
    )


@router.get("/invitations/{token}", response_class=HTMLResponse)
async def invitation_page(
    token: str, request: Request, session: SessionDep, runtime: RuntimeDep, viewer: ViewerDep
) -> HTMLResponse:
    try:
        invitation = await service.inspect_token(session, token=token, now=utcnow())
    except LinkRefused as refusal:
        return refused(request, viewer, refusal)
    shown = await service.details(session, invitation)
    return page(
        request, "invitation.html", viewer=viewer, title=f"Join {shown.account_name} on ZeroCloud",
        headers={**TOKEN_PAGE_HEADERS, **sign_in_form_headers(runtime.settings)}, token=token, inviter=shown.inviter,
        account_name=shown.account_name,
        email=invitation.email, role=invitation.role.in_words,
        expires=_stamp(invitation.expires_at), github_login_enabled=runtime.settings.github_login_enabled,
    )
