"""The one place errors become HTTP responses: the ZeroCloudError family, request
validation and the request guard's refusals (U+0000, a body that is not JSON), all as
JSON naming the field that was wrong (or, for a person's page, as a page)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError

from zc_common.errors import ZeroCloudError

from zc_api.database import is_unstorable

log = logging.getLogger("zc.api")


class ErrorBody(BaseModel):
    detail: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the error codes an endpoint can answer; 422 always, since
    the request guard refuses U+0000 in any request (a header is enough). An endpoint
    taking a body lists 413 (the routers' size cap)."""
    return {code: {"model": ErrorBody} for code in sorted({*codes, 422})}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


# Paths that answer JSON; everything else is a page for a person and answers HTML.
JSON_PREFIXES = ("/api/", "/internal/", "/healthz", "/readyz", "/metrics", "/openapi.json")

_TITLES = {401: "Sign in needed", 403: "Not allowed", 404: "Not found", 409: "Conflict", 410: "No longer valid",
           413: "Too large",
           422: "Please check what you entered"}


def wants_page(request: Request) -> bool:
    return not request.url.path.startswith(JSON_PREFIXES)


def _page_for(request: Request, error: ZeroCloudError) -> Response:
    from urllib.parse import quote

    from zc_api.web.render import error_page
    from zc_api.web.session import SignInRequired

    if isinstance(error, SignInRequired):
        return RedirectResponse(f"/login?next={quote(error.next_path, safe='/')}", status_code=303)
    viewer = getattr(request.state, "viewer", None)
    title = _TITLES.get(error.status_code, "Something went wrong")
    return error_page(request, viewer=viewer, status=error.status_code, title=title, message=error.message)


def _refusal(request: Request, field: str, reason: str) -> Response:
    """What the request guard answers: the shape of a validation error, JSON or a page."""
    message = f"{field}: {reason}"
    if wants_page(request):
        return _page_for(request, _Invalid(message))
    body = ErrorBody(detail=message, field=field, errors=[{"field": field, "message": reason, "type": "refused"}])
    return JSONResponse(body.model_dump(exclude_none=True), status_code=422)


def install(app: FastAPI) -> None:
    from zc_api.request_guard import RequestGuard
    from zc_api.routes import MAX_BODY_BYTES

    app.add_middleware(RequestGuard, max_body_bytes=MAX_BODY_BYTES, respond=_refusal)

    @app.exception_handler(ZeroCloudError)
    async def zerocloud_error(request: Request, error: ZeroCloudError) -> Response:
        if wants_page(request):
            return _page_for(request, error)
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        body = ErrorBody(detail=error.message, field=error.field)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=error.status_code, headers=headers)

    @app.exception_handler(DBAPIError)
    async def unstorable(request: Request, error: DBAPIError) -> Response:
        # The last line of defence: every input has a bound (bounds.py, the schemas, the
        # request guard), so this answering means one is missing: logged to be added.
        if not is_unstorable(error):
            raise error
        log.warning("a value the database cannot hold reached %s %s (a bound is missing): %s",
                    request.method, request.url.path, error.orig)
        message = "a value in this request is out of range for ZeroCloud: check the ids, numbers, times and text sent"
        if wants_page(request):
            return _page_for(request, _Invalid(message))
        return JSONResponse(ErrorBody(detail=message).model_dump(exclude_none=True), status_code=422)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        items = [
            # A validator's own sentence, without pydantic's "Value error, " before it.
            {"field": _field(e["loc"]), "message": str(e["msg"]).removeprefix("Value error, "), "type": e["type"]}
            for e in error.errors()
        ]
        first = items[0] if items else {"field": "body", "message": "invalid request"}
        if wants_page(request):
            message = f"{first['field']}: {first['message']}"
            return _page_for(request, _Invalid(message))
        body = ErrorBody(detail=f"{first['field']}: {first['message']}", field=first["field"], errors=items)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)


class _Invalid(ZeroCloudError):
    status_code = 422
