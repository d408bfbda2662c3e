"""HTTP routes for leases: reading them, and what owners and admins do to them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from zc_common.messages import LeaseStatus

from zc_api.bounds import RowId, UtcDateTime
from zc_api.deps import SessionDep, UserDep
from zc_api.errors import responses
from zc_api.leases import actions, service
from zc_api.leases.repository import LeaseRecord
from zc_api.leases.schemas import LeaseExemption, LeaseOwnerChange, LeasePublic, LeaseRenewal
from zc_api.pagination import KeysetPage, KeysetPageDep

router = APIRouter(tags=["leases"])


@router.get(
    "/leases", response_model=KeysetPage[LeasePublic], responses=responses(401, 404, 422),
    summary="List leases, soonest expiry first (admin: the account's; developer: your own)",
)
async def list_leases(
    session: SessionDep,
    caller: UserDep,
    page: KeysetPageDep,
    owner: Annotated[str | None, Query(max_length=320, description="The owner's email.")] = None,
    status: LeaseStatus | None = None,
    cloud_account_id: RowId | None = None,
    expires_before: Annotated[UtcDateTime | None, Query(description="ISO 8601; UTC when no zone.")] = None,
    instance_id: Annotated[str | None, Query(max_length=32)] = None,
) -> KeysetPage[LeasePublic]:
    found = await service.get_all(
        session, caller=caller, page=page, owner=owner, status=status, cloud_account_id=cloud_account_id,
        expires_before=expires_before, instance_id=instance_id,
    )
    return KeysetPage(
        data=[LeasePublic.of(lease, resource) for lease, resource in found.rows], count=found.count,
        count_at_least=found.count_at_least, next_cursor=found.next_cursor, limit=page.limit, offset=page.offset,
    )


@router.get(
    "/leases/{lease_id}", response_model=LeasePublic, responses=responses(401, 404, 422),
    summary="Get a lease",
)
async def get_lease(lease_id: RowId, session: SessionDep, caller: UserDep) -> LeasePublic:
    lease, resource = await service.get(session, caller=caller, lease_id=lease_id)
    return LeasePublic.of(lease, resource)


def _public(record: LeaseRecord) -> LeasePublic:
    return LeasePublic.of(record.lease, record.resource)


@router.post(
    "/leases/{lease_id}/renew", response_model=LeasePublic, responses=responses(401, 404, 409, 413, 422),
    summary="Renew a lease by a duration or to a time, within the maximum lease (owner or admin)",
)
async def renew_lease(lease_id: RowId, body: LeaseRenewal, session: SessionDep, caller: UserDep) -> LeasePublic:
    record = await actions.renew(
        session, caller=caller, lease_id=lease_id, extend_by_seconds=body.extend_by_seconds, until=body.until
    )
    return _public(record)


@router.post(
    "/leases/{lease_id}/shutdown", response_model=LeasePublic, responses=responses(401, 404, 409, 422),
    summary="Expire a lease now: its instance is stopped or terminated per policy (owner or admin)",
)
async def shutdown_lease(lease_id: RowId, session: SessionDep, caller: UserDep) -> LeasePublic:
    return _public(await actions.shutdown(session, caller=caller, lease_id=lease_id))


@router.post(
    "/leases/{lease_id}/exempt", response_model=LeasePublic, responses=responses(401, 403, 404, 409, 413, 422),
    summary="Exempt a lease from expiry, with a reason, optionally until a time (admin)",
)
async def exempt_lease(lease_id: RowId, body: LeaseExemption, session: SessionDep, caller: UserDep) -> LeasePublic:
    record = await actions.exempt(session, caller=caller, lease_id=lease_id, reason=body.reason, until=body.until)
    return _public(record)


@router.post(
    "/leases/{lease_id}/owner", response_model=LeasePublic, responses=responses(401, 403, 404, 409, 413, 422),
    summary="Give a lease to another user of the account (admin)",
)
async def change_lease_owner(
    lease_id: RowId, body: LeaseOwnerChange, session: SessionDep, caller: UserDep
) -> LeasePublic:
    return _public(await actions.change_owner(session, caller=caller, lease_id=lease_id, email=body.email))
