"""Reading resources: an admin sees the account's, a developer those they hold a live lease on."""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, false, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotFound
from zc_common.messages import LIVE_LEASE_STATUSES, InstanceState

from zc_api.auth.principal import Principal
from zc_api.models import Lease, Resource
from zc_api.pagination import KeysetRows, PageParams, SortKey, paginate_keyset

LIVE = sorted(status.value for status in LIVE_LEASE_STATUSES)
BY_ID = SortKey("resources:id", (col(Resource.id),), ("int32",))


def visible_to(caller: Principal) -> list[ColumnElement[bool]]:
    """The conditions under which ``caller`` may see a resource."""
    if caller.kind != "user" or caller.account_id is None:
        return [false()]
    conditions = [col(Resource.account_id) == caller.account_id]
    if not caller.is_admin:
        conditions.append(
            exists().where(
                col(Lease.resource_id) == col(Resource.id),
                col(Lease.owner_user_id) == caller.user_id,
                col(Lease.status).in_(LIVE),
            )
        )
    return conditions


async def get(session: AsyncSession, *, caller: Principal, resource_id: int) -> Resource:
    row = await session.scalar(select(Resource).where(col(Resource.id) == resource_id, *visible_to(caller)))
    if row is None:
        raise NotFound(f"resource {resource_id} not found")
    return row


async def get_all(
    session: AsyncSession,
    *,
    caller: Principal,
    page: PageParams,
    cloud_account_id: int | None = None,
    region: str | None = None,
    state: InstanceState | None = None,
    instance_id: str | None = None,
) -> KeysetRows[Resource]:
    query = select(Resource).where(*visible_to(caller))
    if cloud_account_id is not None:
        query = query.where(col(Resource.cloud_account_id) == cloud_account_id)
    if region is not None:
        query = query.where(col(Resource.region) == region)
    if state is not None:
        query = query.where(col(Resource.state) == state.value)
    if instance_id is not None:
        query = query.where(col(Resource.instance_id) == instance_id)
    return await paginate_keyset(session, query, page, BY_ID)
