"""The account policy page (admins): lease lengths, who may own instances, quotas, what
happens at expiry, warnings and the blast-radius cap — validated field by field, with
what was typed kept when something is wrong."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from zc_common.errors import InvalidInput
from zc_common.messages import ActionOnExpiry

from zc_api.deps import SessionDep
from zc_api.display import sentence
from zc_api.models import AccountPolicy
from zc_api.policies import service as policies
from zc_api.policies.schemas import AccountPolicyUpdate
from zc_api.web.forms import (
    AdminFormDep,
    Form,
    read_form,
    short_duration,
    split_duration,
    units_for,
    validation_errors,
)
from zc_api.web.render import page
from zc_api.web.session import AdminDep, Viewer

router = APIRouter(include_in_schema=False)

# The policy's fields as the form names them.
FIELDS = {
    "default_lease_seconds": "default_lease", "lease_expires_in": "default_lease", "max_lease_seconds": "max_lease",
    "owner_tag": "owner_tag", "allowed_email_patterns": "allowed_email_patterns",
    "max_instances_per_user": "max_instances_per_user", "over_quota_grace_seconds": "over_quota_grace",
    "action_on_expiry": "action_on_expiry", "warning_seconds": "warning_times",
    "blast_radius_percent": "blast_radius_percent", "blast_radius_per_hour": "blast_radius_per_hour",
}


def form_values(policy: AccountPolicy) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, seconds in (("default_lease", policy.default_lease_seconds), ("max_lease", policy.max_lease_seconds),
                          ("over_quota_grace", policy.over_quota_grace_seconds)):
        values[name], values[f"{name}_unit"] = split_duration(seconds)
    values.update(
        owner_tag=policy.owner_tag, allowed_email_patterns="\n".join(policy.allowed_email_patterns),
        max_instances_per_user="" if policy.max_instances_per_user is None else str(policy.max_instances_per_user),
        action_on_expiry=policy.action_on_expiry,
        warning_times=", ".join(short_duration(s) for s in sorted(policy.warning_seconds, reverse=True)),
        blast_radius_percent=str(policy.blast_radius_percent), blast_radius_per_hour=str(policy.blast_radius_per_hour),
    )
    return values


def _page(request: Request, viewer: Viewer, values: dict[str, str], errors: dict[str, str], *, status: int = 200,
          notice: str | None = None) -> HTMLResponse:
    return page(
        request, "policy.html", viewer=viewer, title="Lease policy", status=status, values=values, errors=errors,
        units=units_for(values), notice=notice,
        problem="The policy was not saved: please correct the fields marked below." if errors else None,
    )


@router.get("/policy", response_class=HTMLResponse)
async def show_policy(
    request: Request, session: SessionDep, viewer: AdminDep,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    assert viewer.user.account_id is not None
    policy = await policies.get_account_policy(session, caller=viewer.principal, account_id=viewer.user.account_id)
    return _page(request, viewer, form_values(policy), {},
                 notice="The policy was saved; it applies to new leases and renewals from now on."
                 if notice == "saved" else None)


def read_policy(form: Form) -> dict[str, Any]:
    """The AccountPolicyUpdate fields the form holds; what is wrong goes to ``form.errors``."""
    patterns = [p.strip() for line in form.text("allowed_email_patterns").splitlines() for p in line.split(",")]
    try:
        action: ActionOnExpiry | None = ActionOnExpiry(form.text("action_on_expiry"))
    except ValueError:
        action = None
        form.fail("action_on_expiry", "Choose stop or terminate.")
    owner_tag = form.text("owner_tag")
    if not owner_tag:
        form.fail("owner_tag", "Enter the tag that names an instance's owner, such as owner.")
    return {
        "default_lease_seconds": form.duration("default_lease", label="the default lease"),
        "max_lease_seconds": form.duration("max_lease", label="the maximum lease"),
        "owner_tag": owner_tag or None,
        "allowed_email_patterns": [p for p in patterns if p],
        "max_instances_per_user": form.integer("max_instances_per_user", label="the number of instances",
                                               minimum=0, optional=True),
        "over_quota_grace_seconds": form.duration("over_quota_grace", label="the grace period"),
        "action_on_expiry": action,
        "warning_seconds": form.durations("warning_times", label="warning times"),
        "blast_radius_percent": form.integer("blast_radius_percent", label="the share", minimum=0, maximum=100),
        "blast_radius_per_hour": form.integer("blast_radius_per_hour", label="the number per hour", minimum=0),
    }


@router.post("/policy", response_class=HTMLResponse)
async def save_policy(request: Request, session: SessionDep, viewer: AdminFormDep) -> Response:
    assert viewer.user.account_id is not None
    form = await read_form(request)
    fields = read_policy(form)
    update: AccountPolicyUpdate | None = None
    if form.ok:
        try:
            update = AccountPolicyUpdate(**fields)
        except ValidationError as error:
            for name, message in validation_errors(error, FIELDS).items():
                form.fail(name, message)
    if update is None or not form.ok:
        return _page(request, viewer, form.values, form.errors, status=422)
    try:
        async with session.begin_nested():
            await policies.update_account_policy(
                session, caller=viewer.principal, account_id=viewer.user.account_id, update=update
            )
    except InvalidInput as error:
        form.fail(FIELDS.get(error.field or "", "default_lease"), sentence(error.message))
        return _page(request, viewer, form.values, form.errors, status=422)
    return RedirectResponse("/policy?notice=saved", status_code=303)
