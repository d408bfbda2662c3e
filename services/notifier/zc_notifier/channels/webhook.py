"""A Slack-compatible webhook: each digest also posted as ``{"text": …}``."""

from __future__ import annotations

from typing import Any

import httpx

from zc_notifier.channels.base import Channel, SendFailed, channels
from zc_notifier.mail import Mail


@channels.register("webhook")
class WebhookChannel(Channel):
    name = "webhook"
    key_suffix = ":webhook"
    private = False  # a chat channel: others read it, so no invitation or confirmation link goes there

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.settings.webhook_url:
            raise ValueError("the webhook channel needs webhook_url")
        self.url = self.settings.webhook_url
        self._http = httpx.AsyncClient(timeout=self.settings.smtp_timeout)

    async def send(self, mail: Mail) -> None:
        lines = [f"*{mail.subject}* (to {mail.recipient})", *(f"• {line}" for line in mail.summary)]
        try:
            response = await self._http.post(self.url, json={"text": "\n".join(lines)})
        except httpx.HTTPError as error:
            raise SendFailed(f"webhook: {type(error).__name__}: {error}") from error
        if response.status_code >= 300:
            raise SendFailed(f"webhook answered {response.status_code}: {response.text[:200]}")

    async def close(self) -> None:
        await self._http.aclose()
