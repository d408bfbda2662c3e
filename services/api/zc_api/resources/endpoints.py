"""HTTP routes for resources."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from zc_common.messages import InstanceState

from zc_api.bounds import RowId
from zc_api.deps import SessionDep, UserDep
from zc_api.errors import responses
from zc_api.pagination import KeysetPage, KeysetPageDep
from zc_api.resources import service
from zc_api.resources.schemas import ResourcePublic

router = APIRouter(tags=["resources"])


@router.get(
    "/resources", response_model=KeysetPage[ResourcePublic], responses=responses(401, 404, 422),
    summary="List instances (admin: the account's; developer: those you hold a lease on)",
)
async def list_resources(
    session: SessionDep,
    caller: UserDep,
    page: KeysetPageDep,
    cloud_account_id: RowId | None = None,
    region: str | None = None,
    state: InstanceState | None = None,
    instance_id: Annotated[str | None, Query(max_length=32)] = None,
) -> KeysetPage[ResourcePublic]:
    found = await service.get_all(
        session, caller=caller, page=page, cloud_account_id=cloud_account_id, region=region, state=state,
        instance_id=instance_id,
    )
    return KeysetPage(
        data=[ResourcePublic.model_validate(row[0]) for row in found.rows], count=found.count,
        count_at_least=found.count_at_least, next_cursor=found.next_cursor, limit=page.limit, offset=page.offset,
    )


@router.get(
    "/resources/{resource_id}", response_model=ResourcePublic, responses=responses(401, 404, 422),
    summary="Get an instance",
)
async def get_resource(resource_id: RowId, session: SessionDep, caller: UserDep) -> ResourcePublic:
    return ResourcePublic.model_validate(await service.get(session, caller=caller, resource_id=resource_id))
