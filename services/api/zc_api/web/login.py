"""Signing in and out of the web UI: the sign-in page, the GitHub round trip (its OAuth
state bound to this browser by a cookie and to a single-use login attempt, PKCE for the
code), the sign-up rules, and signing out."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.messages import utcnow
from zc_common.settings import ApiSettings

from zc_api.auth import github, signup, web_sessions
from zc_api.auth.tokens import same
from zc_api.deps import RuntimeDep, SessionDep
from zc_api.invitations import service as invitations
from zc_api.invitations.service import InvitationRefused
from zc_api.models import LoginAttempt
from zc_api.web.render import HEADERS, page
from zc_api.web.session import CsrfDep, ViewerDep, end_session, start_session

router = APIRouter(include_in_schema=False)

# How long a person may spend at GitHub between "Sign in" and the callback.
ATTEMPT_TTL = timedelta(minutes=10)
# Attempts are deleted once expired this long: an expired one can never finish, and each
# anonymous "Sign in" post makes one, so keeping them longer only lets them pile up.
ATTEMPT_KEPT = timedelta(0)
STATE_COOKIE = "zc_signin"

NOTICES = {"signed-out": "You are signed out."}

FROM_ANOTHER_SITE = (
    "This sign-in was started from another site, so ZeroCloud did not start it: another site must not choose "
    "whom you sign in as, or with which invitation. Use the button on ZeroCloud's own sign-in page."
)

NOT_STARTED_HERE = (
    "This sign-in link was not started here or has expired — start again. (Sign-ins must finish in the "
    "browser that started them, within 10 minutes, and each link works once.)"
)


def state_cookie_name(settings: ApiSettings) -> str:
    return f"__Host-{STATE_COOKIE}" if settings.cookie_secure else STATE_COOKIE


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this site, else the start page. Anything
    that a browser could read as another site (//evil.com, https://…, /\\evil.com) is dropped."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    if parts.path in ("/login", "/logout") or parts.path.startswith(("/login/", "/auth/")):
        return "/"
    return value


def from_another_site(request: Request, settings: ApiSettings) -> bool:
    """A form post another site made the browser send (login CSRF): browsers say so in
    Sec-Fetch-Site, and otherwise in an Origin that is not this site's (or "null")."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False  # not a browser, or one that sends neither: nothing to go by
    ours = urlsplit(settings.public_url)
    return origin.rstrip("/").lower() != f"{ours.scheme}://{ours.netloc}".lower()


def sign_in_form_headers(settings: ApiSettings) -> dict[str, str]:
    """The pages' CSP lets a form lead only to this site or https. A GitHub stand-in served
    over http (the sandbox's fake GitHub) must be named, or the browser would stop the
    sign-in form's redirect to it."""
    parts = urlsplit(settings.github_authorize_url)
    if parts.scheme == "https" or not parts.netloc:
        return {}
    policy = HEADERS["Content-Security-Policy"]
    return {"Content-Security-Policy": policy.replace("form-action ", f"form-action {parts.scheme}://{parts.netloc} ")}


def _login_page(
    request: Request, settings: ApiSettings, *, next_path: str, invitation: str | None = None,
    notice: str | None = None, problem: str | None = None, status: int = 200,
) -> HTMLResponse:
    return page(
        request, "login.html", viewer=None, title="Sign in", status=status, headers=sign_in_form_headers(settings),
        enabled=settings.github_login_enabled, next_path=next_path, invitation=invitation, notice=notice,
        problem=problem, callback_url=github.callback_url(settings),
    )


def _refused(request: Request, settings: ApiSettings, message: str, *, status: int, next_path: str = "/") -> HTMLResponse:
    response = page(
        request, "signin_refused.html", viewer=None, title="Not signed in", status=status, message=message,
        start_again=f"/login?next={quote(next_path, safe='/')}" if next_path != "/" else "/login",
    )
    _forget_state(response, settings)
    return response


def _forget_state(response: Response, settings: ApiSettings) -> None:
    response.delete_cookie(
        state_cookie_name(settings), path="/", secure=settings.cookie_secure, httponly=True, samesite="lax"
    )


