"""Internal routes for the notifier: reserve notification keys, mark them sent, and
where a batch of lease notices may go (confirmed addresses, accounts' webhooks)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zc_common.internal_api import NoticeRecipients, NoticeRecipientsRequest, NotificationKeys

from zc_api.deps import NotifierDep, SessionDep
from zc_api.errors import responses
from zc_api.notifications import service

router = APIRouter(tags=["internal"])


@router.post(
    "/notifications/reserve", response_model=NotificationKeys, responses=responses(401, 404, 422),
    summary="Reserve notification keys; answers those not sent yet (notifier)",
)
async def reserve_notifications(body: NotificationKeys, session: SessionDep, _: NotifierDep) -> NotificationKeys:
    return NotificationKeys(keys=await service.reserve(session, keys=body.keys))


@router.post(
    "/notifications/sent", status_code=204, response_class=Response, responses=responses(401, 404, 422),
    summary="Record notification keys as sent (notifier)",
)
async def notifications_sent(body: NotificationKeys, session: SessionDep, _: NotifierDep) -> None:
    await service.mark_sent(session, keys=body.keys)


@router.post(
    "/notifications/recipients", response_model=NoticeRecipients, responses=responses(401, 404, 422),
    summary="Which lease-notice recipients may be mailed (confirmed) and which accounts have a webhook (notifier)",
)
async def notice_recipients(body: NoticeRecipientsRequest, session: SessionDep, _: NotifierDep) -> NoticeRecipients:
    return await service.recipients(session, asked=body.recipients, account_ids=body.account_ids)
