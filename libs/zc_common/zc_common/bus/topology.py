"""Who consumes what: one durable queue per consuming service and the message types
bound to it. Every RabbitMQ bus declares all of it when it starts, so a message
published before its consumer has ever run waits in that consumer's queue instead of
being dropped by the broker as unroutable (invariant 4)."""

from __future__ import annotations

from zc_common.messages import (
    BlastRadiusHalted,
    CloudEventReceived,
    EmailConfirmationRequested,
    InvitationCreated,
    LeaseChanged,
    LeaseExpired,
    LeaseExpiringSoon,
    LeasesPastTheirEnd,
    Message,
    ResourceChange,
    SweepRequested,
)

SERVICE_QUEUES: dict[str, tuple[type[Message], ...]] = {
    "api": (ResourceChange,),
    "ingestor": (SweepRequested, CloudEventReceived),
    "scheduler": (LeaseChanged,),
    "notifier": (
        LeaseChanged, LeaseExpiringSoon, BlastRadiusHalted, LeasesPastTheirEnd, InvitationCreated,
        EmailConfirmationRequested,
    ),
    "reaper": (LeaseExpired,),
}
