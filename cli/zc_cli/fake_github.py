"""A fake GitHub for "Sign in with GitHub", as moto stands in for AWS: the OAuth
endpoints (authorize, access_token) and the two REST calls ZeroCloud makes (/user,
/user/emails). It is strict — client credentials, redirect URI, single-use codes that
expire, PKCE S256 — so a sign-in that works against it follows the protocol. Used by the
tests and by the sandbox (its authorize page lets you pick or type who you are)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import html
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

CODE_TTL_SECONDS = 600.0  # GitHub's codes expire after 10 minutes
DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"


@dataclass
class FakeIdentity:
    """A GitHub user the fake can sign in as. ``id`` defaults to a number derived from the
    login (stable across runs); set it to model a renamed login."""

    login: str
    email: str | None
    name: str | None = None
    id: int | None = None
    email_verified: bool = True
    other_verified_emails: tuple[str, ...] = ()
    unverified_emails: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.id is None:
            self.id = 1_000_000 + int(hashlib.sha256(self.login.lower().encode()).hexdigest()[:7], 16)

    def user_json(self) -> dict[str, Any]:
        return {
            "login": self.login, "id": self.id, "node_id": f"U_{self.id}", "type": "User", "site_admin": False,
            "name": self.name, "email": self.email if self.email_verified else None,
            "avatar_url": "", "html_url": f"https://github.com/{self.login}",
        }

    def emails_json(self) -> list[dict[str, Any]]:
        emails = []
        if self.email:
            emails.append({"email": self.email, "primary": True, "verified": self.email_verified, "visibility": "private"})
        emails += [{"email": e, "primary": False, "verified": True, "visibility": None} for e in self.other_verified_emails]
        emails += [{"email": e, "primary": False, "verified": False, "visibility": None} for e in self.unverified_emails]
        return emails


@dataclass
class _Grant:
    identity: FakeIdentity
    client_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    issued: float
    used: bool = False


@dataclass
class FakeGitHubState:
    """What the fake remembers; tests may read or change it (``identities`` is the very
    list given to ``create_fake_github``)."""

    client_id: str
    client_secret: str
    identities: list[FakeIdentity]
    callback_url: str | None = None
    code_ttl_seconds: float = CODE_TTL_SECONDS
    codes: dict[str, _Grant] = field(default_factory=dict)
    tokens: dict[str, tuple[FakeIdentity, str]] = field(default_factory=dict)

    def find(self, login: str) -> FakeIdentity | None:
        return next((i for i in self.identities if i.login.lower() == login.lower()), None)


def s256(code_verifier: str) -> str:
    """PKCE S256: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


_AUTHORIZE_FIELDS = ("client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method", "scope")


