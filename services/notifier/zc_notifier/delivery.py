"""Getting one mail through one channel: tries with exponential backoff, and a breaker
that notices the channel is down so a backlog fails fast instead of queueing behind it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from zc_common.metrics import MAILS

from zc_notifier.channels import Channel, RecipientRefused, SendFailed
from zc_notifier.mail import Mail

log = logging.getLogger("zc.notifier.delivery")


class ChannelDown(SendFailed):
    """Not even tried: the channel failed every try of an earlier mail moments ago."""


class Breaker:
    """After a mail fails every try, the channel is presumed down: sends fail at once for
    ``cooldown`` seconds, then get one try each until one goes through. Without it a
    batch the bus splits after a failure would sit through all the tries of every one of
    its messages in turn; with it they fail fast and the bus's retry queue does the
    waiting."""

    def __init__(self, cooldown: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self.clock = clock
        self.tripped = False
        self.open_until = 0.0

    def allows(self) -> bool:
        return self.clock() >= self.open_until

    def succeeded(self) -> None:
        if self.tripped:
            log.info("channel answers again")
        self.tripped = False
        self.open_until = 0.0

    def failed(self) -> None:
        self.tripped = True
        self.open_until = self.clock() + self.cooldown


class Delivery:
    """One channel with its retry policy and breaker."""

    def __init__(self, channel: Channel, *, attempts: int, retry_delay: float, cooldown: float) -> None:
        self.channel = channel
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.cooldown = cooldown
        self.breaker = Breaker(cooldown)
        # A channel that posts per account keeps a breaker per destination: one account's
        # webhook being down must not hold back every other account's.
        self._breakers: dict[str, Breaker] = {}

    def breaker_for(self, mail: Mail) -> Breaker:
        if not self.channel.per_account or mail.destination is None:
            return self.breaker
        return self._breakers.setdefault(mail.destination, Breaker(self.cooldown))

    @property
    def name(self) -> str:
        return self.channel.name

    def key(self, notice_key: str) -> str:
        return notice_key + self.channel.key_suffix

    async def send(self, mail: Mail) -> None:
        """Deliver, or raise SendFailed once every try failed (RecipientRefused at once).
        Counted once per mail whatever the tries: ok, or failed."""
        try:
            await self._send(mail)
        except SendFailed:
            MAILS.labels(self.name, "failed").inc()
            raise
        MAILS.labels(self.name, "ok").inc()

    async def _send(self, mail: Mail) -> None:
        breaker = self.breaker_for(mail)
        attempts = 1 if breaker.tripped else self.attempts
        last: SendFailed | None = None
        for attempt in range(1, attempts + 1):
            if not breaker.allows():
                raise ChannelDown(f"{self.name}: presumed down after repeated failures ({last or 'earlier mail'})")
            try:
                await self.channel.send(mail)
            except RecipientRefused:
                raise
            except Exception as error:  # noqa: BLE001 - anything else may pass on another try
                last = error if isinstance(error, SendFailed) else SendFailed(f"{type(error).__name__}: {error}")
                log.warning(
                    "%s to %s failed (try %d of %d): %s", self.name, mail.recipient, attempt, attempts, last
                )
                if attempt < attempts:
                    await asyncio.sleep(self.retry_delay * 2 ** (attempt - 1))
                continue
            breaker.succeeded()
            return
        breaker.failed()
        assert last is not None
        raise last
