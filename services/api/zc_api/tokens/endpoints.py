"""HTTP routes for a user's own API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zc_api.bounds import RowId
from zc_api.deps import SessionDep, UserDep
from zc_api.errors import responses
from zc_api.pagination import Page, PageDep
from zc_api.tokens import service
from zc_api.tokens.schemas import TokenCreate, TokenCreated, TokenPublic

router = APIRouter(tags=["tokens"])


@router.post(
    "/tokens", status_code=201, response_model=TokenCreated, responses=responses(401, 404, 413, 422),
    summary="Create an API token for yourself (shown once)",
)
async def create_token(new: TokenCreate, session: SessionDep, caller: UserDep) -> TokenCreated:
    row, token = await service.create(session, caller=caller, name=new.name)
    return TokenCreated(**TokenPublic.model_validate(row).model_dump(), token=token)


@router.get(
    "/tokens", response_model=Page[TokenPublic], responses=responses(401, 404, 422),
    summary="List your API tokens (never their secrets)",
)
async def list_tokens(session: SessionDep, caller: UserDep, page: PageDep) -> Page[TokenPublic]:
    rows, count = await service.get_all(session, caller=caller, page=page)
    return Page(
        data=[TokenPublic.model_validate(r) for r in rows], count=count, limit=page.limit, offset=page.offset
    )


@router.delete(
    "/tokens/{token_id}", status_code=204, response_class=Response, responses=responses(401, 404, 422),
    summary="Revoke one of your API tokens",
)
async def revoke_token(token_id: RowId, session: SessionDep, caller: UserDep) -> None:
    await service.revoke(session, caller=caller, token_id=token_id)
