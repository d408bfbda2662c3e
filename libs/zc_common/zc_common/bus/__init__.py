"""The bus: one small interface, two implementations (RabbitMQ and in-process)."""

from zc_common.bus.base import Bus, DeadLetter, Handler, PermanentFailure, Subscription
from zc_common.bus.factory import create_bus

__all__ = ["Bus", "DeadLetter", "Handler", "PermanentFailure", "Subscription", "create_bus"]
