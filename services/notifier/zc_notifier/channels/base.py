"""What a channel is: something that delivers a rendered Mail to its recipient."""

from __future__ import annotations

import abc
from typing import ClassVar

from zc_common.settings import NotifierSettings

from zc_notifier.channels.registry import Registry
from zc_notifier.mail import Mail


class SendFailed(Exception):
    """This try did not deliver; another may (server down, timeout, 4xx)."""


class RecipientRefused(SendFailed):
    """The server refused the recipient for good (5xx): trying again never helps."""


class Channel(abc.ABC):
    """Delivers mails. ``key_suffix`` keeps its notification keys apart from the mail
    channel's, so each channel delivers each notice once, whatever the others did."""

    name: ClassVar[str] = ""
    key_suffix: ClassVar[str] = ""
    # Delivers to the recipient alone (a mailbox), so a mail may carry a link that acts
    # as a credential (an invitation, an address confirmation). A chat channel does not.
    private: ClassVar[bool] = True
    # Posts each mail to the webhook of the account its notices belong to (Mail.destination),
    # not to one place set for the whole installation.
    per_account: ClassVar[bool] = False

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings

    @abc.abstractmethod
    async def send(self, mail: Mail) -> None:
        """Deliver or raise SendFailed (RecipientRefused when retrying cannot help)."""

    async def ready(self) -> bool:
        """Whether the channel's server answers now (for /readyz)."""
        return True

    async def close(self) -> None:  # noqa: B027 - most channels hold nothing to release
        """Release connections and clients."""


channels: Registry[Channel] = Registry("channel")
