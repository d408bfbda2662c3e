"""Who is looking at a page: a browser's session cookie resolved to a person, and the
CSRF check every form post goes through. The JSON API never reads this cookie (bearer
tokens only), so a page session cannot be used cross-site against the API."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.errors import NotFound, NotPermitted, ZeroCloudError
from zc_common.messages import Role, utcnow
from zc_common.settings import ApiSettings

from zc_api.auth import web_sessions
from zc_api.auth.principal import Principal
from zc_api.auth.tokens import same
from zc_api.auth.web_sessions import SESSION_MAX_AGE
from zc_api.deps import RuntimeDep, SessionDep
from zc_api.models import User

SESSION_COOKIE = "zc_session"
# Touch last_seen_at (and slide the expiry) at most this often, not on every request.
_TOUCH_EVERY = timedelta(minutes=5)
# A sign-in ends after session_ttl_seconds without use (the server slides that on every
# use), and at the latest SESSION_MAX_AGE after it began: then GitHub is asked again.


def cookie_name(settings: ApiSettings) -> str:
    # __Host- pins the cookie to this host, path / and https: no subdomain can set it.
    return f"__Host-{SESSION_COOKIE}" if settings.cookie_secure else SESSION_COOKIE


class SignInRequired(ZeroCloudError):
    """A page that needs a person: the handler sends the browser to /login?next=…"""

    status_code = 401

    def __init__(self, next_path: str) -> None:
        super().__init__("sign in to see this page")
        self.next_path = next_path


class CsrfRefused(ZeroCloudError):
    status_code = 403

    def __init__(self) -> None:
        super().__init__(
            "This form did not come from a ZeroCloud page you have open, or your session changed since. "
            "Go back, reload the page and try again."
        )


@dataclass(frozen=True)
class Viewer:
    """A signed-in person as pages see them."""

    user: User
    session_id: int
    csrf_token: str

    @property
    def principal(self) -> Principal:
        user = self.user
        return Principal(kind="user", user_id=user.id, account_id=user.account_id, role=user.role, email=user.email)

    @property
    def is_admin(self) -> bool:
        return self.user.role == Role.admin


async def start_session(session: AsyncSession, *, user: User, settings: ApiSettings, response: Response) -> None:
    """Sign ``user`` in on this browser: a new random session token in an HttpOnly,
    SameSite=Lax cookie (Secure over https); the table keeps only its hash."""
    token = secrets.token_urlsafe(32)
    await web_sessions.start(
        session, user=user, token=token, idle=timedelta(seconds=settings.session_ttl_seconds), now=utcnow()
    )
    response.set_cookie(
        # The cookie lives as long as a sign-in can; the server decides when it ended.
        cookie_name(settings), token, max_age=int(SESSION_MAX_AGE.total_seconds()), path="/",
        secure=settings.cookie_secure, httponly=True, samesite="lax",
    )


async def end_session(session: AsyncSession, *, viewer: Viewer, settings: ApiSettings, response: Response) -> None:
    await web_sessions.end(session, session_id=viewer.session_id, now=utcnow())
    response.delete_cookie(cookie_name(settings), path="/", secure=settings.cookie_secure, httponly=True, samesite="lax")


async def get_viewer(request: Request, session: SessionDep, runtime: RuntimeDep) -> Viewer | None:
    settings = runtime.settings
    token = request.cookies.get(cookie_name(settings))
    if not token:
        return None
    now = utcnow()
    found = await web_sessions.find(session, token=token, now=now)
    if found is None:
        return None
    web_session, user = found
    assert web_session.id is not None
    if web_session.last_seen_at is None or now - web_session.last_seen_at > _TOUCH_EVERY:
        await web_sessions.touch(
            session, session_id=web_session.id, idle=timedelta(seconds=settings.session_ttl_seconds), now=now
        )
    # Detached, so a rollback (any refused request: a CSRF refusal, a domain error) does not
    # expire it: the error page rendered after the rollback still reads the viewer's name and role.
    session.expunge(user)
    viewer = Viewer(user=user, session_id=web_session.id, csrf_token=web_session.csrf_token)
    request.state.viewer = viewer  # for the error pages, rendered outside the handler
    return viewer


ViewerDep = Annotated[Viewer | None, Depends(get_viewer)]


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def require_person(request: Request, viewer: ViewerDep) -> Viewer:
    if viewer is None:
        raise SignInRequired(_here(request))
    return viewer


PersonDep = Annotated[Viewer, Depends(require_person)]


async def require_account_member(person: PersonDep) -> Viewer:
    """A person who belongs to an account (a bootstrap admin may not, until they create one)."""
    if person.user.account_id is None:
        raise NotFound("you are not in an account yet")
    return person


MemberDep = Annotated[Viewer, Depends(require_account_member)]


async def require_admin(member: MemberDep) -> Viewer:
    if not member.is_admin:
        raise NotPermitted("only an admin of this account can open this page")
    return member


AdminDep = Annotated[Viewer, Depends(require_admin)]


async def check_csrf(request: Request, person: PersonDep) -> Viewer:
    """Every form a signed-in person posts carries the session's CSRF token (a hidden
    ``csrf_token`` field); anything else is refused before the handler runs."""
    form = await request.form()
    sent = form.get("csrf_token")
    if not isinstance(sent, str) or not same(sent, person.csrf_token):
        raise CsrfRefused()
    return person


CsrfDep = Annotated[Viewer, Depends(check_csrf)]
"""Use on every POST page route of a signed-in person (in place of PersonDep)."""
