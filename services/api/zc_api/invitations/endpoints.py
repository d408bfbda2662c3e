"""HTTP routes for invitations: the admin's JSON API, and the internal route the notifier
calls to mint the link a people mail carries (an invitation's or an address
confirmation's: one route, so the notifier has one way to ask)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from zc_common.internal_api import PeopleLink, PeopleLinkKind, PeopleLinkRequest
from zc_common.messages import utcnow

from zc_api.bounds import RowId
from zc_api.confirmations import service as confirmations
from zc_api.deps import NotifierDep, RuntimeDep, SessionDep, UserDep
from zc_api.errors import responses
from zc_api.invitations import service
from zc_api.invitations.schemas import InvitationCreate, InvitationPublic, InvitationStatus
from zc_api.pagination import Page, PageDep

router = APIRouter(tags=["invitations"])
internal_router = APIRouter(tags=["internal"])


@router.post(
    "/accounts/{account_id}/invitations", status_code=201, response_model=InvitationPublic,
    responses=responses(401, 403, 404, 409, 413, 422),
    summary="Invite an email address into an account with a role; the invitee is mailed a link (admin)",
)
async def create_invitation(
    account_id: RowId, new: InvitationCreate, session: SessionDep, caller: UserDep, runtime: RuntimeDep
) -> InvitationPublic:
    now = utcnow()
    invitation = await service.create(
        session, caller=caller, account_id=account_id, email=new.email, role=new.role,
        ttl_seconds=runtime.settings.invitation_ttl_seconds, now=now,
    )
    return InvitationPublic.of(invitation, now)


@router.get(
    "/accounts/{account_id}/invitations", response_model=Page[InvitationPublic],
    responses=responses(401, 403, 404, 422), summary="List an account's invitations, newest first (admin)",
)
async def list_invitations(
    account_id: RowId,
    session: SessionDep,
    caller: UserDep,
    page: PageDep,
    status: Annotated[InvitationStatus | None, Query(description="only invitations in this status")] = None,
) -> Page[InvitationPublic]:
    now = utcnow()
    rows, count = await service.get_all(
        session, caller=caller, account_id=account_id, page=page, status=status, now=now
    )
    return Page(
        data=[InvitationPublic.of(row, now) for row in rows], count=count, limit=page.limit, offset=page.offset
    )


@router.delete(
    "/invitations/{invitation_id}", status_code=204, response_class=Response,
    responses=responses(401, 403, 404, 409, 422), summary="Revoke an invitation: its link stops working (admin)",
)
async def revoke_invitation(invitation_id: RowId, session: SessionDep, caller: UserDep) -> None:
    await service.revoke(session, caller=caller, invitation_id=invitation_id)


@internal_router.post(
    "/people-links", response_model=PeopleLink, responses=responses(401, 404, 422),
    summary="Mint the single-use link of an invitation or address-confirmation mail (notifier); "
    "404 when there is nothing to mail any more",
)
async def mint_people_link(
    body: PeopleLinkRequest, session: SessionDep, runtime: RuntimeDep, _: NotifierDep
) -> PeopleLink:
    settings, now = runtime.settings, utcnow()
    if body.kind is PeopleLinkKind.invitation:
        return await service.mint_link(session, invitation_id=body.id, public_url=settings.public_url, now=now)
    return await confirmations.mint_link(
        session, user_id=body.id, public_url=settings.public_url, now=now,
        ttl_seconds=settings.email_confirmation_ttl_seconds,
    )
