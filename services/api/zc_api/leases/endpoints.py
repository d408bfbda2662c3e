"""HTTP routes for reading leases."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from zc_common.messages import LeaseStatus

from zc_api.deps import SessionDep, UserDep
from zc_api.errors import responses
from zc_api.leases import service
from zc_api.leases.schemas import LeasePublic
from zc_api.pagination import Page, PageDep

router = APIRouter(tags=["leases"])


@router.get(
    "/leases", response_model=Page[LeasePublic], responses=responses(401, 404, 422),
    summary="List leases, soonest expiry first (admin: the account's; developer: your own)",
)
async def list_leases(
    session: SessionDep,
    caller: UserDep,
    page: PageDep,
    owner: Annotated[str | None, Query(max_length=320, description="The owner's email.")] = None,
    status: LeaseStatus | None = None,
    cloud_account_id: int | None = None,
    expires_before: Annotated[datetime | None, Query(description="ISO 8601; UTC when no zone.")] = None,
    instance_id: Annotated[str | None, Query(max_length=32)] = None,
) -> Page[LeasePublic]:
    rows, count = await service.get_all(
        session, caller=caller, page=page, owner=owner, status=status, cloud_account_id=cloud_account_id,
        expires_before=expires_before, instance_id=instance_id,
    )
    return Page(data=[LeasePublic.of(lease, resource) for lease, resource in rows], count=count,
                limit=page.limit, offset=page.offset)


@router.get(
    "/leases/{lease_id}", response_model=LeasePublic, responses=responses(401, 404, 422),
    summary="Get a lease",
)
async def get_lease(lease_id: int, session: SessionDep, caller: UserDep) -> LeasePublic:
    lease, resource = await service.get(session, caller=caller, lease_id=lease_id)
    return LeasePublic.of(lease, resource)
