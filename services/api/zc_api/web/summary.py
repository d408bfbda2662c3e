"""The admin's summary page: the account's leases by status, a chart of instances by lease
state over the last two weeks, and the spend avoided by reaping."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from zc_common.messages import CloudAccountMode, LeaseStatus, utcnow

from zc_api.cloudaccounts import service as cloudaccounts
from zc_api.deps import SessionDep
from zc_api.pagination import PageParams
from zc_api.pricing.service import AVOIDED_CAP
from zc_api.summary import service as summary
from zc_api.web import chart
from zc_api.web.render import page
from zc_api.web.session import AdminDep

router = APIRouter(include_in_schema=False)

DAYS = 14


@router.get("/summary", response_class=HTMLResponse)
async def show_summary(request: Request, session: SessionDep, viewer: AdminDep) -> HTMLResponse:
    now = utcnow()
    principal = viewer.principal
    assert principal.account_id is not None
    counts = await summary.counts_by_status(session, caller=principal)
    days = await summary.states_per_day(session, caller=principal, days=DAYS, now=now)
    avoided = await summary.spend_avoided(session, caller=principal, now=now)
    clouds, cloud_count = await cloudaccounts.get_all(
        session, caller=principal, account_id=principal.account_id, page=PageParams(limit=500, offset=0)
    )
    live = sum(counts.get(status.value, 0) for status in LeaseStatus if status.is_live)
    return page(
        request, "summary.html", viewer=viewer, title="Summary", counts=counts, statuses=list(LeaseStatus),
        live=live, days=days, chart=chart.stacked_bars(days), colours=chart.COLOURS, labels=chart.LABELS,
        day_states=list(chart.COLOURS), avoided=avoided, cap_days=AVOIDED_CAP.days, now=now,
        cloud_count=cloud_count, enforced=sum(1 for c in clouds if c.mode == CloudAccountMode.enforce),
    )
