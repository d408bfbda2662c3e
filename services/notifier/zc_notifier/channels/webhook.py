"""Slack-compatible webhooks: each digest also posted as ``{"text": …}`` — to the one
webhook the operator set for the installation (``webhook``), and to the webhook each
account's admins set for their own account (``account_webhook``). Both are chat
channels that others read: no renew or shut-down link, invitation or confirmation link
is ever posted there."""

from __future__ import annotations

from typing import Any

import httpx

from zc_notifier.channels.base import Channel, RecipientRefused, SendFailed, channels
from zc_notifier.mail import Mail


class _Webhook(Channel):
    private = False  # a chat channel: others read it, so no link that acts as a credential goes there

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._http = httpx.AsyncClient(timeout=self.settings.smtp_timeout)

    def url(self, mail: Mail) -> str:
        raise NotImplementedError

    async def send(self, mail: Mail) -> None:
        lines = [f"*{mail.subject}* (to {mail.recipient})", *(f"• {line}" for line in mail.summary)]
        try:
            response = await self._http.post(self.url(mail), json={"text": "\n".join(lines)})
        except httpx.HTTPError as error:
            raise SendFailed(f"{self.name}: {type(error).__name__}: {error}") from error
        if response.status_code >= 300:
            failure = f"{self.name} answered {response.status_code}: {response.text[:200]}"
            if self.refused_for_good(response.status_code):
                raise RecipientRefused(failure)
            raise SendFailed(failure)

    def refused_for_good(self, status: int) -> bool:
        return False

    async def close(self) -> None:
        await self._http.aclose()


@channels.register("webhook")
class WebhookChannel(_Webhook):
    """The operator's webhook: every account's notices (an operator's view of the installation)."""

    name = "webhook"
    key_suffix = ":webhook"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.settings.webhook_url:
            raise ValueError("the webhook channel needs webhook_url")
        self._url = self.settings.webhook_url

    def url(self, mail: Mail) -> str:
        return self._url


@channels.register("account_webhook")
class AccountWebhookChannel(_Webhook):
    """Each account's own webhook: only that account's notices go there."""

    name = "account_webhook"
    key_suffix = ":account-webhook"
    per_account = True

    def refused_for_good(self, status: int) -> bool:
        # An account's webhook that is gone or wrong (Slack: 404 no_service, 410, 403) is
        # its admins' to fix: reported once, not retried (429 is a pause, not a refusal).
        return 400 <= status < 500 and status != 429

    def url(self, mail: Mail) -> str:
        if mail.destination is None:
            raise SendFailed("account_webhook: the mail names no account webhook")
        return mail.destination
