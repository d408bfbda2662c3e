"""Cloud accounts: onboarding a customer's AWS account with a ZeroCloud-generated
external ID, changing it, and verifying that its role works."""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.aws import AwsAccess, CloudAccountRole, error_code
from zc_common.errors import Conflict, InvalidInput, NotFound
from zc_common.internal_api import CloudAccountMode

from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.cloudaccounts.schemas import (
    CONFUSED_DEPUTY,
    ROLE_ARN,
    CloudAccountCreate,
    CloudAccountUpdate,
    VerifyCheck,
    VerifyReport,
)
from zc_api.leases import actions as leases
from zc_api.models import CloudAccount
from zc_api.pagination import PageParams, paginate

# What AWS accepts as an ExternalId (sts:AssumeRole), for operators who allow supplied ones.
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
_ALREADY_ONBOARDED = (
    "this AWS account (or its role) is already onboarded in ZeroCloud, and an AWS account can be "
    "onboarded only once; if it should be yours, ask whoever onboarded it to remove it first"
)
CHECK_SECONDS = 30.0
DETAIL_CHARS = 400


def new_external_id() -> str:
    return "zc-" + secrets.token_urlsafe(24)


async def create(
    session: AsyncSession, *, caller: Principal, account_id: int, new: CloudAccountCreate,
    allow_supplied_external_id: bool = False,
) -> CloudAccount:
    caller.require_admin(account_id)
    external_id = new_external_id()
    if new.assume_role_external_id is not None:
        if not allow_supplied_external_id:
            raise InvalidInput(CONFUSED_DEPUTY, field="assume_role_external_id")
        if not _EXTERNAL_ID.match(new.assume_role_external_id):
            raise InvalidInput(
                "an external ID is 2 to 1224 letters, digits or +=,.@:/-", field="assume_role_external_id"
            )
        external_id = new.assume_role_external_id
    match = ROLE_ARN.match(new.assume_role_arn)
    assert match is not None  # the schema checked the form
    if match.group(1) != new.upstream_account_id:
        raise InvalidInput(
            f"the role {new.assume_role_arn} belongs to AWS account {match.group(1)}, not to "
            f"{new.upstream_account_id}: use the ARN of the role created in that account",
            field="assume_role_arn",
        )

    existing = await session.scalar(
        select(CloudAccount).where(
            or_(col(CloudAccount.role_arn) == new.assume_role_arn,
                col(CloudAccount.upstream_account_id) == new.upstream_account_id)
        )
    )
    if existing is not None:
        field = "assume_role_arn" if existing.role_arn == new.assume_role_arn else "upstream_account_id"
        if existing.account_id == account_id:  # only the caller's own cloud account may be named
            raise Conflict(f"already onboarded in this account as cloud account {existing.id}", field=field)
        raise Conflict(_ALREADY_ONBOARDED, field=field)

    row = CloudAccount(
        account_id=account_id, name=new.name, provider="AWS", upstream_account_id=new.upstream_account_id,
        role_arn=new.assume_role_arn, external_id=external_id, regions=new.regions, mode=new.mode.value,
    )
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:  # a concurrent onboarding of the same AWS account won the race
        raise Conflict(_ALREADY_ONBOARDED) from None
    audit.record(
        session, account_id=account_id, actor=caller.actor, action="cloud_account.created",
        subject_type="cloud_account", subject_id=row.id, name=row.name,
        upstream_account_id=row.upstream_account_id, role_arn=row.role_arn, regions=row.regions,
        mode=row.mode, external_id_source="supplied" if new.assume_role_external_id else "generated",
    )
    return row


async def get(session: AsyncSession, *, caller: Principal, cloud_account_id: int) -> CloudAccount:
    row = await session.get(CloudAccount, cloud_account_id)
    if row is None or caller.kind != "user" or row.account_id != caller.account_id:
        raise NotFound(f"cloud account {cloud_account_id} not found")
    return row


async def get_all(
    session: AsyncSession, *, caller: Principal, account_id: int, page: PageParams
) -> tuple[list[CloudAccount], int]:
    caller.require_account(account_id)
    query = (
        select(CloudAccount).where(col(CloudAccount.account_id) == account_id).order_by(col(CloudAccount.id))
    )
    return await paginate(session, query, page)


