"""The audit log page (admins): who or what changed what, when and why, newest first,
filtered by action, subject, actor and time, a page at a time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from zc_api.audit import service as audit
from zc_api.bounds import INT32_MAX, in_utc, parse_row_id
from zc_api.deps import SessionDep
from zc_api.display import actor_name
from zc_api.models import AuditEvent
from zc_api.pagination import CURSOR_MAX_LENGTH, PageParams
from zc_api.users import service as users
from zc_api.web.render import count_text, page
from zc_api.web.session import AdminDep

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
SUBJECT_TYPES = ["lease", "resource", "cloud_account", "user", "invitation", "account_policy", "account", "api_token",
                 "sweep"]
# Where a subject has a page of its own.
_LINKS = {"lease": "/leases/{}", "cloud_account": "/cloud-accounts/{}", "user": "/users/{}"}


@dataclass(frozen=True)
class Row:
    event: AuditEvent
    who: str
    subject: str
    link: str | None
    details: str


def _since(raw: str) -> tuple[datetime | None, str | None]:
    """A date (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM), read as UTC."""
    raw = raw.strip()
    if not raw:
        return None, None
    try:
        moment = datetime.fromisoformat(raw) if "T" in raw or " " in raw else datetime.combine(
            date.fromisoformat(raw), time())
        return in_utc(moment), None
    except ValueError:
        return None, f"“{raw}” is not a date: write it like 2026-11-25 (or 2026-11-25T14:00, UTC)."


@router.get("/audit", response_class=HTMLResponse)
async def show_audit(
    request: Request, session: SessionDep, viewer: AdminDep,
    action: Annotated[str, Query(max_length=64)] = "",
    subject_type: Annotated[str, Query(max_length=32)] = "",
    subject_id: Annotated[str, Query(max_length=20)] = "",
    actor: Annotated[str, Query(max_length=200)] = "",
    since: Annotated[str, Query(max_length=32)] = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    cursor: Annotated[str, Query(max_length=CURSOR_MAX_LENGTH)] = "",
    at: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> HTMLResponse:
    principal = viewer.principal
    assert principal.account_id is not None
    errors: dict[str, str] = {}
    since_at, problem = _since(since)
    if problem:
        errors["since"] = problem
    subject = parse_row_id(subject_id.strip())
    if subject_id.strip() and subject is None:
        errors["subject_id"] = "A subject id is a number, like 42."
    if cursor:  # the older pages are reached by cursor (fast at any depth); ``at``: the row it starts at
        offset = 0
    start = at if cursor else offset
    found = await audit.get_all(
        session, caller=principal, page=PageParams(limit=PAGE_SIZE, offset=offset, cursor=cursor or None),
        action=action.strip() or None, subject_type=subject_type or None, subject_id=subject,
        actor=actor or None, since=since_at,
    )
    people, _ = await users.get_all(session, caller=principal, account_id=principal.account_id,
                                    page=PageParams(limit=500, offset=0))
    names = {f"user:{person.id}": person.email for person in people}
    rows = [
        Row(
            event=event, who=actor_name(event.actor, names),
            subject=f"{event.subject_type} {event.subject_id}" if event.subject_id is not None else event.subject_type,
            link=_LINKS[event.subject_type].format(event.subject_id)
            if event.subject_type in _LINKS and event.subject_id is not None else None,
            details=json.dumps(event.details, sort_keys=True, default=str)[:600] if event.details else "",
        )
        for event in (row[0] for row in found.rows)
    ]
    filters = {"action": action, "subject_type": subject_type, "subject_id": subject_id, "actor": actor,
               "since": since}

    def href(**where: str | int) -> str:
        return "/audit?" + urlencode({**{k: v for k, v in filters.items() if v}, **{k: v for k, v in where.items() if v}})

    previous: str | None = None
    if cursor:
        previous = href()  # the newest page: a cursor only goes on to older ones
    elif offset > 0:
        previous = href(offset=max(offset - PAGE_SIZE, 0))
    return page(
        request, "audit.html", viewer=viewer, title="Audit log", rows=rows, count=found.count,
        count_text=count_text(found.count, found.count_at_least), offset=start,
        page_size=PAGE_SIZE, values=filters, errors=errors, subject_types=SUBJECT_TYPES,
        actors=[("", "Anyone"), *sorted(((k, v) for k, v in names.items()), key=lambda kv: kv[1]),
                ("service", "ZeroCloud (its services)")],
        previous=previous, previous_is_first=bool(cursor),
        next=href(cursor=found.next_cursor, at=start + PAGE_SIZE) if found.next_cursor else None,
        problem="Some filters could not be read and were left out: see below." if errors else None,
    )
