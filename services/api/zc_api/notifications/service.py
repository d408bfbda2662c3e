"""Idempotency of mail: the notifier reserves notification keys before sending and marks
them sent after, so a re-delivered message never mails anyone twice."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.errors import InvalidInput
from zc_common.internal_api import AccountWebhook, NoticeRecipient, NoticeRecipients

from zc_api import bulk
from zc_api.models import Account, Notification, User

MAX_KEYS = 10_000
MAX_KEY_LENGTH = 512

_NOTIFICATION = bulk.table(Notification)
_KEYS = sa.func.unnest(bulk.array("keys", _NOTIFICATION.c.key)).column_valued("k")
_RESERVE = (
    pg.insert(_NOTIFICATION)
    .from_select(["key", "state"], sa.select(_KEYS, sa.literal("reserved", _NOTIFICATION.c.state.type)),
                 include_defaults=False)
    .on_conflict_do_nothing(index_elements=[_NOTIFICATION.c.key])
)
_SENT_ALREADY = sa.select(_NOTIFICATION.c.key).where(
    _NOTIFICATION.c.key == sa.any_(bulk.array("keys", _NOTIFICATION.c.key)), _NOTIFICATION.c.state == "sent"
)
_SENDING = pg.insert(_NOTIFICATION).from_select(
    ["key", "state", "sent_at"],
    sa.select(_KEYS, sa.literal("sent", _NOTIFICATION.c.state.type), sa.func.now()),
    include_defaults=False,
)
_MARK_SENT = _SENDING.on_conflict_do_update(
    index_elements=[_NOTIFICATION.c.key],
    set_={"state": "sent", "sent_at": sa.func.coalesce(_NOTIFICATION.c.sent_at, sa.func.now())},
)


def _checked(keys: list[str]) -> list[str]:
    unique = list(dict.fromkeys(keys))
    if len(unique) > MAX_KEYS:
        raise InvalidInput(f"at most {MAX_KEYS} keys per call; send several", field="keys")
    for key in unique:
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(f"a key is 1 to {MAX_KEY_LENGTH} characters long", field="keys")
    return unique


async def reserve(session: AsyncSession, *, keys: list[str]) -> list[str]:
    """The keys not sent yet, in the order asked (a key reserved earlier but never sent
    is answered again: that send failed and is being retried)."""
    unique = _checked(keys)
    if not unique:
        return []
    await session.execute(_RESERVE, {"keys": sorted(unique)})  # one lock order for every caller
    sent = set((await session.scalars(_SENT_ALREADY, {"keys": unique})).all())
    return [key for key in unique if key not in sent]


async def mark_sent(session: AsyncSession, *, keys: list[str]) -> None:
    unique = _checked(keys)
    if unique:
        # Sorted: two callers marking overlapping keys take the row locks in one order.
        await session.execute(_MARK_SENT, {"keys": sorted(unique)})


# Emails are stored lower-case, so the (account_id, email) unique index answers this.
_USER = bulk.table(User)
_ASKED = bulk.unnest("k", _USER.c.account_id, _USER.c.email)
_CONFIRMED = sa.select(_USER.c.account_id, _USER.c.email).where(
    sa.tuple_(_USER.c.account_id, _USER.c.email).in_(sa.select(*_ASKED.c)), _USER.c.email_confirmed_at.is_not(None)
)
_ACCOUNT = bulk.table(Account)
_WEBHOOKS = sa.select(_ACCOUNT.c.id, _ACCOUNT.c.webhook_url).where(
    _ACCOUNT.c.id == sa.any_(bulk.array("account_ids", _ACCOUNT.c.id)), _ACCOUNT.c.webhook_url.is_not(None)
)


async def recipients(
    session: AsyncSession, *, asked: list[NoticeRecipient], account_ids: list[int]
) -> NoticeRecipients:
    """Which of the people asked may be mailed (their address is confirmed in that
    account), and the webhooks of the accounts asked."""
    confirmed: list[NoticeRecipient] = []
    if asked:
        rows = await session.execute(
            _CONFIRMED,
            {"account_id": [r.account_id for r in asked], "email": [r.email.strip().lower() for r in asked]},
        )
        found = {(row.account_id, row.email) for row in rows.all()}
        confirmed = [r for r in asked if (r.account_id, r.email.strip().lower()) in found]
    webhooks: list[AccountWebhook] = []
    if account_ids:
        rows = await session.execute(_WEBHOOKS, {"account_ids": sorted(set(account_ids))})
        webhooks = [AccountWebhook(account_id=row.id, url=row.webhook_url) for row in rows.all()]
    return NoticeRecipients(confirmed=confirmed, webhooks=webhooks)
