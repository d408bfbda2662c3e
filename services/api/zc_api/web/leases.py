"""The leases pages: a developer's own leases (an admin's: the whole account's) with what
each costs so far and what is left of it, renewing within policy and shutting down —
through the same lease actions as the API. GET shows; only POST acts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.errors import Conflict, InvalidInput, NotFound
from zc_common.messages import LeaseStatus, utcnow

from zc_api import display
from zc_api.bounds import INT32_MAX, RowId, parse_count, parse_row_id
from zc_api.cloudaccounts import service as cloudaccounts
from zc_api.deps import SessionDep
from zc_api.display import human_duration, sentence
from zc_api.leases import actions, repository
from zc_api.leases import service as leases
from zc_api.leases.policy import NEVER_EXPIRES
from zc_api.leases.repository import LeaseRecord
from zc_api.leases.schemas import MAX_EXTENSION_SECONDS, runs_past_its_lease
from zc_api.models import AuditEvent, CloudAccount, Lease, Resource, User
from zc_api.pagination import CURSOR_MAX_LENGTH, PageParams
from zc_api.pricing import service as pricing
from zc_api.users import service as users
from zc_api.web import lease_text
from zc_api.web.render import count_text, page
from zc_api.web.session import CsrfDep, MemberDep, Viewer

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
ALL_PAGE = PageParams(limit=500, offset=0)
# What the renew form offers, up to the owner's maximum lease; "max" renews as far as allowed.
RENEW_CHOICES = (3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400)
LIVE = "live"
STATE_CHOICES = [
    (LIVE, "Live (holding an instance)"), ("", "Any state"),
    *[(status.value, status.value) for status in LeaseStatus],
]


# --- what a row shows -------------------------------------------------------------------


@dataclass(frozen=True)
class RenewChoice:
    value: str
    label: str


@dataclass
class LeaseView:
    record: LeaseRecord
    instance: str
    time_left: str
    cost: str
    hourly: str
    renewable: bool
    adjustable: bool
    max_words: str
    latest: str
    choices: list[RenewChoice]
    chosen: str

    @property
    def past_its_lease(self) -> bool:
        return runs_past_its_lease(self.record.lease, self.record.resource)

    @property
    def lease(self) -> Lease:
        return self.record.lease

    @property
    def resource(self) -> Resource:
        return self.record.resource

    @property
    def cloud_account(self) -> CloudAccount:
        return self.record.cloud_account

    @property
    def no_end(self) -> bool:
        return self.record.lease.expires_at >= NEVER_EXPIRES


def renew_choices(record: LeaseRecord, now: datetime) -> tuple[list[RenewChoice], str]:
    """The durations a renewal may ask for (within the owner's maximum lease) and the one
    picked by default (their default lease)."""
    policy = record.effective
    maximum, default = policy.max_lease_seconds, policy.lease_seconds
    seconds = sorted({*(c for c in RENEW_CHOICES if c <= maximum), default})
    choices = [RenewChoice(str(s), f"{human_duration(s)} more") for s in seconds]
    choices.append(RenewChoice("max", f"To the maximum ({human_duration(maximum)} from now)"))
    return choices, str(default)


def view(record: LeaseRecord, now: datetime, *, stopped_at: datetime | None = None, chosen: str | None = None) -> LeaseView:
    lease, resource = record.lease, record.resource
    price = pricing.hourly_price(resource.instance_type, resource.region)
    choices, default = renew_choices(record, now)
    maximum = record.effective.max_lease_seconds
    return LeaseView(
        record=record,
        instance=display.instance_label(record),
        time_left=display.time_left(status=lease.status, expires_at=lease.expires_at, ended_at=lease.ended_at, now=now),
        cost=display.money(pricing.cost_so_far(resource, lease, now, stopped_at=stopped_at)),
        hourly=f"{display.money(price)} an hour" if price is not None else "no price for this type and region",
        renewable=record.status in actions.RENEWABLE,
        adjustable=record.status in actions.ADJUSTABLE,
        max_words=human_duration(maximum),
        latest=display.stamp(actions.latest_expiry(record, now=now)),
        choices=choices,
        chosen=chosen if chosen is not None else default,
    )


async def _views(
    session: AsyncSession, viewer: Viewer, lease_ids: list[int], now: datetime
) -> list[LeaseView]:
    """The leases of ``lease_ids`` the viewer may see, in that order, ready to show."""
    records = await repository.load(session, lease_ids, lock=False, where=leases.visible_to(viewer.principal))
    stopped = await pricing.stopped_at(session, (r.resource.id for r in records.values() if r.resource.id))
    return [
        view(records[i], now, stopped_at=stopped.get(records[i].resource.id or 0))
        for i in lease_ids if i in records
    ]


async def _one(session: AsyncSession, viewer: Viewer, lease_id: int) -> LeaseRecord:
    records = await repository.load(session, [lease_id], lock=False, where=leases.visible_to(viewer.principal))
    if lease_id not in records:
        raise NotFound(f"Lease {lease_id} was not found: it does not exist, or it is not yours to see.")
    return records[lease_id]


# --- the list ---------------------------------------------------------------------------


@dataclass
class Filters:
    state: str = LIVE
    owner: str = ""
    cloud_account: str = ""
    region: str = ""
    offset: int = 0
    # The next page is reached by cursor (fast at any depth); ``at`` only says which row
    # it starts at, for "51–100 of …".
    cursor: str = ""
    at: int = 0

    @property
    def start(self) -> int:
        return self.at if self.cursor else self.offset

    def query(self, **changes: object) -> str:
        """The list's query string with ``changes`` (e.g. another page); defaults left out."""
        values: dict[str, object] = {"state": self.state, "owner": self.owner, "cloud_account": self.cloud_account,
                                     "region": self.region, "offset": self.offset, "cursor": self.cursor,
                                     "at": self.at, **changes}
        kept = {key: str(value) for key, value in values.items()
                if (key == "state" and value != LIVE) or (key != "state" and value not in ("", 0))}
        return urlencode(kept)


async def _notice(session: AsyncSession, viewer: Viewer, code: str | None, lease_id: int | None, now: datetime) -> str | None:
    if code is None or lease_id is None:
        return None
    try:
        record = await _one(session, viewer, lease_id)
    except NotFound:
        return None
    if code == "renewed":
        return lease_text.renewed(record, now)
    if code == "shutdown":
        return lease_text.shut_down(record)
    return None


@router.get("/leases", response_class=HTMLResponse)
async def list_leases(
    request: Request,
    session: SessionDep,
    viewer: MemberDep,
    state: Annotated[str, Query(max_length=16)] = LIVE,
    owner: Annotated[str, Query(max_length=320)] = "",
    cloud_account: Annotated[str, Query(max_length=20)] = "",
    region: Annotated[str, Query(max_length=32)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    cursor: Annotated[str, Query(max_length=CURSOR_MAX_LENGTH)] = "",
    at: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
    notice: Annotated[str | None, Query(max_length=32)] = None,
    lease: Annotated[RowId | None, Query()] = None,
) -> HTMLResponse:
    now = utcnow()
    principal = viewer.principal
    assert principal.account_id is not None
    filters = Filters(state=state, owner=owner.strip() if viewer.is_admin else "", cloud_account=cloud_account,
                      region=region, offset=0 if cursor else offset, cursor=cursor, at=at if cursor else 0)
    problems: list[str] = []

    status: LeaseStatus | None = None
    if state not in ("", LIVE):
        try:
            status = LeaseStatus(state)
        except ValueError:
            problems.append(f"There is no lease state {state!r}: showing every state.")
            filters.state = ""
    cloud_account_id: int | None = None
    if cloud_account:
        cloud_account_id = parse_row_id(cloud_account)
        if cloud_account_id is None:
            problems.append("Pick a cloud account from the list.")
            filters.cloud_account = ""

    found = await leases.get_all(
        session, caller=principal, page=PageParams(limit=PAGE_SIZE, offset=filters.offset, cursor=cursor or None),
        owner=filters.owner or None,
        status=status, cloud_account_id=cloud_account_id, region=region or None,
        live_only=filters.state == LIVE,
    )
    views = await _views(session, viewer, [row[0].id for row in found.rows if row[0].id], now)
    clouds, _ = await cloudaccounts.get_all(session, caller=principal, account_id=principal.account_id, page=ALL_PAGE)
    owners: list[User] = []
    if viewer.is_admin:
        owners, _ = await users.get_all(session, caller=principal, account_id=principal.account_id, page=ALL_PAGE)
    regions = sorted({r for cloud in clouds for r in cloud.regions} | ({region} if region else set()))
    return page(
        request, "leases.html", viewer=viewer, title="Leases" if viewer.is_admin else "My leases",
        views=views, count=found.count, count_text=count_text(found.count, found.count_at_least),
        next_cursor=found.next_cursor, filters=filters, state_choices=STATE_CHOICES, clouds=clouds, owners=owners,
        regions=regions, page_size=PAGE_SIZE, return_to=f"/leases?{filters.query()}".rstrip("?"),
        notice=await _notice(session, viewer, notice, lease, now), problem=" ".join(problems) or None,
        now=now,
    )


# --- one lease --------------------------------------------------------------------------


@dataclass(frozen=True)
class TrailEntry:
    event: AuditEvent
    who: str
    details: list[tuple[str, str]]


_DETAIL_KEYS = ("via", "expires_at", "previous_expires_at", "status", "version", "owner_email",
                "previous_owner_email", "until", "would_have", "detail")


async def _who(session: AsyncSession, viewer: Viewer, actors: set[str]) -> dict[str, str]:
    """How the trail names each actor: "you", colleagues by email (one query for all of
    them), ZeroCloud for itself."""
    people: dict[str, str] = {viewer.principal.actor: "you"}
    ids = {user_id for kind, _, rest in (actor.partition(":") for actor in actors - set(people))
           if kind == "user" and (user_id := parse_row_id(rest)) is not None}
    emails = await users.emails(session, caller=viewer.principal, user_ids=ids)
    people.update({f"user:{user_id}": email for user_id, email in emails.items()})
    return {actor: display.actor_name(actor, people) for actor in actors}


def _details(event: AuditEvent) -> list[tuple[str, str]]:
    shown = []
    for key in _DETAIL_KEYS:
        value = event.details.get(key)
        if value in (None, ""):
            continue
        if key.endswith("expires_at") or key == "until":
            try:
                value = display.stamp(datetime.fromisoformat(str(value)))
            except ValueError:
                pass
        shown.append((key.replace("_", " "), str(value)))
    return shown


async def _detail_page(
    request: Request, session: SessionDep, viewer: Viewer, lease_id: int, *, status: int = 200,
    notice: str | None = None, problem: str | None = None, renew_problem: str | None = None,
    chosen: str | None = None,
) -> HTMLResponse:
    now = utcnow()
    record = await _one(session, viewer, lease_id)
    stopped = await pricing.stopped_at(session, [record.resource.id or 0])
    shown = view(record, now, stopped_at=stopped.get(record.resource.id or 0), chosen=chosen)
    events = await leases.trail(session, caller=viewer.principal, lease_id=lease_id)
    names = await _who(session, viewer, {event.actor for event in events})
    trail = [TrailEntry(event=e, who=names.get(e.actor, e.actor), details=_details(e)) for e in events]
    return page(
        request, "lease.html", viewer=viewer, title=f"Lease of {shown.instance}", status=status, v=shown,
        trail=trail, notice=notice, renew_problem=renew_problem, return_to=f"/leases/{lease_id}", now=now,
        problem=problem or ("The lease was not renewed: see why under Renew." if renew_problem else None),
    )


@router.get("/leases/{lease_id}", response_class=HTMLResponse)
async def show_lease(
    lease_id: RowId, request: Request, session: SessionDep, viewer: MemberDep,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    now = utcnow()
    text = await _notice(session, viewer, notice, lease_id, now)
    return await _detail_page(request, session, viewer, lease_id, notice=text)


# --- acting -------------------------------------------------------------------------------


def _back(return_to: str, lease_id: int, code: str) -> RedirectResponse:
    """303 to the page the form was on (a /leases page only), with the outcome to show."""
    parts = urlsplit(return_to or "/leases")
    path = parts.path if parts.path.startswith("/leases") and not parts.netloc and not parts.scheme else "/leases"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("notice", "lease")]
    query += [("notice", code)] + ([("lease", str(lease_id))] if path == "/leases" else [])
    return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303)


@router.post("/leases/{lease_id}/renew", response_class=HTMLResponse)
async def renew_lease(
    lease_id: RowId, request: Request, session: SessionDep, viewer: CsrfDep,
    extend: Annotated[str, Form(max_length=20)] = "",
    return_to: Annotated[str, Form(max_length=2000)] = "/leases",
) -> Response:
    await _one(session, viewer, lease_id)  # not theirs to see: 404 before anything else
    seconds = parse_count(extend, maximum=MAX_EXTENSION_SECONDS) or None
    if extend != "max" and seconds is None:
        return await _detail_page(
            request, session, viewer, lease_id, status=422, chosen=extend,
            renew_problem="Choose from the list how long to renew the lease for.",
        )
    try:
        async with session.begin_nested():
            if seconds is None:  # "max": as far as the owner's maximum lease allows
                await actions.renew(session, caller=viewer.principal, lease_id=lease_id, to_maximum=True)
            else:
                await actions.renew(session, caller=viewer.principal, lease_id=lease_id, extend_by_seconds=seconds)
    except Conflict as error:  # the lease's state: no renew form to point at
        return await _detail_page(request, session, viewer, lease_id, status=409, problem=sentence(error.message))
    except InvalidInput as error:
        problem = sentence(error.message)
        if seconds is not None:
            problem = f"You asked for {human_duration(seconds)} more, but {error.message}."
        return await _detail_page(
            request, session, viewer, lease_id, status=422, renew_problem=problem, chosen=extend,
        )
    return _back(return_to, lease_id, "renewed")


@router.get("/leases/{lease_id}/shutdown", response_class=HTMLResponse)
async def confirm_shutdown(lease_id: RowId, request: Request, session: SessionDep, viewer: MemberDep) -> HTMLResponse:
    """The confirmation: what shutting down will do. Nothing happens until the POST."""
    return await _confirm_page(request, session, viewer, lease_id)


async def _confirm_page(
    request: Request, session: AsyncSession, viewer: Viewer, lease_id: int, *, status: int = 200,
    problem: str | None = None,
) -> HTMLResponse:
    now = utcnow()
    record = await _one(session, viewer, lease_id)
    effect = lease_text.shutdown_effect(record)
    return page(
        request, "lease_shutdown.html", viewer=viewer, title=effect.title, status=status, effect=effect,
        v=view(record, now), problem=problem,
    )


@router.post("/leases/{lease_id}/shutdown", response_class=HTMLResponse)
async def shut_down_lease(
    lease_id: RowId, request: Request, session: SessionDep, viewer: CsrfDep,
    return_to: Annotated[str, Form(max_length=2000)] = "/leases",
) -> Response:
    try:
        async with session.begin_nested():
            await actions.shutdown(session, caller=viewer.principal, lease_id=lease_id)
    except Conflict as error:
        return await _confirm_page(request, session, viewer, lease_id, status=409, problem=sentence(error.message))
    return _back(return_to, lease_id, "shutdown")
