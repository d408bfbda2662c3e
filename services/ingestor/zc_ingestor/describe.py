"""Reading instances from EC2 (DescribeInstances only) as snapshots stamped with the
time we looked."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from zc_common.messages import InstanceSnapshot, InstanceState, utcnow
from zc_common.unstorable import NUL

# EC2 accepts at most 200 values in one filter.
FILTER_CHUNK = 200
PAGE_SIZE = 1000


@dataclass(frozen=True)
class Observation:
    """One instance as AWS described it at ``observed_at``; no snapshot means AWS does
    not list it (any more)."""

    instance_id: str
    snapshot: InstanceSnapshot | None
    observed_at: datetime

    @property
    def gone(self) -> bool:
        return self.snapshot is None or self.snapshot.state.is_gone


def _storable(text: str) -> str:
    # EC2 takes any character in a tag, U+0000 too, which nothing can store: it becomes
    # U+FFFD. Refusing the snapshot instead would let one tag keep an instance unleased
    # (and an owner tag so changed names nobody: the owner rules fall through to the admin).
    return text.replace(NUL, "\ufffd")


def snapshot_of(instance: dict[str, Any]) -> InstanceSnapshot:
    """An InstanceSnapshot from one item of DescribeInstances' Reservations[].Instances[]."""
    return InstanceSnapshot(
        instance_id=instance["InstanceId"],
        instance_type=instance["InstanceType"],
        state=InstanceState(instance["State"]["Name"]),
        tags={_storable(tag["Key"]): _storable(tag.get("Value", "")) for tag in instance.get("Tags") or []},
        launch_time=instance.get("LaunchTime"),
    )


async def _pages(ec2: Any, **request: Any) -> AsyncIterator[tuple[datetime, list[InstanceSnapshot]]]:
    """Every page of one DescribeInstances listing, each with the time just before it was asked."""
    token: str | None = None
    while True:
        asked_at = utcnow()
        answer = await ec2.describe_instances(
            MaxResults=PAGE_SIZE, **request, **({"NextToken": token} if token else {})
        )
        snapshots = [
            snapshot_of(instance)
            for reservation in answer.get("Reservations", [])
            for instance in reservation.get("Instances", [])
        ]
        yield asked_at, snapshots
        token = answer.get("NextToken")
        if not token:
            return


async def describe_instances(ec2: Any, instance_ids: Iterable[str]) -> dict[str, Observation]:
    """Look up these instances of one account and region; ids AWS does not know come back
    without a snapshot. The ``instance-id`` filter is used rather than ``InstanceIds``
    because one unknown id makes the latter fail the whole call."""
    wanted = list(dict.fromkeys(instance_ids))
    found: dict[str, Observation] = {}
    for start in range(0, len(wanted), FILTER_CHUNK):
        chunk = wanted[start : start + FILTER_CHUNK]
        listing_started = utcnow()
        async for asked_at, snapshots in _pages(ec2, Filters=[{"Name": "instance-id", "Values": chunk}]):
            for snapshot in snapshots:
                found[snapshot.instance_id] = Observation(snapshot.instance_id, snapshot, asked_at)
        for instance_id in chunk:
            if instance_id not in found:
                found[instance_id] = Observation(instance_id, None, listing_started)
    return found


async def list_instances(ec2: Any) -> AsyncIterator[list[Observation]]:
    """Every instance of one account and region, a page at a time."""
    async for asked_at, snapshots in _pages(ec2):
        yield [Observation(s.instance_id, s, asked_at) for s in snapshots]
