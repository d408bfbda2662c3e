"""Accepting a posted EventBridge event: check it is usable and about an AWS account the
caller's account onboarded (and, for a developer, about their own instances), then hand
it to the ingestor through the outbox. It is only
a hint: the ingestor looks the instances up in AWS like for any queued event."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.cloudevents import UnusableEvent, parse_event
from zc_common.errors import InvalidInput, NotPermitted, PayloadTooLarge
from zc_common.messages import CloudEventReceived

from zc_api import bulk
from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.cloudaccounts.claims import in_force
from zc_api.cloudevents.schemas import CloudEventAccepted
from zc_api.models import CloudAccount, Lease, Resource
from zc_api.outbox import service as outbox


def refuse_if_too_large(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the event is more than {max_bytes} bytes; "
            "EventBridge events are far smaller, so this is not one"
        )


async def _require_own_instances(
    session: AsyncSession, caller: Principal, cloud_account: CloudAccount, instance_ids: Sequence[str]
) -> None:
    """A developer may hand in events only about instances whose live lease is theirs:
    an event is a hint that makes ZeroCloud look, and nobody looks on another's behalf."""
    own = set(
        await session.scalars(
            select(col(Resource.instance_id))
            .join(Lease, col(Lease.resource_id) == col(Resource.id))
            .where(
                col(Resource.cloud_account_id) == cloud_account.id,
                col(Resource.instance_id).in_(list(instance_ids)),
                col(Lease.owner_user_id) == caller.user_id,
                bulk.is_live(bulk.table(Lease).c.status),  # as the live-lease index is written
            )
        )
    )
    others = sorted(set(instance_ids) - own)
    if others:
        raise NotPermitted(
            f"a developer may hand in events only for instances they own; not yours: {', '.join(others[:10])} "
            "(an admin of the account can hand in any)",
            field="body",
        )


async def accept(
    session: AsyncSession, *, caller: Principal, body: bytes, max_bytes: int
) -> CloudEventAccepted:
    refuse_if_too_large(len(body), max_bytes)
    try:
        hint = parse_event(body, max_bytes=max_bytes)
        event: dict[str, Any] = json.loads(body)
    except UnusableEvent as error:
        raise InvalidInput(f"this event cannot be used: {error}", field="body") from None

    cloud_account = None
    if caller.account_id is not None:
        cloud_account = await session.scalar(
            select(CloudAccount).where(
                col(CloudAccount.upstream_account_id) == hint.account_id,
                col(CloudAccount.account_id) == caller.account_id,
                in_force(),  # the claim its events would go to
            )
        )
    if cloud_account is None:
        # Another tenant's AWS account gets the same answer as an unknown one.
        raise InvalidInput(
            f"AWS account {hint.account_id} is not onboarded in your ZeroCloud account: "
            "onboard it as a cloud account first",
            field="account",
        )

    if not caller.is_admin:
        await _require_own_instances(session, caller, cloud_account, hint.instance_ids)

    message = CloudEventReceived(event=event)
    await outbox.enqueue(session, [message])
    audit.record(
        session, account_id=cloud_account.account_id, actor=caller.actor, action="cloudevent.received",
        subject_type="cloud_account", subject_id=cloud_account.id, message_id=message.message_id,
        event_name=hint.event_name, event_id=hint.event_id, region=hint.region,
        instance_ids=list(hint.instance_ids),
    )
    return CloudEventAccepted(
        message_id=message.message_id, account_id=hint.account_id, region=hint.region,
        instance_ids=list(hint.instance_ids),
    )
