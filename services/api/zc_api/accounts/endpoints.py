"""HTTP routes for accounts."""

from __future__ import annotations

from fastapi import APIRouter

from zc_api.accounts import service
from zc_api.accounts.schemas import AccountCreate, AccountPublic, AccountUpdate
from zc_api.bounds import RowId
from zc_api.deps import SessionDep, UserDep
from zc_api.errors import responses
from zc_api.pagination import Page, PageDep
from zc_api.policies.service import lease_seconds

router = APIRouter(tags=["accounts"])


@router.post(
    "/accounts", status_code=201, response_model=AccountPublic, responses=responses(401, 404, 409, 413, 422),
    summary="Create an account; you become its admin",
)
async def create_account(new: AccountCreate, session: SessionDep, caller: UserDep) -> AccountPublic:
    account, policy = await service.create(
        session, caller=caller, name=new.name,
        default_lease_seconds=lease_seconds(new.lease_expires_in, new.lease_expires_in_units),
    )
    return AccountPublic.of(account, policy, admin=True)


@router.get(
    "/accounts", response_model=Page[AccountPublic], responses=responses(401, 404, 422),
    summary="List your account",
)
async def list_accounts(session: SessionDep, caller: UserDep, page: PageDep) -> Page[AccountPublic]:
    rows, count = await service.get_all(session, caller=caller, page=page)
    return Page(
        data=[AccountPublic.of(account, policy, admin=caller.is_admin and caller.account_id == account.id) for account, policy in rows],
        count=count, limit=page.limit, offset=page.offset,
    )


@router.get(
    "/accounts/{account_id}", response_model=AccountPublic, responses=responses(401, 404, 422),
    summary="Get an account",
)
async def get_account(account_id: RowId, session: SessionDep, caller: UserDep) -> AccountPublic:
    account, policy = await service.get(session, caller=caller, account_id=account_id)
    return AccountPublic.of(account, policy, admin=caller.is_admin and caller.account_id == account.id)


@router.patch(
    "/accounts/{account_id}", response_model=AccountPublic, responses=responses(401, 403, 404, 413, 422),
    summary="Rename an account or set its webhook for lease notices (admin)",
)
async def update_account(
    account_id: RowId, update: AccountUpdate, session: SessionDep, caller: UserDep
) -> AccountPublic:
    account, policy = await service.update(session, caller=caller, account_id=account_id, update=update)
    return AccountPublic.of(account, policy, admin=True)
