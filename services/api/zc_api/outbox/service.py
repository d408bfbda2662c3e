"""Enqueue outgoing messages in the caller's transaction (invariant 4): they exist if
and only if the change that produced them was committed."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.messages import Message

# One statement whatever the number of messages, and always the same text (so it is
# prepared once per connection): arrays, not a VALUES list that SQLAlchemy would have
# to compile anew for every batch size.
_INSERT = text(
    "INSERT INTO outbox (message_id, type, body)"
    " SELECT * FROM unnest(CAST(:message_ids AS uuid[]), CAST(:types AS text[]), CAST(:bodies AS text[]))"
    " ON CONFLICT (message_id) DO NOTHING"
)


async def enqueue(session: AsyncSession, messages: Iterable[Message]) -> int:
    batch = list(messages)
    if not batch:
        return 0
    await session.execute(
        _INSERT,
        {
            "message_ids": [m.message_id for m in batch],
            "types": [m.type for m in batch],
            "bodies": [m.model_dump_json() for m in batch],
        },
    )
    session.info["outbox_written"] = True
    return len(batch)
