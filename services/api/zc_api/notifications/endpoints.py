"""Internal routes for the notifier: reserve notification keys, mark them sent, where a
batch of lease notices may go (confirmed addresses, accounts' webhooks), and the warnings
a reap waits for (delivered, or too late: the reap moves)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zc_common.internal_api import (
    DeferRequest,
    DeferResult,
    NoticeRecipients,
    NoticeRecipientsRequest,
    NotificationKeys,
    WarningsDelivered,
    WarningsRecorded,
)

from zc_api.deps import NotifierDep, SessionDep
from zc_api.errors import responses
from zc_api.leases import warning_due
from zc_api.notifications import service

router = APIRouter(tags=["internal"])

# Only the notifier calls the warning routes; the audit log names it.
NOTIFIER = "service:notifier"


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


@router.post(
    "/leases/warned", response_model=WarningsRecorded, responses=responses(401, 404, 422),
    summary="Record lease warnings delivered, or undeliverable for good: the claim stops waiting for a "
    "version's last warning (notifier)",
)
async def warnings_delivered(body: WarningsDelivered, session: SessionDep, _: NotifierDep) -> WarningsRecorded:
    return await warning_due.record_delivered(session, warnings=body.warnings, actor=NOTIFIER)


@router.post(
    "/leases/defer", response_model=DeferResult, responses=responses(401, 404, 422),
    summary="Warnings too late for their lead: move each active lease's reap by the lead, in a new version "
    "that warns at once (notifier)",
)
async def defer_for_warnings(body: DeferRequest, session: SessionDep, _: NotifierDep) -> DeferResult:
    return DeferResult(data=await warning_due.defer_late(session, warnings=body.warnings, actor=NOTIFIER))
