"""HTTP routes for cloud accounts."""

from __future__ import annotations

from fastapi import APIRouter

from zc_api.bounds import RowId
from zc_api.cloudaccounts import service
from zc_api.cloudaccounts.schemas import (
    CloudAccountCreate,
    CloudAccountPublic,
    CloudAccountRemoved,
    CloudAccountUpdate,
    VerifyReport,
)
from zc_api.deps import RuntimeDep, SessionDep, UserDep
from zc_api.errors import responses
from zc_api.pagination import Page, PageDep

router = APIRouter(tags=["cloud accounts"])


@router.post(
    "/accounts/{account_id}/cloudaccounts", status_code=201, response_model=CloudAccountPublic,
    responses=responses(401, 403, 404, 409, 413, 422),
    summary="Claim an AWS account (admin); returns the external ID ZeroCloud generated",
    description="The claim is pending until verified (POST /cloudaccounts/{id}/verify) and exclusive after: "
    "other ZeroCloud accounts may claim the same AWS account meanwhile, and whether they do is never told. "
    "409 only when this account already holds a claim on the AWS account or role.",
)
async def create_cloud_account(
    account_id: RowId, new: CloudAccountCreate, session: SessionDep, caller: UserDep, runtime: RuntimeDep
) -> CloudAccountPublic:
    row = await service.create(
        session, caller=caller, account_id=account_id, new=new,
        allow_supplied_external_id=runtime.settings.allow_supplied_external_id,
    )
    return CloudAccountPublic.of(row)


@router.get(
    "/accounts/{account_id}/cloudaccounts", response_model=Page[CloudAccountPublic],
    responses=responses(401, 404, 422), summary="List an account's cloud accounts",
)
async def list_cloud_accounts(
    account_id: RowId, session: SessionDep, caller: UserDep, page: PageDep
) -> Page[CloudAccountPublic]:
    rows, count = await service.get_all(session, caller=caller, account_id=account_id, page=page)
    return Page(
        data=[CloudAccountPublic.of(r) for r in rows], count=count, limit=page.limit, offset=page.offset
    )


@router.get(
    "/cloudaccounts/{cloud_account_id}", response_model=CloudAccountPublic,
    responses=responses(401, 404, 422), summary="Get a cloud account",
)
async def get_cloud_account(
    cloud_account_id: RowId, session: SessionDep, caller: UserDep
) -> CloudAccountPublic:
    row = await service.get(session, caller=caller, cloud_account_id=cloud_account_id)
    return CloudAccountPublic.of(row)


@router.patch(
    "/cloudaccounts/{cloud_account_id}", response_model=CloudAccountPublic,
    responses=responses(401, 403, 404, 413, 422),
    summary="Rename a cloud account, change its regions or SNS topics, or switch observe/enforce (admin)",
)
async def update_cloud_account(
    cloud_account_id: RowId, update: CloudAccountUpdate, session: SessionDep, caller: UserDep
) -> CloudAccountPublic:
    row = await service.update(session, caller=caller, cloud_account_id=cloud_account_id, update=update)
    return CloudAccountPublic.of(row)


@router.post(
    "/cloudaccounts/{cloud_account_id}/verify", response_model=VerifyReport,
    responses=responses(401, 403, 404, 422),
    summary="Assume the role with the external ID and report what works (admin)",
    description="A role that can be assumed and acts in the claimed AWS account makes the claim exclusive "
    "(check `claim`; it fails, naming no one, when another ZeroCloud account verified that AWS account "
    "first). Each region's SNS topic is read from the ZeroCloud stack there (or taken as entered in "
    "topic_arns) and bound to this cloud account (checks `events_topic:<region>`); when the operator set "
    "ZC_EVENT_QUEUE_ARN, ZeroCloud's event queue is subscribed to it (checks `events_subscription:<region>`) "
    "and a test event sent through it must reach the ingestor (checks `events_flow:<region>`).",
)
async def verify_cloud_account(cloud_account_id: RowId, caller: UserDep, runtime: RuntimeDep) -> VerifyReport:
    return await service.verify_and_probe(runtime, caller=caller, cloud_account_id=cloud_account_id)


@router.delete(
    "/cloudaccounts/{cloud_account_id}", response_model=CloudAccountRemoved,
    responses=responses(401, 403, 404, 422),
    summary="Remove a cloud account (admin): its live leases released, its role no longer used",
    description="The audit trail, resources and ended leases are kept; the AWS account id can be claimed again.",
)
async def remove_cloud_account(cloud_account_id: int, session: SessionDep, caller: UserDep) -> CloudAccountRemoved:
    released = await service.remove(session, caller=caller, cloud_account_id=cloud_account_id)
    return CloudAccountRemoved(id=cloud_account_id, leases_released=released)
