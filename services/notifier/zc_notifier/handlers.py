"""The notifier's bus subscription: one queue, large batches, and the bus's batching
window as the digest window."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from zc_common.bus import Bus
from zc_common.messages import (
    BlastRadiusHalted,
    EmailConfirmationRequested,
    InvitationCreated,
    LeaseChanged,
    LeaseExpiringSoon,
    LeasesPastTheirEnd,
)

if TYPE_CHECKING:
    from zc_notifier.service import Notifier

QUEUE = "notifier"
BATCH_SIZE = 1000
MESSAGE_TYPES = (
    LeaseChanged, LeaseExpiringSoon, BlastRadiusHalted, LeasesPastTheirEnd, InvitationCreated,
    EmailConfirmationRequested,
)


def subscribe(bus: Bus, notifier: Notifier) -> None:
    """Everything that arrives within ``digest_window`` of the first message is one batch,
    so each recipient gets one mail for it."""
    settings = notifier.settings

    async def handle(messages: Sequence[Any]) -> None:
        await notifier.handle(messages)

    bus.subscribe(
        QUEUE,
        MESSAGE_TYPES,
        handle,
        batch_size=BATCH_SIZE,
        max_wait=settings.digest_window,
        max_attempts=settings.redelivery_attempts,
        retry_delay=settings.redelivery_delay,
    )
