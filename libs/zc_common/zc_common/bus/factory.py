"""Build the bus a service's settings ask for; services never know which they got."""

from __future__ import annotations

from zc_common.bus.base import Bus
from zc_common.bus.memory import InProcessBus
from zc_common.bus.rabbit import RabbitBus
from zc_common.settings import ZeroCloudSettings


def create_bus(settings: ZeroCloudSettings) -> Bus:
    if settings.bus == "memory":
        return InProcessBus()
    return RabbitBus(settings.amqp_url, settings.amqp_exchange, prefetch=settings.amqp_prefetch)