@router.get("/login", response_class=HTMLResponse)
async def login(
    request: Request, viewer: ViewerDep, runtime: RuntimeDep,
    next_path: Annotated[str | None, Query(alias="next")] = None,
    notice: str | None = None,
    invitation: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    target = safe_next(next_path)
    if viewer is not None and invitation is None:
        if next_path is not None:
            return RedirectResponse(target, status_code=303)
        # Signed in already: say as whom (the layout offers "Sign out").
        return page(request, "login.html", viewer=viewer, title="Signed in", signed_in=True)
    return _login_page(request, runtime.settings, next_path=target, invitation=invitation, notice=NOTICES.get(notice or ""))


@router.post("/login/github")
async def start_github_sign_in(
    request: Request, session: SessionDep, runtime: RuntimeDep,
    next_path: Annotated[str | None, Form(alias="next")] = None,
    invitation: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """A sign-in starts with a POST (never a GET a crawler or a stray link could fire):
    a login attempt with a random state (stored hashed) and a PKCE verifier, the state
    also in a short-lived cookie of this browser, and off to GitHub."""
    settings = runtime.settings
    target = safe_next(next_path)
    if not settings.github_login_enabled:
        return _login_page(request, settings, next_path=target, status=503)
    if from_another_site(request, settings):
        return _login_page(request, settings, next_path=target, status=403, problem=FROM_ANOTHER_SITE)
    now = utcnow()
    invitation_id = None
    if invitation:
        try:
            invitation_id = (await invitations.inspect_token(session, token=invitation, now=now)).id
        except InvitationRefused as refusal:
            return _login_page(
                request, settings, next_path=target, status=refusal.status_code,
                problem=f"{refusal.title}. {refusal.message}",
            )
    await _forget_old_attempts(session, now)
    state = secrets.token_urlsafe(32)
    verifier = github.new_code_verifier()
    await web_sessions.begin_attempt(
        session, state=state, code_verifier=verifier, next_path=target, invitation_id=invitation_id,
        expires_at=now + ATTEMPT_TTL,
    )
    response = RedirectResponse(
        await github.authorize_url(settings, state=state, code_verifier=verifier), status_code=303,
        headers={"Cache-Control": "no-store"},
    )
    response.set_cookie(
        state_cookie_name(settings), state, max_age=int(ATTEMPT_TTL.total_seconds()), path="/",
        secure=settings.cookie_secure, httponly=True, samesite="lax",
    )
    return response


async def _forget_old_attempts(session: AsyncSession, now: datetime) -> None:
    await web_sessions.forget_attempts_expired_before(session, now - ATTEMPT_KEPT)


@router.get("/auth/github/callback")
async def github_callback(
    request: Request, session: SessionDep, runtime: RuntimeDep, viewer: ViewerDep,
    code: Annotated[str | None, Query(max_length=512)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
    error_description: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    settings = runtime.settings
    if not settings.github_login_enabled:
        return _refused(request, settings, "GitHub sign-in is not configured on this ZeroCloud.", status=503)
    now = utcnow()
    attempt = await _use_attempt(session, request, settings, state, now)
    if attempt is None:
        return _refused(request, settings, NOT_STARTED_HERE, status=400)
    if error:
        refusal = github.callback_error(error, error_description, settings=settings)
        return _refused(request, settings, refusal.message, status=refusal.status_code, next_path=attempt.next_path)
    if not code:
        return _refused(
            request, settings, "GitHub came back without a sign-in code. " + github.START_AGAIN, status=400,
            next_path=attempt.next_path,
        )
    try:
        identity = await github.fetch_identity(settings, code=code, code_verifier=attempt.code_verifier)
        admission = await signup.admit(session, identity=identity, invitation_id=attempt.invitation_id, now=now)
    except (github.GitHubRefused, signup.SignUpRefused) as refusal:
        return _refused(request, settings, refusal.message, status=refusal.status_code, next_path=attempt.next_path)
    if viewer is not None:
        # Whoever was signed in on this browser before is not any more.
        await web_sessions.end(session, session_id=viewer.session_id, now=now)
    response = RedirectResponse(attempt.next_path, status_code=303, headers={"Cache-Control": "no-store"})
    await start_session(session, user=admission.user, settings=settings, response=response)
    _forget_state(response, settings)
    return response


async def _use_attempt(
    session: AsyncSession, request: Request, settings: ApiSettings, state: str | None, now: datetime
) -> LoginAttempt | None:
    """The login attempt this callback finishes, marked used in this transaction: its
    state must be the one this browser's cookie holds, unused and unexpired."""
    remembered = request.cookies.get(state_cookie_name(settings))
    if not state or not remembered or not same(state, remembered):
        return None
    return await web_sessions.use_attempt(session, state=state, now=now)


@router.post("/logout")
async def logout(session: SessionDep, runtime: RuntimeDep, person: CsrfDep) -> Response:
    response = RedirectResponse("/login?notice=signed-out", status_code=303, headers={"Cache-Control": "no-store"})
    await end_session(session, viewer=person, settings=runtime.settings, response=response)
    return response
