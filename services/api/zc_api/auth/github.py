"""Signing in with GitHub: the OAuth authorization-code flow with PKCE (S256), and who
GitHub says the person is. Every way GitHub can fail becomes a ``GitHubRefused`` with a
sentence a person can act on, never a 500."""

from __future__ import annotations

import functools
import logging
import secrets
import ssl
import warnings
from dataclasses import dataclass
from typing import Any

# authlib ships no types, and types-authlib (1.8) lags the authlib we pin and imports httpx2.
import authlib.deprecate  # type: ignore[import-untyped]
import httpx

from zc_common.settings import ApiSettings

with warnings.catch_warnings():
    # authlib 1.9 prefers the httpx2 package and warns, on import, that it falls back to
    # httpx; httpx is what we pin, so the warning would only be noise in every log. (The
    # filter is added after authlib.deprecate installed its own, so it takes precedence.)
    warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError  # type: ignore[import-untyped]

log = logging.getLogger("zc.api.github")

SCOPE = "read:user user:email"
CALLBACK_PATH = "/auth/github/callback"
# Each call to GitHub (token exchange, /user, /user/emails) gets this long.
TIMEOUT = httpx.Timeout(10.0)


@dataclass(frozen=True)
class GitHubIdentity:
    """A person as GitHub vouches for them after the sign-in."""

    github_id: int
    login: str
    name: str | None
    email: str
    """The primary verified email, lower-cased."""
    verified_emails: tuple[str, ...]
    """Every verified email, lower-cased, the primary first."""


class GitHubRefused(Exception):
    """GitHub did not sign this person in; ``message`` says what happened and what to do."""

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


START_AGAIN = "Start the sign-in again from the ZeroCloud sign-in page."

# What GitHub's own error codes mean for the person in front of the page.
_CALLBACK_ERRORS = {
    "access_denied": "You cancelled the sign-in on GitHub (or did not authorize ZeroCloud), so you are not "
    "signed in. " + START_AGAIN,
    "application_suspended": "GitHub has suspended ZeroCloud's OAuth app, so nobody can sign in with GitHub "
    "until its owner restores it. Tell your ZeroCloud operator.",
    "redirect_uri_mismatch": "GitHub refused ZeroCloud's callback address. The operator must set the OAuth "
    "app's callback URL to {callback}.",
}
_TOKEN_ERRORS = {
    "bad_verification_code": "GitHub did not accept the sign-in code: it was already used, has expired, or "
    "was not issued for this sign-in. " + START_AGAIN,
    "incorrect_client_credentials": "GitHub does not recognise ZeroCloud's OAuth app credentials. The "
    "operator must check ZC_GITHUB_CLIENT_ID and ZC_GITHUB_CLIENT_SECRET.",
    "redirect_uri_mismatch": _CALLBACK_ERRORS["redirect_uri_mismatch"],
    "unverified_user_email": "GitHub says your account's email address is not verified yet. Verify an email "
    "address on GitHub first, then sign in again.",
}


def callback_url(settings: ApiSettings) -> str:
    return settings.public_url.rstrip("/") + CALLBACK_PATH


def new_code_verifier() -> str:
    # RFC 7636: 43 to 128 characters of [A-Za-z0-9-._~]; 64 random bytes give 86.
    return secrets.token_urlsafe(64)


@functools.lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One TLS context for every sign-in: making one loads the CA bundle, about 20 ms of
    CPU on the event loop, which every other tenant's request would wait behind."""
    return httpx.create_ssl_context()


def _client(settings: ApiSettings) -> AsyncOAuth2Client:
    assert settings.github_login_enabled, "GitHub sign-in is not configured"
    return AsyncOAuth2Client(
        verify=_tls(),
        client_id=settings.github_client_id,
        client_secret=settings.github_client_secret,
        # GitHub documents the client's credentials in the form body.
        token_endpoint_auth_method="client_secret_post",
        scope=SCOPE,
        redirect_uri=callback_url(settings),
        code_challenge_method="S256",
        timeout=TIMEOUT,
        headers={"User-Agent": "ZeroCloud", "Accept": "application/json"},
    )


async def authorize_url(settings: ApiSettings, *, state: str, code_verifier: str) -> str:
    """Where to send the browser: GitHub's authorize page for this sign-in."""
    async with _client(settings) as client:
        url, _ = client.create_authorization_url(
            settings.github_authorize_url, state=state, code_verifier=code_verifier
        )
    return str(url)


