"""The CLI's view of the api: which api and which token, an httpx client for /api/v1, and
the one place where an error answer or a silent api becomes a message and an exit code."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from zc_cli import credentials
from zc_cli.errors import EXIT_API_ERROR, EXIT_UNREACHABLE, EXIT_USAGE, fail

DEFAULT_API_URL = "http://127.0.0.1:8000"
API_PREFIX = "/api/v1"
API_URL_ENV = "ZC_API_URL"
API_TOKEN_ENV = "ZC_API_TOKEN"
TIMEOUT_SECONDS = 30.0


class ApiError(Exception):
    """The api answered with an error status; ``detail`` is its message."""

    def __init__(self, status: int, detail: str, field: str | None, errors: list[dict[str, Any]]) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.field = field
        self.errors = errors


class ApiUnreachable(Exception):
    def __init__(self, api_url: str, reason: str) -> None:
        super().__init__(reason)
        self.api_url = api_url
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """The api to talk to and the token to show it, with where each came from."""

    api_url: str
    token: str | None
    token_source: str | None


def _normalise(url: str) -> str:
    return url.strip().rstrip("/")


def resolve_target(api_url: str | None = None, token: str | None = None) -> Target:
    """--api-url, else ZC_API_URL, else the api of `login`, else the local default; --token,
    else ZC_API_TOKEN, else the stored token — but the stored one only for the api it was
    stored for, so a token never travels to an api it was not meant for."""
    stored_url = credentials.stored_api_url()
    url = _normalise(api_url or os.environ.get(API_URL_ENV) or stored_url or DEFAULT_API_URL)
    if not url.startswith(("http://", "https://")):
        fail(f"the api URL {url!r} is not an http:// or https:// URL (--api-url, {API_URL_ENV})", EXIT_USAGE)
    if token:
        return Target(url, token, "--token")
    if os.environ.get(API_TOKEN_ENV):
        return Target(url, os.environ[API_TOKEN_ENV], API_TOKEN_ENV)
    stored = credentials.stored_token()
    if stored and (stored_url is None or _normalise(stored_url) == url):
        return Target(url, stored, str(credentials.token_path()))
    return Target(url, None, None)


def _error_from(response: httpx.Response) -> ApiError:
    detail: str | None = None
    field: str | None = None
    errors: list[dict[str, Any]] = []
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        raw = body.get("detail")
        if isinstance(raw, str):
            detail = raw
        elif raw is not None:  # FastAPI's own shape: a list of validation errors
            detail = json.dumps(raw)
        field = body.get("field") if isinstance(body.get("field"), str) else None
        if isinstance(body.get("errors"), list):
            errors = [e for e in body["errors"] if isinstance(e, dict)]
    if detail is None:
        text = response.text.strip()
        detail = text[:300] if text else response.reason_phrase
    return ApiError(response.status_code, detail, field, errors)


class ApiClient:
    """Synchronous on purpose: a CLI does one request at a time."""

    def __init__(
        self,
        target: Target,
        *,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.target = target
        headers = {"Accept": "application/json", "User-Agent": "zerocloud-cli"}
        if target.token:
            headers["Authorization"] = f"Bearer {target.token}"
        self._http = httpx.Client(
            base_url=target.api_url + API_PREFIX, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for 204); ApiError or ApiUnreachable otherwise."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = self._http.request(
                method, path, json=body, content=content, params=query, headers=headers
            )
        except httpx.TimeoutException:
            waited = f"no answer within {TIMEOUT_SECONDS:g} seconds"
            raise ApiUnreachable(self.target.api_url, waited) from None
        except httpx.TransportError as error:
            raise ApiUnreachable(self.target.api_url, str(error) or type(error).__name__) from None
        if response.status_code >= 400:
            raise _error_from(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, *, content: bytes | None = None) -> Any:
        return self.request("POST", path, body=body, content=content)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def report(error: ApiError, target: Target) -> str:
    """What a person reads on stderr for an error answer."""
    lines = [f"error (HTTP {error.status}): {error.detail}"]
    if error.field and error.field not in error.detail:
        lines[0] += f" (field: {error.field})"
    for item in error.errors[1:]:  # the first one is already the detail
        lines.append(f"  {item.get('field', '?')}: {item.get('message', '')}")
    if error.status == 401:
        if target.token is None:
            lines.append(
                f"  no token was sent: pass --token, set {API_TOKEN_ENV}, "
                "or run `zerocloud-cli login --token ...`"
            )
        else:
            lines.append(f"  (token from {target.token_source})")
    return "\n".join(lines)


@contextlib.contextmanager
def connect(api_url: str | None = None, token: str | None = None) -> Iterator[ApiClient]:
    """A client whose errors end the command: exit 1 with the api's message for an error
    answer, exit 3 when the api cannot be reached."""
    target = resolve_target(api_url, token)
    client = ApiClient(target)
    try:
        yield client
    except ApiError as error:
        fail(report(error, target), EXIT_API_ERROR)
    except ApiUnreachable as error:
        fail(
            f"could not reach the ZeroCloud api at {error.api_url}: {error.reason}. Is it running? "
            f"Point the CLI at it with --api-url or {API_URL_ENV}.",
            EXIT_UNREACHABLE,
        )
    finally:
        client.close()
