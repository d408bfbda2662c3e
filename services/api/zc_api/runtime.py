"""What the api holds while it runs: settings, the database, the bus, the outbox relay."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from zc_common.aws import AwsAccess
from zc_common.bus import Bus
from zc_common.settings import ApiSettings


@dataclass
class ApiRuntime:
    settings: ApiSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    bus: Bus
    aws: AwsAccess
    outbox_wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def service_tokens(self) -> dict[str, str]:
        """Each service's own credential, by the service's name."""
        return {
            "ingestor": self.settings.ingestor_token,
            "notifier": self.settings.notifier_token,
            "reaper": self.settings.reaper_token,
        }

    def wake_outbox(self) -> None:
        """A transaction committed outgoing messages: let the relay publish them now."""
        self.outbox_wakeup.set()
