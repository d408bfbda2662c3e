"""Reading what the api committed, for lifecycle tests: lease rows, outbox messages,
audit events, and the internal client as the other services hold it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
from sqlalchemy import select
from sqlmodel import col

from zc_common.internal_api import InternalApi
from zc_common.messages import Message, decode

from tests.api.factories import Api
from tests.support.credentials import SERVICE_TOKENS, bearer
from zc_api.database import transaction
from zc_api.models import ActionToken, AuditEvent, Lease, OutboxMessage

M = TypeVar("M", bound=Message)

# Whose work each internal route is: the only credential it answers.
_ROUTE_SERVICES = {"/leases/warned": "notifier", "/leases/defer": "notifier", "/leases/": "reaper",
                   "/notifications/": "notifier", "/action-links": "notifier", "/people-links": "notifier",
                   "/cloudaccounts": "ingestor", "/sweeps/": "ingestor"}


@asynccontextmanager
async def internal_client(api: Api, service: str) -> AsyncIterator[InternalApi]:
    """The internal client as ``service`` holds it: its credential, the internal listener."""
    client = InternalApi(
        "http://zerocloud.internal", SERVICE_TOKENS[service], transport=httpx.ASGITransport(app=api.internal_app)
    )
    try:
        yield client
    finally:
        await client.close()


async def lease_row(api: Api, lease_id: int) -> Lease:
    async with transaction(api.sessions) as session:
        lease = await session.get(Lease, lease_id)
    assert lease is not None
    return lease


async def outbox(api: Api, kind: type[M]) -> list[M]:
    """The messages of one type on the outbox, oldest first (published or not)."""
    async with transaction(api.sessions) as session:
        rows = (
            await session.scalars(
                select(OutboxMessage).where(col(OutboxMessage.type) == kind.type_name()).order_by(col(OutboxMessage.id))
            )
        ).all()
    messages = [decode(row.body.encode()) for row in rows]
    assert all(isinstance(m, kind) for m in messages)
    return [m for m in messages if isinstance(m, kind)]


async def audit_events(api: Api, *, action: str, subject_id: int | None = None) -> list[AuditEvent]:
    async with transaction(api.sessions) as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == action)
        if subject_id is not None:
            query = query.where(col(AuditEvent.subject_id) == subject_id)
        return list((await session.scalars(query.order_by(col(AuditEvent.id)))).all())


async def tokens_of(api: Api, lease_id: int) -> list[ActionToken]:
    async with transaction(api.sessions) as session:
        query = select(ActionToken).where(col(ActionToken.lease_id) == lease_id).order_by(col(ActionToken.id))
        return list((await session.scalars(query)).all())


async def post_internal(api: Api, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST to an internal route on the internal listener, as the service it is for."""
    service = next(name for prefix, name in _ROUTE_SERVICES.items() if path.startswith(prefix))
    return await api.internal.post(f"/internal/v1{path}", json=body, headers=bearer(service))
