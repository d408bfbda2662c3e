"""ResourceChange messages built from what AWS said, and publishing them in chunks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from zc_common.bus import Bus
from zc_common.messages import ResourceChange, ResourceRef

from zc_ingestor.describe import Observation

SWEEP_EVENT_NAME = "Sweep"
SWEEP_EVENT_SOURCE = "zerocloud.sweep"


def resource_change(
    observation: Observation,
    *,
    account_id: str,
    region: str,
    event_name: str,
    event_time: datetime,
    event_source: str,
    event_id: str | None = None,
) -> ResourceChange:
    """One instance of upstream account ``account_id`` in ``region``, as observed, and the
    event (or sweep) that made us look."""
    instance_id = observation.instance_id
    arn = f"arn:aws:ec2:{region}:{account_id}:instance/{instance_id}"
    return ResourceChange(
        event_name=event_name,
        event_time=event_time,
        event_source=event_source,
        event_id=event_id,
        aws_region=region,
        recipient_account_id=account_id,
        resources=[ResourceRef(arn=arn, account_id=account_id)],
        instance_id=instance_id,
        instance=observation.snapshot,
        gone=observation.gone,
        observed_at=observation.observed_at,
    )


async def publish_in_chunks(bus: Bus, changes: Sequence[ResourceChange], size: int) -> None:
    """Publish ``changes`` a chunk at a time, so one sweep does not hold thousands of
    unconfirmed messages at once."""
    for start in range(0, len(changes), size):
        await bus.publish(*changes[start : start + size])