def create_fake_github(
    client_id: str, client_secret: str, identities: list[FakeIdentity], *, callback_url: str | None = None,
    code_ttl_seconds: float = CODE_TTL_SECONDS,
) -> FastAPI:
    """The fake GitHub app. ``identities`` is kept by reference: add to it while it runs.
    ``callback_url``, when given, is the OAuth app's registered callback: a redirect_uri
    must start with it (as GitHub requires)."""
    state = FakeGitHubState(client_id, client_secret, identities, callback_url, code_ttl_seconds)
    app = FastAPI(title="Fake GitHub", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.fake = state

    def authorize_problem(params: dict[str, str]) -> str | None:
        if params.get("client_id") != state.client_id:
            return "The client_id is not that of a registered OAuth app."
        redirect = params.get("redirect_uri", "")
        parts = urlsplit(redirect)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return "The redirect_uri is missing or not an http(s) URL."
        if state.callback_url and not redirect.startswith(state.callback_url):
            return "The redirect_uri is not associated with this application."
        if not params.get("state"):
            return "No state was sent (ZeroCloud must always send one)."
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE is required here: send code_challenge with code_challenge_method=S256."
        if params.get("response_type", "code") != "code":
            return "Only response_type=code is supported."
        return None

    @app.get("/login/oauth/authorize")
    async def authorize_page(request: Request) -> Response:
        params = dict(request.query_params)
        problem = authorize_problem(params)
        if problem:
            return HTMLResponse(_page("Cannot sign in", f"<p>{html.escape(problem)}</p>"), status_code=400)
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(params.get(name, ""), quote=True)}">'
            for name in _AUTHORIZE_FIELDS
        )
        people = "".join(
            f'<li><button type="submit" name="login" value="{html.escape(i.login, quote=True)}">'
            f"{html.escape(i.login)} ({html.escape(i.email or 'no email')})</button></li>"
            for i in state.identities
        )
        body = (
            f'<form method="post" action="/login/oauth/authorize">{hidden}'
            f'<ul>{people or "<li>Nobody yet: add someone below.</li>"}</ul></form>'
            f'<h2>Someone new</h2><form method="post" action="/login/oauth/authorize">{hidden}'
            '<label for="new-login">GitHub login</label><input id="new-login" name="new_login" required>'
            '<label for="new-email">Verified email</label><input id="new-email" name="new_email" type="email" required>'
            '<button type="submit">Sign in as them</button></form>'
            f'<form method="post" action="/login/oauth/authorize">{hidden}'
            '<button type="submit" name="cancel" value="1">Cancel</button></form>'
        )
        return HTMLResponse(_page("Sign in to ZeroCloud as…", body))

    @app.post("/login/oauth/authorize")
    async def authorize(request: Request) -> Response:
        form = _form(await request.body())
        problem = authorize_problem(form)
        if problem:
            return HTMLResponse(_page("Cannot sign in", f"<p>{html.escape(problem)}</p>"), status_code=400)
        redirect_uri, oauth_state = form["redirect_uri"], form["state"]
        if form.get("cancel"):
            return _redirect(redirect_uri, {
                "error": "access_denied", "error_description": "The user has denied your application access.",
                "error_uri": DOCS, "state": oauth_state,
            })
        if form.get("new_login"):
            identity = state.find(form["new_login"].strip())
            if identity is None:
                identity = FakeIdentity(login=form["new_login"].strip(), email=form.get("new_email", "").strip() or None)
                state.identities.append(identity)
        else:
            identity = state.find(form.get("login", ""))
        if identity is None:
            return HTMLResponse(_page("Cannot sign in", "<p>No such user here.</p>"), status_code=400)
        code = secrets.token_hex(10)
        state.codes[code] = _Grant(
            identity=identity, client_id=form["client_id"], redirect_uri=redirect_uri,
            code_challenge=form["code_challenge"], scope=form.get("scope", ""), issued=time.monotonic(),
        )
        return _redirect(redirect_uri, {"code": code, "state": oauth_state})

    @app.post("/login/oauth/access_token")
    async def access_token(request: Request) -> Response:
        form = _form(await request.body())
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            with contextlib.suppress(ValueError):
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        wants_json = "application/json" in request.headers.get("accept", "")

        def answer(values: dict[str, str]) -> Response:
            # GitHub answers 200 even for errors, form-encoded unless JSON is asked for.
            if wants_json:
                return JSONResponse(values)
            return PlainTextResponse(urlencode(values), media_type="application/x-www-form-urlencoded")

        def refuse(error: str, description: str) -> Response:
            return answer({"error": error, "error_description": description, "error_uri": DOCS})

        if client_id != state.client_id or not hmac.compare_digest(client_secret, state.client_secret):
            return refuse("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
        grant = state.codes.get(form.get("code", ""))
        if grant is None or grant.used or grant.client_id != client_id:
            return refuse("bad_verification_code", "The code passed is incorrect or expired.")
        grant.used = True  # whatever happens next, a code is good for one try
        if time.monotonic() - grant.issued > state.code_ttl_seconds:
            return refuse("bad_verification_code", "The code passed is incorrect or expired.")
        if form.get("redirect_uri", grant.redirect_uri) != grant.redirect_uri:
            return refuse("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL.")
        verifier = form.get("code_verifier", "")
        if not verifier or not hmac.compare_digest(s256(verifier), grant.code_challenge):
            return refuse("bad_verification_code", "The code_verifier does not match the code_challenge.")
        token = "gho_" + secrets.token_urlsafe(27)
        state.tokens[token] = (grant.identity, grant.scope)
        return answer({"access_token": token, "token_type": "bearer", "scope": grant.scope.replace(" ", ",")})

    def bearer(request: Request) -> tuple[FakeIdentity, str] | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        return state.tokens.get(token.strip())

    unauthorized = {"message": "Requires authentication", "documentation_url": "https://docs.github.com/rest"}

    @app.get("/user")
    async def user(request: Request) -> Response:
        found = bearer(request)
        if found is None:
            return JSONResponse(unauthorized, status_code=401)
        return JSONResponse(found[0].user_json())

    @app.get("/user/emails")
    async def user_emails(request: Request) -> Response:
        found = bearer(request)
        if found is None:
            return JSONResponse(unauthorized, status_code=401)
        identity, scope = found
        if not {"user:email", "user"} & set(scope.replace(",", " ").split()):
            return JSONResponse({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, 404)
        return JSONResponse(identity.emails_json())

    return app


def _form(body: bytes) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(body.decode(), keep_blank_values=True).items()}


def _redirect(redirect_uri: str, params: dict[str, str]) -> RedirectResponse:
    separator = "&" if "?" in redirect_uri else "?"
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode(params)}", status_code=302)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} · Fake GitHub</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
        f"<body><p>Fake GitHub (a stand-in for github.com)</p><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def github_settings(base_url: str, client_id: str, client_secret: str) -> dict[str, str]:
    """The api settings (ApiSettings field names) that send its GitHub sign-in here."""
    base = base_url.rstrip("/")
    return {
        "github_client_id": client_id, "github_client_secret": client_secret,
        "github_authorize_url": f"{base}/login/oauth/authorize",
        "github_token_url": f"{base}/login/oauth/access_token",
        "github_api_url": base,
    }


