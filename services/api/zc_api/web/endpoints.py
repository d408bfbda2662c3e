"""The start page: where a browser lands."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from zc_api.web.session import ViewerDep

router = APIRouter(include_in_schema=False)


@router.get("/")
async def start(viewer: ViewerDep) -> RedirectResponse:
    if viewer is None:
        return RedirectResponse("/login", status_code=303)
    if viewer.is_admin and viewer.user.account_id is not None:
        return RedirectResponse("/summary", status_code=303)
    return RedirectResponse("/leases", status_code=303)
