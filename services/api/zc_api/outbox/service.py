"""Enqueue outgoing messages in the caller's transaction (invariant 4): they exist if
and only if the change that produced them was committed."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from zc_api.models import OutboxMessage
from zc_common.messages import Message


async def enqueue(session: AsyncSession, messages: Iterable[Message]) -> int:
    rows = [{"message_id": m.message_id, "type": m.type, "body": m.model_dump_json()} for m in messages]
    if not rows:
        return 0
    await session.execute(insert(OutboxMessage).values(rows).on_conflict_do_nothing(index_elements=["message_id"]))
    session.info["outbox_written"] = True
    return len(rows)
