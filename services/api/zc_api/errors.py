"""The one place errors become HTTP responses: the ZeroCloudError family and request
validation, both as JSON naming the field that was wrong."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


def install(app: FastAPI) -> None:
    @app.exception_handler(ZeroCloudError)
    async def zerocloud_error(_: Request, error: ZeroCloudError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status_code == 401 else None
        body = ErrorBody(detail=error.message, field=error.field)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=error.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        items = [
            {"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]} for e in error.errors()
        ]
        first = items[0] if items else {"field": "body", "message": "invalid request"}
        body = ErrorBody(detail=f"{first['field']}: {first['message']}", field=first["field"], errors=items)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)
