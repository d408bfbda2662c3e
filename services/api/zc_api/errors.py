"""The one place errors become HTTP responses: the ZeroCloudError family and request
validation, both as JSON naming the field that was wrong."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from zc_common.errors import ZeroCloudError


class ErrorBody(BaseModel):
    detail: str
    field: str | None = None
    errors: list[dict[str, Any]] | None = None


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the error codes an endpoint can answer."""
    return {code: {"model": ErrorBody} for code in codes}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


# Paths that answer JSON; everything else is a page for a person and answers HTML.
JSON_PREFIXES = ("/api/", "/internal/", "/healthz", "/readyz", "/metrics", "/openapi.json")

_TITLES = {401: "Sign in needed", 403: "Not allowed", 404: "Not found", 409: "Conflict", 413: "Too large",
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


def install(app: FastAPI) -> None:
    @app.exception_handler(ZeroCloudError)
    async def zerocloud_error(request: Request, error: ZeroCloudError) -> Response:
        if wants_page(request):
            return _page_for(request, error)
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        body = ErrorBody(detail=error.message, field=error.field)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=error.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        items = [
            {"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]} for e in error.errors()
        ]
        first = items[0] if items else {"field": "body", "message": "invalid request"}
        if wants_page(request):
            message = f"{first['field']}: {first['message']}"
            return _page_for(request, _Invalid(message))
        body = ErrorBody(detail=f"{first['field']}: {first['message']}", field=first["field"], errors=items)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)


class _Invalid(ZeroCloudError):
    status_code = 422
