"""Who consumes what: the one registry of the product's queues, one durable queue per
consuming service with the message types bound to it. Handlers subscribe to these
objects (``bus.subscribe(topology.REAPER, reaper.reap)``), so mypy checks each handler
against its queue's types. Every RabbitMQ bus declares all of them when it starts, so a
message published before its consumer has ever run waits in that consumer's queue
instead of being dropped by the broker as unroutable (invariant 4)."""

from __future__ import annotations

from typing import Any, TypeAlias

from zc_common.bus.base import Queue
from zc_common.messages import (
    BlastRadiusHalted,
    CloudEventReceived,
    EmailConfirmationRequested,
    InvitationCreated,
    LeaseChanged,
    LeaseExpired,
    LeaseExpiringSoon,
    LeasesPastTheirEnd,
    ResourceChange,
    SweepRequested,
)

IngestorMessage: TypeAlias = SweepRequested | CloudEventReceived
NotifierMessage: TypeAlias = (
    LeaseChanged | LeaseExpiringSoon | BlastRadiusHalted | LeasesPastTheirEnd | InvitationCreated
    | EmailConfirmationRequested
)

API = Queue[ResourceChange]("api", (ResourceChange,))
"""Resources seen by events and sweeps, into resources and leases."""
INGESTOR = Queue[IngestorMessage]("ingestor", (SweepRequested, CloudEventReceived))
"""Sweep jobs from the scheduler, and cloud events the api received over HTTP."""
SCHEDULER = Queue[LeaseChanged]("scheduler", (LeaseChanged,))
"""Lease schedules, into warning and expiry timers."""
NOTIFIER = Queue[NotifierMessage](
    "notifier",
    (LeaseChanged, LeaseExpiringSoon, BlastRadiusHalted, LeasesPastTheirEnd, InvitationCreated,
     EmailConfirmationRequested),
)
"""Everything a person is told: lease notices, warnings, digests, people's links."""
REAPER = Queue[LeaseExpired]("reaper", (LeaseExpired,))
"""Expired leases, to claim and act on."""

QUEUES: tuple[Queue[Any], ...] = (API, INGESTOR, SCHEDULER, NOTIFIER, REAPER)
