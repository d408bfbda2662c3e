"""The cloud accounts pages (admins): onboarding an AWS account — the generated external ID,
the CloudFormation template to deploy, a verify button that reports each check — and the
switch between observe and enforce."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from zc_common.errors import Conflict, InvalidInput
from zc_common.messages import CloudAccountMode

from zc_api.audit import service as audit
from zc_api.bounds import RowId
from zc_api.cloudaccounts import onboarding
from zc_api.cloudaccounts import service as cloudaccounts
from zc_api.cloudaccounts.schemas import CloudAccountCreate, CloudAccountUpdate, VerifyReport
from zc_api.deps import RuntimeDep, SessionDep
from zc_api.display import sentence
from zc_api.models import AuditEvent, CloudAccount
from zc_api.pagination import PageParams
from zc_api.policies import service as policies
from zc_api.web.forms import AdminFormDep, Form, read_form, validation_errors
from zc_api.web.render import page
from zc_api.web.session import AdminDep, Viewer

router = APIRouter(include_in_schema=False)

ALL = PageParams(limit=500, offset=0)
_FIELDS = {"upstream_account_id": "upstream_account_id", "assume_role_arn": "assume_role_arn",
           "regions": "regions", "name": "name", "cloudprovider": "name"}
_NOTICES = {
    "created": "The AWS account is registered, in observe mode. Now deploy the template with the external ID below, "
               "then verify.",
    CloudAccountMode.enforce.value: "Enforce mode is on: when a lease runs out and nobody renewed it, ZeroCloud "
                                    "stops or terminates the instance in this AWS account.",
    CloudAccountMode.observe.value: "Observe mode is on: ZeroCloud changes nothing in this AWS account; it records "
                                    "and mails what it would have done.",
}


def _require_admin_of(viewer: Viewer, row: CloudAccount) -> None:
    viewer.principal.require_admin(row.account_id)


async def _last_verifications(session: SessionDep, viewer: Viewer, cloud_account_ids: list[int]) -> dict[int, AuditEvent]:
    """The newest verification of each of these cloud accounts, from the audit log."""
    return await audit.newest_of_each(
        session, caller=viewer.principal, action="cloud_account.verified", subject_type="cloud_account",
        subject_ids=cloud_account_ids,
    )


async def _list_notice(session: SessionDep, viewer: Viewer, code: str | None, subject: int | None) -> str | None:
    """What the list says after a removal: read back from the removal's own audit event
    (this account's only), so the count shown is the one recorded."""
    if code != "removed":
        return None
    event = None
    if subject is not None:
        event = await audit.newest(
            session, caller=viewer.principal, action="cloud_account.removed", subject_type="cloud_account",
            subject_id=subject,
        )
    if event is None:
        return ("The cloud account was removed: its live leases were released and ZeroCloud no longer assumes its "
                "role. The audit trail is kept, and the AWS account can be onboarded again.")
    released = int(event.details.get("leases_released", 0))
    leases = "1 live lease was" if released == 1 else f"{released} live leases were"
    return (f"The cloud account {event.details.get('name', '')} was removed: {leases} released and ZeroCloud no "
            f"longer assumes its role. The audit trail is kept, and AWS account "
            f"{event.details.get('upstream_account_id', '')} can be onboarded again.")


async def _list_page(
    request: Request, session: SessionDep, viewer: Viewer, *, notice: str | None = None
) -> HTMLResponse:
    principal = viewer.principal
    assert principal.account_id is not None
    rows, count = await cloudaccounts.get_all(session, caller=principal, account_id=principal.account_id, page=ALL)
    return page(
        request, "cloud_accounts.html", viewer=viewer, title="Cloud accounts", rows=rows, count=count,
        verified=await _last_verifications(session, viewer, [row.id for row in rows if row.id is not None]),
        notice=notice,
    )


@router.get("/cloud-accounts", response_class=HTMLResponse)
async def list_cloud_accounts(
    request: Request, session: SessionDep, viewer: AdminDep,
    notice: Annotated[str | None, Query(max_length=32)] = None,
    subject: Annotated[RowId | None, Query()] = None,
) -> HTMLResponse:
    return await _list_page(request, session, viewer, notice=await _list_notice(session, viewer, notice, subject))


# --- onboarding -------------------------------------------------------------------------------


def _new_page(request: Request, viewer: Viewer, form: Form | None = None, *, status: int = 200,
              problem: str | None = None) -> HTMLResponse:
    values = form.values if form else {"regions": "us-east-1"}
    return page(
        request, "cloud_account_new.html", viewer=viewer, title="Onboard an AWS account", status=status,
        values=values, errors=form.errors if form else {}, problem=problem,
    )


@router.get("/cloud-accounts/new", response_class=HTMLResponse)
async def new_cloud_account(request: Request, viewer: AdminDep) -> HTMLResponse:
    return _new_page(request, viewer)


def _regions(raw: str) -> list[str]:
    return [region for region in re.split(r"[\s,;]+", raw.strip().lower()) if region]


@router.post("/cloud-accounts/new", response_class=HTMLResponse)
async def create_cloud_account(
    request: Request, session: SessionDep, viewer: AdminFormDep, runtime: RuntimeDep
) -> Response:
    principal = viewer.principal
    assert principal.account_id is not None
    form = await read_form(request)
    upstream = form.text("upstream_account_id").replace("-", "").replace(" ", "")
    role_arn = form.text("assume_role_arn") or (f"arn:aws:iam::{upstream}:role/ZeroCloud" if upstream else "")
    regions = _regions(form.text("regions"))
    if not form.text("name"):
        form.fail("name", "Enter a name for this AWS account, such as “prod” or “sandbox”.")
    if not regions:
        form.fail("regions", "Enter at least one region, such as us-east-1.")
    new = None
    try:
        new = CloudAccountCreate(name=form.text("name") or "-", upstream_account_id=upstream,
                                 assume_role_arn=role_arn, regions=regions or ["us-east-1"])
    except ValidationError as error:
        for name, message in validation_errors(error, _FIELDS).items():
            form.fail(name, message)
    if not form.ok or new is None:
        return _new_page(request, viewer, form, status=422, problem="Please correct the fields marked below.")
    try:
        async with session.begin_nested():
            row = await cloudaccounts.create(
                session, caller=principal, account_id=principal.account_id, new=new,
                allow_supplied_external_id=runtime.settings.allow_supplied_external_id,
            )
    except (InvalidInput, Conflict) as error:
        form.fail(_FIELDS.get(error.field or "", "upstream_account_id"), sentence(error.message))
        return _new_page(request, viewer, form, status=error.status_code,
                         problem="ZeroCloud could not register this AWS account: see below.")
    return RedirectResponse(f"/cloud-accounts/{row.id}?notice=created", status_code=303)


# --- one cloud account ----------------------------------------------------------------------


async def _detail_page(
    request: Request, session: SessionDep, viewer: Viewer, row: CloudAccount, *, status: int = 200,
    notice: str | None = None, problem: str | None = None, report: VerifyReport | None = None,
) -> HTMLResponse:
    assert row.id is not None
    policy = await policies.get_account_policy(session, caller=viewer.principal, account_id=row.account_id)
    template = onboarding.customer_template(row)
    verified = (await _last_verifications(session, viewer, [row.id])).get(row.id)
    return page(
        request, "cloud_account.html", viewer=viewer, title=f"Cloud account {row.name}", status=status, row=row,
        policy=policy, onboarding=template, report=report, verified=verified, notice=notice, problem=problem,
        role_name=onboarding.role_name(row.role_arn),
    )


async def _admins_cloud_account(session: SessionDep, viewer: Viewer, cloud_account_id: int) -> CloudAccount:
    row = await cloudaccounts.get(session, caller=viewer.principal, cloud_account_id=cloud_account_id)
    _require_admin_of(viewer, row)
    return row


@router.get("/cloud-accounts/{cloud_account_id}", response_class=HTMLResponse)
async def show_cloud_account(
    cloud_account_id: RowId, request: Request, session: SessionDep, viewer: AdminDep,
    notice: Annotated[str | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    row = await _admins_cloud_account(session, viewer, cloud_account_id)
    return await _detail_page(request, session, viewer, row, notice=_NOTICES.get(notice or ""))


@router.get("/cloud-accounts/{cloud_account_id}/template.yaml")
async def download_template(cloud_account_id: RowId, session: SessionDep, viewer: AdminDep) -> Response:
    row = await _admins_cloud_account(session, viewer, cloud_account_id)
    template = onboarding.customer_template(row)
    filename = f"zerocloud-{row.upstream_account_id}.yaml"
    return Response(
        template.text, media_type="application/yaml; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
                 "X-Content-Type-Options": "nosniff"},
    )


@router.post("/cloud-accounts/{cloud_account_id}/verify", response_class=HTMLResponse)
async def verify_cloud_account(
    cloud_account_id: RowId, request: Request, session: SessionDep, viewer: AdminFormDep, runtime: RuntimeDep
) -> HTMLResponse:
    row = await _admins_cloud_account(session, viewer, cloud_account_id)
    # Committed on its own (the ingestor must see the topics it binds before a test event
    # goes through them); the page is then read afresh.
    report = await cloudaccounts.verify_and_probe(runtime, caller=viewer.principal, cloud_account_id=cloud_account_id)
    await session.refresh(row)
    return await _detail_page(request, session, viewer, row, report=report)


@router.post("/cloud-accounts/{cloud_account_id}/mode")
async def switch_mode(cloud_account_id: RowId, request: Request, session: SessionDep, viewer: AdminFormDep) -> Response:
    form = await read_form(request)
    try:
        mode = CloudAccountMode(form.text("mode"))
    except ValueError:
        raise InvalidInput("Choose observe or enforce.", field="mode") from None
    await cloudaccounts.update(session, caller=viewer.principal, cloud_account_id=cloud_account_id,
                               update=CloudAccountUpdate(mode=mode))
    return RedirectResponse(f"/cloud-accounts/{cloud_account_id}?notice={mode.value}", status_code=303)


@router.post("/cloud-accounts/{cloud_account_id}/remove", response_class=HTMLResponse)
async def remove_cloud_account(
    cloud_account_id: RowId, request: Request, session: SessionDep, viewer: AdminFormDep
) -> Response:
    row = await _admins_cloud_account(session, viewer, cloud_account_id)
    form = await read_form(request)
    if form.text("confirm") != "yes":
        return await _detail_page(request, session, viewer, row, status=422,
                                  problem=f"The cloud account {row.name} was not removed: tick the box to confirm.")
    await cloudaccounts.remove(session, caller=viewer.principal, cloud_account_id=cloud_account_id)
    return RedirectResponse(f"/cloud-accounts?notice=removed&subject={cloud_account_id}", status_code=303)
