"""The channels a notice can go out on, by name: ``smtp`` and ``ses`` carry the mail,
``webhook`` also posts it to the operator's chat and ``account_webhook`` to each
account's own. Every channel module is imported here, so none is
silently left out of the registry."""

from __future__ import annotations

from zc_common.settings import NotifierSettings

from zc_notifier.channels import ses, smtp, webhook
from zc_notifier.channels.base import Channel, RecipientRefused, SendFailed, channels

__all__ = ["Channel", "RecipientRefused", "SendFailed", "build_channels", "channels", "ses", "smtp", "webhook"]


def channel_names(settings: NotifierSettings) -> list[str]:
    """The mail channel the settings chose, the accounts' own webhooks (unless switched
    off), and the operator's webhook when one is configured."""
    return [
        settings.delivery,
        *(["account_webhook"] if settings.account_webhooks else []),
        *(["webhook"] if settings.webhook_url else []),
    ]


def build_channels(settings: NotifierSettings) -> list[Channel]:
    return [channels.get(name)(settings) for name in channel_names(settings)]
