"""The notifier's bus subscription: one queue, large batches, and the bus's batching
window as the digest window."""

from __future__ import annotations

from zc_common.bus import Bus, topology

from zc_notifier.service import Notifier

BATCH_SIZE = 1000


def subscribe(bus: Bus, notifier: Notifier) -> None:
    """Everything that arrives within ``digest_window`` of the first message is one batch,
    so each recipient gets one mail for it. Call before ``bus.start()``."""
    settings = notifier.settings
    bus.subscribe(
        topology.NOTIFIER,
        notifier.handle,
        batch_size=BATCH_SIZE,
        max_wait=settings.digest_window,
        max_attempts=settings.redelivery_attempts,
        retry_delay=settings.redelivery_delay,
    )
