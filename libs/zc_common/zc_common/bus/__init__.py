"""The bus: one small interface, two implementations (RabbitMQ and in-process), and
the registry of queues every service subscribes to (``zc_common.bus.topology``)."""

from zc_common.bus.base import (
    Bus,
    DeadLetter,
    DependencyDown,
    Handler,
    PermanentFailure,
    Queue,
    Route,
    Routes,
    Subscription,
)
from zc_common.bus.factory import create_bus

__all__ = [
    "Bus", "DeadLetter", "DependencyDown", "Handler", "PermanentFailure", "Queue", "Route", "Routes", "Subscription", "create_bus",
]