async def update(
    session: AsyncSession, *, caller: Principal, cloud_account_id: int, update: CloudAccountUpdate
) -> CloudAccount:
    row = await get(session, caller=caller, cloud_account_id=cloud_account_id)
    caller.require_admin(row.account_id)
    changes: dict[str, Any] = {}
    for name in update.model_fields_set:
        value = getattr(update, name)
        if value is None:
            raise InvalidInput(f"{name} cannot be null: leave it out to keep the current value", field=name)
        changes[name] = value.value if name == "mode" else value
    diff = {name: {"from": getattr(row, name), "to": value} for name, value in changes.items()
            if getattr(row, name) != value}
    for name, value in changes.items():
        setattr(row, name, value)
    if diff.get("mode", {}).get("to") == CloudAccountMode.enforce.value:
        assert row.id is not None
        await leases.enforce_after_observe(session, cloud_account_id=row.id, actor=caller.actor)
    if diff:
        audit.record(
            session, account_id=row.account_id, actor=caller.actor, action="cloud_account.updated",
            subject_type="cloud_account", subject_id=row.id, changes=diff,
        )
        await session.flush()
    return row


async def verify(
    session: AsyncSession, *, caller: Principal, aws: AwsAccess, cloud_account_id: int
) -> VerifyReport:
    """Assume the role with the external ID and try what ZeroCloud will do; say what works."""
    row = await get(session, caller=caller, cloud_account_id=cloud_account_id)
    caller.require_admin(row.account_id)
    role = CloudAccountRole(row.role_arn, row.external_id)
    aws.forget(role)  # what works now, not what worked when the credentials were cached

    assumed = await _check("assume_role", lambda: _assume(aws, role))
    later = ["caller_identity", *(f"describe_instances:{region}" for region in row.regions)]
    if not assumed.ok:
        checks = [assumed, *(VerifyCheck(name=n, ok=False, detail="skipped: the role could not be assumed")
                             for n in later)]
    else:
        checks = [assumed, *await asyncio.gather(
            _check("caller_identity", lambda: _identity(aws, role, row.upstream_account_id)),
            *(_check(f"describe_instances:{region}", functools.partial(_describe, aws, role, region))
              for region in row.regions),
        )]
    report = VerifyReport(ok=all(check.ok for check in checks), checks=checks)
    audit.record(
        session, account_id=row.account_id, actor=caller.actor, action="cloud_account.verified",
        subject_type="cloud_account", subject_id=row.id, ok=report.ok,
        failed=[check.name for check in checks if not check.ok],
    )
    return report


async def _check(name: str, run: Callable[[], Awaitable[str]]) -> VerifyCheck:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            detail = await run()
    except TimeoutError:
        return VerifyCheck(name=name, ok=False, detail=f"AWS did not answer within {CHECK_SECONDS:.0f} s")
    except _Failed as failure:
        return VerifyCheck(name=name, ok=False, detail=str(failure))
    except Exception as error:  # any AWS, network or credentials failure is a finding, not a 500
        code = error_code(error)
        text = (str(error) or type(error).__name__)[:DETAIL_CHARS]
        return VerifyCheck(name=name, ok=False, detail=f"{code}: {text}" if code else text)
    return VerifyCheck(name=name, ok=True, detail=detail)


class _Failed(Exception):
    """A check that got an answer, and the answer was wrong."""


async def _assume(aws: AwsAccess, role: CloudAccountRole) -> str:
    await aws.credentials(role)
    return f"assumed {role.role_arn} with the external ID"


async def _identity(aws: AwsAccess, role: CloudAccountRole, upstream_account_id: str) -> str:
    async with aws.client("sts", role=role) as sts:
        identity = await sts.get_caller_identity()
    if identity.get("Account") != upstream_account_id:
        raise _Failed(f"the role acts in AWS account {identity.get('Account')}, not {upstream_account_id}")
    return f"acting as {identity.get('Arn')}"


async def _describe(aws: AwsAccess, role: CloudAccountRole, region: str) -> str:
    async with aws.client("ec2", region, role=role) as ec2:
        answer = await ec2.describe_instances(MaxResults=5)
    count = sum(len(reservation.get("Instances", [])) for reservation in answer.get("Reservations", []))
    return f"DescribeInstances works in {region} ({count} instance(s) on the first page)"

