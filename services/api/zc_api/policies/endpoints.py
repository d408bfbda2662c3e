"""HTTP routes for account and user policies."""

from __future__ import annotations

from fastapi import APIRouter

from zc_api.deps import SessionDep, UserDep
from zc_api.errors import responses
from zc_api.policies import service
from zc_api.policies.schemas import AccountPolicyPublic, AccountPolicyUpdate, UserPolicyPublic, UserPolicyPut

router = APIRouter(tags=["policies"])


@router.get(
    "/accounts/{account_id}/policy", response_model=AccountPolicyPublic, responses=responses(401, 404, 422),
    summary="Get an account's lease policy",
)
async def get_account_policy(account_id: int, session: SessionDep, caller: UserDep) -> AccountPolicyPublic:
    policy = await service.get_account_policy(session, caller=caller, account_id=account_id)
    return AccountPolicyPublic.model_validate(policy)


@router.patch(
    "/accounts/{account_id}/policy", response_model=AccountPolicyPublic,
    responses=responses(401, 403, 404, 413, 422),
    summary="Change an account's lease policy (admin; only the fields sent)",
)
async def update_account_policy(
    account_id: int, update: AccountPolicyUpdate, session: SessionDep, caller: UserDep
) -> AccountPolicyPublic:
    policy = await service.update_account_policy(session, caller=caller, account_id=account_id, update=update)
    return AccountPolicyPublic.model_validate(policy)


@router.get(
    "/users/{user_id}/policy", response_model=UserPolicyPublic, responses=responses(401, 403, 404, 422),
    summary="Get a user's policy overrides and the policy in effect (admin, or the user)",
)
async def get_user_policy(user_id: int, session: SessionDep, caller: UserDep) -> UserPolicyPublic:
    return await service.get_user_policy(session, caller=caller, user_id=user_id)


@router.put(
    "/users/{user_id}/policy", response_model=UserPolicyPublic, responses=responses(401, 403, 404, 413, 422),
    summary="Set a user's policy overrides (admin; null = as the account)",
)
async def put_user_policy(
    user_id: int, overrides: UserPolicyPut, session: SessionDep, caller: UserDep
) -> UserPolicyPublic:
    return await service.put_user_policy(session, caller=caller, user_id=user_id, overrides=overrides)
