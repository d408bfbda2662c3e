"""A person an admin added confirming their address, as they would from the mail: the
link the notifier would mint for them (through the internal API), then its page's POST."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from zc_common.internal_api import InternalApi, PeopleLinkKind

from tests.support.credentials import NOTIFIER_TOKEN


async def follow_confirmation_link(api_url: str, internal_url: str, user_id: int) -> None:
    """``api_url``: the public listener; ``internal_url``: the internal one."""
    internal = InternalApi(internal_url, NOTIFIER_TOKEN)
    try:
        link = await internal.people_link(PeopleLinkKind.email_confirmation, user_id)
    finally:
        await internal.close()
    assert link is not None, f"user {user_id} needs no confirmation"
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as web:
        answer = await web.post(urlsplit(link.url).path)
    assert answer.status_code == 200, answer.text
