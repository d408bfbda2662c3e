"""Refuses, before any route runs, what no route could store or even read: U+0000 in
the path, the query, a header or a JSON or form body (PostgreSQL text cannot hold it),
and a JSON body that is not JSON. A 422 naming the field, in the error family's shape,
instead of a 500 from the database or an undocumented 400 from the body parser."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from zc_common.unstorable import NUL, find_nul, where

_JSON_TYPES = ("application/json",)
_FORM_TYPE = "application/x-www-form-urlencoded"


class Refused(Exception):
    """``reason`` says what is wrong with ``field`` and what to do."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _nul_in(field: str) -> Refused:
    return Refused(field, "contains U+0000 (a NUL character), which ZeroCloud cannot store: remove it")


def check_json(body: bytes) -> None:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        reason = "it is not UTF-8" if isinstance(error, UnicodeDecodeError) else error.msg
        raise Refused("body", f"not JSON ({reason}): send a JSON document") from None
    except RecursionError:
        raise Refused("body", "nested too deeply to be read") from None
    found = find_nul(document)
    if found is not None:
        # As request validation names body fields: "name", "regions.0"; the whole body: "body".
        raise _nul_in(where(found))


def check_form(body: bytes) -> None:
    for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
        if NUL in name or NUL in value:
            raise _nul_in(name.replace(NUL, "") or "body")


def check_head(scope: Scope) -> None:
    """The path, the query string and the headers."""
    if NUL in scope.get("path", ""):
        raise _nul_in("path")
    query = scope.get("query_string", b"").decode("latin-1")
    for name, value in parse_qsl(query, keep_blank_values=True):
        if NUL in name or NUL in value:
            raise _nul_in(f"query.{name.replace(NUL, '')}")
    for name, value in scope.get("headers", []):
        if b"\x00" in value or b"\x00" in name:
            raise _nul_in("header." + name.decode("latin-1").replace(NUL, ""))


def _media_type(scope: Scope) -> str:
    headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


def _is_json(media_type: str) -> bool:
    return media_type in _JSON_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


class RequestGuard:
    """ASGI middleware. A body it checks is read whole first, no further than
    ``max_body_bytes``: past that it passes the request on untouched, for the routes'
    own limit (413) to refuse."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, respond: Any) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # respond(request, field, reason) -> Response: the error family's answer.
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            check_head(scope)
        except Refused as refused:
            await self._refuse(scope, refused, send)
            return
        media_type = _media_type(scope)
        checker = check_json if _is_json(media_type) else check_form if media_type == _FORM_TYPE else None
        if checker is None:
            await self.app(scope, receive, send)
            return

        chunks: list[Message] = []
        size, complete = 0, False
        while not complete:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            complete = not message.get("more_body", False)
            if size > self.max_body_bytes:
                break
        if complete and size:
            body = b"".join(m.get("body", b"") for m in chunks)
            try:
                checker(body)
            except Refused as refused:
                await self._refuse(scope, refused, send)
                return

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, refused: Refused, send: Send) -> None:
        response = self.respond(Request(scope), refused.field, refused.reason)
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
