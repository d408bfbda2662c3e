"""HTTP routes for users."""

from __future__ import annotations

from fastapi import APIRouter

from zc_api.bounds import RowId
from zc_api.deps import SessionDep, UserDep
from zc_api.errors import responses
from zc_api.pagination import Page, PageDep
from zc_api.users import service
from zc_api.users.schemas import UserCreate, UserPublic, UserRemoved, UserUpdate

router = APIRouter(tags=["users"])


@router.post(
    "/accounts/{account_id}/users", status_code=201, response_model=UserPublic,
    responses=responses(401, 403, 404, 409, 413, 422),
    summary="Add a user to an account (admin); they are mailed a link to confirm their address",
)
async def create_user(account_id: RowId, new: UserCreate, session: SessionDep, caller: UserDep) -> UserPublic:
    user = await service.create(session, caller=caller, account_id=account_id, new=new)
    return UserPublic.model_validate(user)


@router.get(
    "/accounts/{account_id}/users", response_model=Page[UserPublic], responses=responses(401, 404, 422),
    summary="List an account's users",
)
async def list_users(
    account_id: RowId, session: SessionDep, caller: UserDep, page: PageDep
) -> Page[UserPublic]:
    users, count = await service.get_all(session, caller=caller, account_id=account_id, page=page)
    return Page(
        data=[UserPublic.model_validate(u) for u in users], count=count, limit=page.limit, offset=page.offset
    )


# Declared before /users/{user_id}, which would otherwise try to read "me" as an id.
@router.get("/users/me", response_model=UserPublic, responses=responses(401, 404), summary="Who am I")
async def get_me(session: SessionDep, caller: UserDep) -> UserPublic:
    return UserPublic.model_validate(await service.me(session, caller=caller))


@router.get(
    "/users/{user_id}", response_model=UserPublic, responses=responses(401, 404, 422), summary="Get a user",
)
async def get_user(user_id: RowId, session: SessionDep, caller: UserDep) -> UserPublic:
    return UserPublic.model_validate(await service.get(session, caller=caller, user_id=user_id))


@router.patch(
    "/users/{user_id}", response_model=UserPublic, responses=responses(401, 403, 404, 409, 413, 422),
    summary="Change a user's role or GitHub login (admin)",
)
async def update_user(user_id: RowId, update: UserUpdate, session: SessionDep, caller: UserDep) -> UserPublic:
    user = await service.update(session, caller=caller, user_id=user_id, update=update)
    return UserPublic.model_validate(user)


@router.delete(
    "/users/{user_id}", response_model=UserRemoved, responses=responses(401, 403, 404, 409, 422),
    summary="Remove a user from the account (admin): their live leases go to you",
    description="Each lease they owned gets a fresh notice period under its new owner; their tokens and sessions "
                "end; the audit trail is kept; their address does not rejoin by an allowed email pattern (invite "
                "or add them again to bring them back). 409 for the account's only admin.",
)
async def remove_user(user_id: RowId, session: SessionDep, caller: UserDep) -> UserRemoved:
    email, reowned = await service.remove(session, caller=caller, user_id=user_id)
    return UserRemoved(id=user_id, email=email, leases_reowned=reowned)
