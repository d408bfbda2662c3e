"""The people pages (admins): the account's users — role, GitHub login, whether their
address is confirmed — their own policy limits, and invitations (invite, see, revoke)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from zc_common.errors import Conflict, InvalidInput, NotFound
from zc_common.messages import Role, utcnow

from zc_api.bounds import RowId
from zc_api.deps import RuntimeDep, SessionDep
from zc_api.display import human_duration, sentence, stamp
from zc_api.invitations import service as invitations
from zc_api.invitations.schemas import InvitationCreate, status_of
from zc_api.models import User
from zc_api.pagination import PageParams
from zc_api.policies import service as policies
from zc_api.policies.schemas import UserPolicyPut
from zc_api.users import service as users
from zc_api.users.schemas import UserUpdate
from zc_api.web.forms import AdminFormDep, Form, read_form, split_duration, units_for, validation_errors
from zc_api.web.render import page
from zc_api.web.session import AdminDep, Viewer

router = APIRouter(include_in_schema=False)

ALL = PageParams(limit=500, offset=0)
ROLES = [(Role.dev.value, "developer"), (Role.admin.value, "admin")]
CHOOSE_ROLE = "Choose the role: developer or admin."


async def _notice(session: SessionDep, viewer: Viewer, code: str | None, subject: int | None) -> str | None:
    if code == "role" and subject is not None:
        try:
            user = await users.get(session, caller=viewer.principal, user_id=subject)
        except NotFound:
            return None
        return f"{user.email} is now {user.role.in_words}."
    if code == "removed":
        return "The person was removed; their live leases changed owner (each has a fresh notice period)."
    if code in ("invited", "revoked") and subject is not None:
        try:
            invitation = await invitations.get(session, caller=viewer.principal, invitation_id=subject)
        except NotFound:
            return None
        if code == "revoked":
            return f"The invitation of {invitation.email} was revoked: its link no longer works."
        return (f"{invitation.email} is invited as {invitation.role.in_words}: "
                f"the mail with the link is on its way. The link works until {stamp(invitation.expires_at)}.")
    return None


async def _people_page(
    request: Request, session: SessionDep, viewer: Viewer, *, status: int = 200, notice: str | None = None,
    problem: str | None = None, invite: Form | None = None,
) -> HTMLResponse:
    principal = viewer.principal
    assert principal.account_id is not None
    now = utcnow()
    people, count = await users.get_all(session, caller=principal, account_id=principal.account_id, page=ALL)
    invited, _ = await invitations.get_all(session, caller=principal, account_id=principal.account_id, page=ALL, now=now)
    by_id = {person.id: person.email for person in people}
    return page(
        request, "people.html", viewer=viewer, title="People", status=status, people=people, count=count,
        invitations=[(row, status_of(row, now).value, by_id.get(row.invited_by_user_id)) for row in invited],
        roles=ROLES, notice=notice, problem=problem, values=invite.values if invite else {"role": Role.dev},
        errors=invite.errors if invite else {},
    )


@router.get("/users", response_class=HTMLResponse)
async def list_people(
    request: Request, session: SessionDep, viewer: AdminDep,
    notice: Annotated[str | None, Query(max_length=32)] = None,
    subject: Annotated[int | None, Query()] = None,
) -> HTMLResponse:
    return await _people_page(request, session, viewer, notice=await _notice(session, viewer, notice, subject))


@router.post("/users/{user_id}/role", response_class=HTMLResponse)
async def change_role(user_id: RowId, request: Request, session: SessionDep, viewer: AdminFormDep) -> Response:
    form = await read_form(request)
    try:
        update = UserUpdate(role=form.text("role"))
    except ValidationError:
        return await _people_page(request, session, viewer, status=422, problem=CHOOSE_ROLE)
    try:
        async with session.begin_nested():
            await users.update(session, caller=viewer.principal, user_id=user_id, update=update)
    except (Conflict, InvalidInput) as error:
        return await _people_page(request, session, viewer, status=error.status_code, problem=sentence(error.message))
    return RedirectResponse(f"/users?notice=role&subject={user_id}", status_code=303)


# --- invitations ------------------------------------------------------------------------------


def _invitation(form: Form) -> InvitationCreate | None:
    """The invitation the form asks for, read by the API's own schema (the address checked
    and lower-cased, the role one of ``Role``); None, with the fields marked, when it is not one."""
    if not form.text("email"):
        form.fail("email", "Enter the email address to invite.")
    try:
        new = InvitationCreate(email=form.text("email"), role=form.text("role"))
    except ValidationError as error:
        for name, message in validation_errors(error).items():
            if name == "role":
                form.fail("role", CHOOSE_ROLE)
            elif name == "email":
                form.fail("email", f"Email {message[:1].lower()}{message[1:]}")
        return None
    return new if form.ok else None


@router.post("/users/invitations", response_class=HTMLResponse)
async def invite(request: Request, session: SessionDep, viewer: AdminFormDep, runtime: RuntimeDep) -> Response:
    principal = viewer.principal
    assert principal.account_id is not None
    form = await read_form(request)
    new = _invitation(form)
    if new is not None:
        try:
            async with session.begin_nested():
                invitation = await invitations.create(
                    session, caller=principal, account_id=principal.account_id, email=new.email,
                    role=new.role, ttl_seconds=runtime.settings.invitation_ttl_seconds,
                )
            return RedirectResponse(f"/users?notice=invited&subject={invitation.id}#invitations", status_code=303)
        except (InvalidInput, Conflict) as error:
            form.fail(error.field if error.field in ("email", "role") else "email", sentence(error.message))
    return await _people_page(request, session, viewer, status=422, invite=form,
                              problem="Nobody was invited: see the invitation form below.")


@router.post("/users/invitations/{invitation_id}/revoke", response_class=HTMLResponse)
async def revoke_invitation(invitation_id: RowId, request: Request, session: SessionDep, viewer: AdminFormDep) -> Response:
    try:
        async with session.begin_nested():
            await invitations.revoke(session, caller=viewer.principal, invitation_id=invitation_id)
    except Conflict as error:
        return await _people_page(request, session, viewer, status=409, problem=sentence(error.message))
    return RedirectResponse(f"/users?notice=revoked&subject={invitation_id}#invitations", status_code=303)


# --- one person: their own limits -------------------------------------------------------------


def _limit_values(default: int | None, maximum: int | None, instances: int | None) -> dict[str, str]:
    values: dict[str, str] = {"max_instances": "" if instances is None else str(instances)}
    for name, seconds in (("default_lease", default), ("max_lease", maximum)):
        values[name], values[f"{name}_unit"] = split_duration(seconds) if seconds else ("", "days")
    return values


async def _person_page(
    request: Request, session: SessionDep, viewer: Viewer, person: User, *, status: int = 200,
    form: Form | None = None, notice: str | None = None,
) -> HTMLResponse:
    assert person.id is not None
    limits = await policies.get_user_policy(session, caller=viewer.principal, user_id=person.id)
    values = form.values if form else _limit_values(
        limits.default_lease_seconds, limits.max_lease_seconds, limits.max_instances
    )
    effective = limits.effective
    return page(
        request, "person.html", viewer=viewer, title=person.email, status=status, person=person, values=values,
        errors=form.errors if form else {}, units=units_for(values), notice=notice,
        problem="The limits were not saved: please correct the fields marked below." if form and form.errors else None,
        effective_default=human_duration(effective.default_lease_seconds),
        effective_max=human_duration(effective.max_lease_seconds),
        effective_instances="no limit" if effective.max_instances is None else str(effective.max_instances),
    )


async def _person(session: SessionDep, viewer: Viewer, user_id: int) -> User:
    person = await users.get(session, caller=viewer.principal, user_id=user_id)
    if person.account_id != viewer.user.account_id:  # the service lets a person see themself
        raise NotFound(f"user {user_id} not found")
    return person


@router.get("/users/{user_id}", response_class=HTMLResponse)
async def show_person(
    user_id: RowId, request: Request, session: SessionDep, viewer: AdminDep,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    person = await _person(session, viewer, user_id)
    text = "Saved: these limits apply to this person's new leases and renewals." if notice == "saved" else None
    return await _person_page(request, session, viewer, person, notice=text)


_LIMIT_FIELDS = {"default_lease_seconds": "default_lease", "max_lease_seconds": "max_lease",
                 "max_instances": "max_instances"}


@router.post("/users/{user_id}/policy", response_class=HTMLResponse)
async def save_limits(user_id: RowId, request: Request, session: SessionDep, viewer: AdminFormDep) -> Response:
    person = await _person(session, viewer, user_id)
    form = await read_form(request)
    fields = {
        "default_lease_seconds": form.duration("default_lease", label="the default lease", optional=True),
        "max_lease_seconds": form.duration("max_lease", label="the maximum lease", optional=True),
        "max_instances": form.integer("max_instances", label="the number of instances", minimum=0, optional=True),
    }
    overrides: UserPolicyPut | None = None
    if form.ok:
        try:
            overrides = UserPolicyPut(**fields)
        except ValidationError as error:
            for name, message in validation_errors(error, _LIMIT_FIELDS).items():
                form.fail(name, message)
    if overrides is not None and form.ok:
        try:
            async with session.begin_nested():
                await policies.put_user_policy(session, caller=viewer.principal, user_id=user_id, overrides=overrides)
            return RedirectResponse(f"/users/{user_id}?notice=saved", status_code=303)
        except InvalidInput as error:
            form.fail(_LIMIT_FIELDS.get(error.field or "", "default_lease"), sentence(error.message))
    return await _person_page(request, session, viewer, person, status=422, form=form)


@router.post("/users/{user_id}/remove", response_class=HTMLResponse)
async def remove_person(user_id: RowId, request: Request, session: SessionDep, viewer: AdminFormDep) -> Response:
    person = await _person(session, viewer, user_id)
    form = await read_form(request)
    if form.text("confirm") != "yes":
        return await _people_page(request, session, viewer, status=422,
                                  problem=f"{person.email} was not removed: tick the box to confirm.")
    try:
        async with session.begin_nested():
            await users.remove(session, caller=viewer.principal, user_id=user_id)
    except Conflict as error:
        return await _people_page(request, session, viewer, status=409, problem=sentence(error.message))
    if user_id == viewer.user.id:  # removed themself: their session went with them
        return RedirectResponse("/login", status_code=303)
    return RedirectResponse("/users?notice=removed", status_code=303)
