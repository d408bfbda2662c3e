"""Every page route of the web UI, collected in one place so none is forgotten."""

from __future__ import annotations

from fastapi import APIRouter

from zc_api.web.endpoints import router as start

router = APIRouter(include_in_schema=False)
for pages in (start,):
    router.include_router(pages)
