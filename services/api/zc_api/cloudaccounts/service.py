"""Cloud accounts: claiming a customer's AWS account with a ZeroCloud-generated external
ID, changing it, verifying that its role works (which makes the claim exclusive and binds
each region's SNS topic), and removing it."""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from zc_common.aws import AwsAccess, CloudAccountRole, error_code
from zc_common.errors import Conflict, InvalidInput, NotFound
from zc_common.messages import CloudAccountMode, utcnow

from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.cloudaccounts import topics
from zc_api.cloudaccounts.schemas import (
    CONFUSED_DEPUTY,
    ROLE_ARN,
    CloudAccountCreate,
    CloudAccountUpdate,
    VerifyCheck,
    VerifyReport,
)
from zc_api.database import transaction
from zc_api.leases import actions as leases
from zc_api.models import CloudAccount, EventFlow
from zc_api.pagination import PageParams, paginate
from zc_api.runtime import ApiRuntime

# What AWS accepts as an ExternalId (sts:AssumeRole), for operators who allow supplied ones.
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
# Said to whoever proved they control the role, and only to them: no tenant is named.
ALREADY_VERIFIED = (
    "this AWS account is already verified in another ZeroCloud account, and only one ZeroCloud "
    "account can hold it; if it should be yours, ask whoever holds it to remove it, or your operator"
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

    # Only the caller's own claims are looked at: whether another tenant claims this AWS
    # account is never told here (a claim is exclusive once verified, see claims.py).
    existing = await session.scalar(
        select(CloudAccount).where(
            col(CloudAccount.account_id) == account_id,
            col(CloudAccount.removed_at).is_(None),
            or_(col(CloudAccount.role_arn) == new.assume_role_arn,
                col(CloudAccount.upstream_account_id) == new.upstream_account_id),
        )
    )
    if existing is not None:
        field = "assume_role_arn" if existing.role_arn == new.assume_role_arn else "upstream_account_id"
        raise Conflict(f"already onboarded in this account as cloud account {existing.id}", field=field)

    row = CloudAccount(
        account_id=account_id, name=new.name, provider="AWS", upstream_account_id=new.upstream_account_id,
        role_arn=new.assume_role_arn, external_id=external_id, regions=new.regions, mode=new.mode,
    )
    session.add(row)
    await session.flush()
    await session.refresh(row)  # created_at, for the claim's status
    audit.record(
        session, account_id=account_id, actor=caller.actor, action="cloud_account.created",
        subject_type="cloud_account", subject_id=row.id, name=row.name,
        upstream_account_id=row.upstream_account_id, role_arn=row.role_arn, regions=row.regions,
        mode=row.mode, external_id_source="supplied" if new.assume_role_external_id else "generated",
    )
    return row


async def get(session: AsyncSession, *, caller: Principal, cloud_account_id: int) -> CloudAccount:
    row = await session.get(CloudAccount, cloud_account_id)
    if row is None or row.removed_at is not None or caller.kind != "user" or row.account_id != caller.account_id:
        raise NotFound(f"cloud account {cloud_account_id} not found")
    return row


async def get_all(
    session: AsyncSession, *, caller: Principal, account_id: int, page: PageParams
) -> tuple[list[CloudAccount], int]:
    caller.require_account(account_id)
    query = (
        select(CloudAccount)
        .where(col(CloudAccount.account_id) == account_id, col(CloudAccount.removed_at).is_(None))
        .order_by(col(CloudAccount.id))
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
    if "topic_arns" in changes:
        changes["topic_arns"] = topics.checked(
            changes["topic_arns"], regions=changes.get("regions", row.regions),
            upstream_account_id=row.upstream_account_id,
        )
    elif "regions" in changes:  # a region no longer watched keeps no topic
        changes["topic_arns"] = {r: arn for r, arn in row.topic_arns.items() if r in changes["regions"]}
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
    session: AsyncSession, *, caller: Principal, aws: AwsAccess, cloud_account_id: int,
    event_queue_arn: str | None = None,
) -> VerifyReport:
    """Assume the role with the external ID and try what ZeroCloud will do; say what works.
    A role that can be assumed and acts in the claimed AWS account proves the claim: it
    becomes exclusive. Each region's SNS topic is bound from its stack (or as entered)."""
    row = await get(session, caller=caller, cloud_account_id=cloud_account_id)
    caller.require_admin(row.account_id)
    role = CloudAccountRole(row.role_arn, row.external_id)
    aws.forget(role)  # what works now, not what worked when the credentials were cached

    assumed = await _check("assume_role", lambda: _assume(aws, role))
    later = [
        "caller_identity", *(f"describe_instances:{region}" for region in row.regions),
        *(f"events_topic:{region}" for region in row.regions), "claim",
    ]
    bound: dict[str, str] = {}
    if not assumed.ok:
        checks = [assumed, *(VerifyCheck(name=n, ok=False, detail="skipped: the role could not be assumed")
                             for n in later)]
    else:
        identity, *found = await asyncio.gather(
            _check("caller_identity", lambda: _identity(aws, role, row.upstream_account_id)),
            *(_check(f"describe_instances:{region}", functools.partial(_describe, aws, role, region))
              for region in row.regions),
            *(_check(f"events_topic:{region}", functools.partial(_topic, aws, role, row, region, bound))
              for region in row.regions),
        )
        checks = [assumed, identity, *found, await _claim(session, row, proven=identity.ok)]
    bound = {region: bound.get(region) or row.topic_arns[region]
             for region in row.regions if region in bound or region in row.topic_arns}
    if bound != row.topic_arns:
        row.topic_arns = bound
        await session.flush()
    if event_queue_arn is not None and assumed.ok:
        checks += await asyncio.gather(*(
            _check(f"events_subscription:{region}",
                   functools.partial(topics.subscribe, aws, region, bound[region], event_queue_arn))
            if region in bound else _skipped(f"events_subscription:{region}", "no topic is bound in this region")
            for region in row.regions
        ))
    report = VerifyReport(ok=all(check.ok for check in checks), checks=checks)
    audit.record(
        session, account_id=row.account_id, actor=caller.actor, action="cloud_account.verified",
        subject_type="cloud_account", subject_id=row.id, ok=report.ok,
        failed=[check.name for check in checks if not check.ok], topic_arns=row.topic_arns,
        verified=row.verified_at is not None,
    )
    return report


async def verify_and_probe(runtime: ApiRuntime, *, caller: Principal, cloud_account_id: int) -> VerifyReport:
    """``verify``, committed, then ``probe_events`` (the two halves of the verify routes)."""
    async with transaction(runtime.sessions) as session:
        report = await verify(
            session, caller=caller, aws=runtime.aws, cloud_account_id=cloud_account_id,
            event_queue_arn=runtime.settings.event_queue_arn,
        )
    return await probe_events(
        runtime.sessions, aws=runtime.aws, caller=caller, report=report, cloud_account_id=cloud_account_id,
        wait_seconds=runtime.settings.verify_event_wait_seconds,
    )


# How often verify looks whether its test event arrived.
PROBE_POLL_SECONDS = 0.25


async def probe_events(
    sessions: async_sessionmaker[AsyncSession], *, aws: AwsAccess, caller: Principal, report: VerifyReport,
    cloud_account_id: int, wait_seconds: float,
) -> VerifyReport:
    """After verify committed (the ingestor must see the topics it bound): send a test
    event through each region's topic that ZeroCloud's queue is subscribed to, and wait for
    the ingestor to say it arrived (``events_flow:<region>``). Answers the report with them."""
    prefix = "events_subscription:"
    regions = [check.name.removeprefix(prefix) for check in report.checks
               if check.ok and check.name.startswith(prefix)]
    if not regions:
        return report
    async with transaction(sessions) as session:
        row = await session.get(CloudAccount, cloud_account_id)
        assert row is not None
        session.expunge(row)
    probes = await asyncio.gather(*(
        _check(f"events_flow:{region}",
               functools.partial(_probe, sessions, aws, row, region, row.topic_arns[region], wait_seconds))
        for region in regions if region in row.topic_arns
    ))
    async with transaction(sessions) as session:
        audit.record(
            session, account_id=row.account_id, actor=caller.actor, action="cloud_account.events_probed",
            subject_type="cloud_account", subject_id=row.id,
            flowing=[c.name.split(":", 1)[1] for c in probes if c.ok],
            not_flowing=[c.name.split(":", 1)[1] for c in probes if not c.ok],
        )
    checks = [*report.checks, *probes]
    return VerifyReport(ok=all(check.ok for check in checks), checks=checks)


async def _probe(
    sessions: async_sessionmaker[AsyncSession], aws: AwsAccess, row: CloudAccount, region: str, topic_arn: str,
    wait_seconds: float,
) -> str:
    nonce = secrets.token_urlsafe(24)
    await topics.send_probe(aws, row, region, topic_arn, nonce)
    started = asyncio.get_running_loop().time()
    while True:
        async with transaction(sessions) as session:
            seen = await session.scalar(
                select(col(EventFlow.last_probe))
                .where(col(EventFlow.cloud_account_id) == row.id, col(EventFlow.region) == region)
            )
        elapsed = asyncio.get_running_loop().time() - started
        if seen == nonce:
            return f"a test event sent through {topic_arn} reached ZeroCloud in {elapsed:.1f} s: events flow"
        if elapsed >= wait_seconds:
            raise _Failed(
                f"a test event sent through {topic_arn} did not reach ZeroCloud within {wait_seconds:.0f} s: check "
                "that the subscription is confirmed, that the queue policy's CustomerTopicArns lists this topic, "
                "and that the ingestor polls ZC_EVENT_QUEUE_URLS (the periodic sweep finds instances meanwhile)"
            )
        await asyncio.sleep(PROBE_POLL_SECONDS)


async def _claim(session: AsyncSession, row: CloudAccount, *, proven: bool) -> VerifyCheck:
    """Make the claim exclusive, unless another tenant's verified claim holds the account."""
    if not proven:
        return VerifyCheck(
            name="claim", ok=False,
            detail="skipped: the role must act in this AWS account before the claim is made exclusive",
        )
    held = await session.scalar(
        select(col(CloudAccount.id)).where(
            col(CloudAccount.id) != row.id, col(CloudAccount.removed_at).is_(None),
            col(CloudAccount.verified_at).is_not(None),
            or_(col(CloudAccount.upstream_account_id) == row.upstream_account_id,
                col(CloudAccount.role_arn) == row.role_arn),
        )
    )
    if held is not None:
        return VerifyCheck(name="claim", ok=False, detail=ALREADY_VERIFIED)
    if row.verified_at is None:
        await session.flush()
        try:
            async with session.begin_nested():
                row.verified_at = utcnow()
                await session.flush()
        except IntegrityError:  # another tenant's verify of the same AWS account won the race
            await session.refresh(row)
            return VerifyCheck(name="claim", ok=False, detail=ALREADY_VERIFIED)
    return VerifyCheck(
        name="claim", ok=True,
        detail=f"AWS account {row.upstream_account_id} is this cloud account's alone: its events, sweeps and "
               "reaping come here",
    )


async def remove(session: AsyncSession, *, caller: Principal, cloud_account_id: int) -> int:
    """Remove a cloud account: its live leases released (audited), its role no longer
    assumed, its AWS account id free to be claimed again. The row, its resources, leases
    and audit trail are kept. Answers how many leases were released."""
    row = await get(session, caller=caller, cloud_account_id=cloud_account_id)
    caller.require_admin(row.account_id)
    assert row.id is not None
    # Lock the row first: an ingest or a claim of the same cloud account waits for us.
    await session.refresh(row, with_for_update=True)
    if row.removed_at is not None:
        raise NotFound(f"cloud account {cloud_account_id} not found")
    now = utcnow()
    row.removed_at = now
    released = await leases.release_all(
        session, cloud_account_id=row.id, actor=caller.actor, now=now,
        reason=f"cloud account {row.name} ({row.upstream_account_id}) was removed from ZeroCloud",
    )
    audit.record(
        session, account_id=row.account_id, actor=caller.actor, action="cloud_account.removed",
        subject_type="cloud_account", subject_id=row.id, name=row.name,
        upstream_account_id=row.upstream_account_id, role_arn=row.role_arn, leases_released=released,
    )
    await session.flush()
    return released


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


async def _skipped(name: str, why: str) -> VerifyCheck:
    return VerifyCheck(name=name, ok=False, detail=f"skipped: {why}")


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


async def _topic(
    aws: AwsAccess, role: CloudAccountRole, row: CloudAccount, region: str, bound: dict[str, str]
) -> str:
    """The region's topic from its stack, else the one an admin entered."""
    entered = row.topic_arns.get(region)
    try:
        arn, stack = await topics.stack_topic(aws, role, row, region)
    except topics.TopicNotFound as missing:
        if entered is None:
            raise _Failed(str(missing)) from None
        return f"events topic {entered} (entered on the cloud account; {missing})"
    except Exception as error:  # e.g. a role from an older template may not read stacks
        code = error_code(error) or type(error).__name__
        if entered is None:
            raise _Failed(
                f"the stacks in {region} could not be read ({code}: {str(error)[:DETAIL_CHARS]}): update the stack "
                "to the current template (the role may then call cloudformation:DescribeStacks), or enter the "
                "region's TopicArn (topic_arns) on the cloud account"
            ) from None
        return f"events topic {entered} (entered on the cloud account; the stacks could not be read: {code})"
    bound[region] = arn
    return f"events topic {arn}, from stack {stack}"


async def _describe(aws: AwsAccess, role: CloudAccountRole, region: str) -> str:
    async with aws.client("ec2", region, role=role) as ec2:
        answer = await ec2.describe_instances(MaxResults=5)
    count = sum(len(reservation.get("Instances", [])) for reservation in answer.get("Reservations", []))
    return f"DescribeInstances works in {region} ({count} instance(s) on the first page)"