def callback_error(error: str, description: str | None, *, settings: ApiSettings) -> GitHubRefused:
    """The refusal for a callback GitHub sent with ``error=…`` instead of a code."""
    known = _CALLBACK_ERRORS.get(error)
    if known is not None:
        return GitHubRefused(known.format(callback=callback_url(settings)))
    detail = f" ({description})" if description else ""
    return GitHubRefused(f"GitHub could not sign you in: {error}{detail}. {START_AGAIN}")


async def fetch_identity(settings: ApiSettings, *, code: str, code_verifier: str) -> GitHubIdentity:
    """Exchange the callback's code (with this sign-in's PKCE verifier) for a token, then
    read who the person is and their verified emails."""
    async with _client(settings) as client:
        try:
            await client.fetch_token(
                settings.github_token_url, grant_type="authorization_code", code=code, code_verifier=code_verifier
            )
        except OAuthError as error:
            raise _token_refusal(error.error, error.description, settings=settings) from None
        except httpx.TimeoutException:
            raise _unreachable("did not answer in time") from None
        except (httpx.HTTPError, ValueError) as error:
            log.warning("GitHub token exchange failed: %s", error)
            raise _unreachable("answered the sign-in with an error") from None
        user = await _read(client, f"{settings.github_api_url.rstrip('/')}/user")
        emails = await _read(client, f"{settings.github_api_url.rstrip('/')}/user/emails")
    return identity_from(user, emails)


def _token_refusal(error: str | None, description: str | None, *, settings: ApiSettings) -> GitHubRefused:
    known = _TOKEN_ERRORS.get(error or "")
    if known is not None:
        status = 503 if error == "incorrect_client_credentials" else 400
        return GitHubRefused(known.format(callback=callback_url(settings)), status_code=status)
    detail = f" ({description})" if description else ""
    return GitHubRefused(f"GitHub refused the sign-in: {error or 'unknown error'}{detail}. {START_AGAIN}")


def _unreachable(what: str) -> GitHubRefused:
    return GitHubRefused(f"GitHub {what}, so you are not signed in. Try again in a moment.", status_code=502)


async def _read(client: AsyncOAuth2Client, url: str) -> Any:
    try:
        response = await client.get(url, headers={"Accept": "application/vnd.github+json"})
    except httpx.TimeoutException:
        raise _unreachable("did not answer in time") from None
    except httpx.HTTPError as error:
        log.warning("GitHub %s failed: %s", url, error)
        raise _unreachable("could not be reached") from None
    if response.status_code != 200:
        log.warning("GitHub %s answered %s: %s", url, response.status_code, response.text[:200])
        raise _unreachable(f"answered {response.status_code} when ZeroCloud asked who you are")
    try:
        return response.json()
    except ValueError:
        raise _unreachable("answered with something that is not JSON") from None


def identity_from(user: Any, emails: Any) -> GitHubIdentity:
    """The identity from GitHub's /user and /user/emails answers."""
    if not isinstance(user, dict) or not isinstance(user.get("id"), int) or not isinstance(user.get("login"), str):
        raise _unreachable("answered /user without an id and login")
    if not isinstance(emails, list):
        raise _unreachable("answered /user/emails with something that is not a list")
    verified = [
        (bool(entry.get("primary")), entry["email"].strip().lower())
        for entry in emails
        if isinstance(entry, dict) and entry.get("verified") is True and isinstance(entry.get("email"), str)
    ]
    if not verified:
        raise GitHubRefused(
            f"Your GitHub account {user['login']} has no verified email address, and ZeroCloud needs one to know "
            "who you are. Verify an email on GitHub first (Settings → Emails), then sign in again.",
            status_code=403,
        )
    # The primary first; if the primary itself is unverified, the first verified one stands in.
    ordered = [email for primary, email in verified if primary] + [email for primary, email in verified if not primary]
    ordered = list(dict.fromkeys(ordered))
    name = user.get("name")
    return GitHubIdentity(
        github_id=user["id"], login=user["login"], name=name if isinstance(name, str) and name.strip() else None,
        email=ordered[0], verified_emails=tuple(ordered),
    )
