"""Idempotency of mail: the notifier reserves notification keys before sending and marks
them sent after, so a re-delivered message never mails anyone twice."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from zc_common.errors import InvalidInput
from zc_common.internal_api import AccountWebhook, NoticeRecipient, NoticeRecipients

MAX_KEYS = 10_000
MAX_KEY_LENGTH = 512

_RESERVE = text(
    "INSERT INTO notification (key, state) SELECT k, 'reserved' FROM unnest(CAST(:keys AS text[])) AS k"
    " ON CONFLICT (key) DO NOTHING"
)
_SENT_ALREADY = text("SELECT key FROM notification WHERE key = ANY(CAST(:keys AS text[])) AND state = 'sent'")
_MARK_SENT = text(
    "INSERT INTO notification (key, state, sent_at) SELECT k, 'sent', now() FROM unnest(CAST(:keys AS text[])) AS k"
    " ON CONFLICT (key) DO UPDATE SET state = 'sent', sent_at = COALESCE(notification.sent_at, now())"
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
_CONFIRMED = text(
    "SELECT u.account_id, u.email FROM app_user u"
    " WHERE (u.account_id, u.email) IN (SELECT * FROM unnest(CAST(:account_ids AS int[]), CAST(:emails AS text[])))"
    " AND u.email_confirmed_at IS NOT NULL"
)
_WEBHOOKS = text(
    "SELECT id, webhook_url FROM account WHERE id = ANY(CAST(:account_ids AS int[])) AND webhook_url IS NOT NULL"
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
            {"account_ids": [r.account_id for r in asked], "emails": [r.email.strip().lower() for r in asked]},
        )
        found = {(row.account_id, row.email) for row in rows.all()}
        confirmed = [r for r in asked if (r.account_id, r.email.strip().lower()) in found]
    webhooks: list[AccountWebhook] = []
    if account_ids:
        rows = await session.execute(_WEBHOOKS, {"account_ids": sorted(set(account_ids))})
        webhooks = [AccountWebhook(account_id=row.id, url=row.webhook_url) for row in rows.all()]
    return NoticeRecipients(confirmed=confirmed, webhooks=webhooks)
