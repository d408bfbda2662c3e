"""Enqueue outgoing messages in the caller's transaction (invariant 4): they exist if
and only if the change that produced them was committed."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.messages import Message

from zc_api import bulk
from zc_api.models import OutboxMessage

# One statement whatever the number of messages, and always the same text (so it is
# prepared once per connection): column arrays, not a VALUES list that SQLAlchemy would have
# to compile anew for every batch size.
_OUTBOX = bulk.table(OutboxMessage)
_MESSAGES = bulk.unnest("v", _OUTBOX.c.message_id, _OUTBOX.c.type, _OUTBOX.c.body)
_INSERT = (
    pg.insert(_OUTBOX)
    .from_select(list(_MESSAGES.c.keys()), sa.select(*_MESSAGES.c), include_defaults=False)
    .on_conflict_do_nothing(index_elements=[_OUTBOX.c.message_id])
)


async def enqueue(session: AsyncSession, messages: Iterable[Message]) -> int:
    batch = list(messages)
    if not batch:
        return 0
    await session.execute(
        _INSERT,
        {
            "message_id": [m.message_id for m in batch],
            "type": [m.type for m in batch],
            "body": [m.model_dump_json() for m in batch],
        },
    )
    session.info["outbox_written"] = True
    return len(batch)
