"""Builders for the scheduler's tests: lease schedules as the api sends them, settings,
and an observer that records what the scheduler publishes and when it arrived."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from zc_common.bus import Bus, Queue
from zc_common.messages import (
    LeaseChange,
    LeaseChanged,
    LeaseExpired,
    LeaseExpiringSoon,
    LeaseSnapshot,
    LeaseStatus,
    Message,
    SweepRequested,
)
from zc_common.settings import SchedulerSettings

from tests.support.waiting import eventually

M = TypeVar("M", bound=Message)


def now() -> datetime:
    return datetime.now(timezone.utc)


def seconds_from_now(seconds: float) -> datetime:
    return now() + timedelta(seconds=seconds)


def settings(database_url: str, **overrides: Any) -> SchedulerSettings:
    values: dict[str, Any] = {
        "amqp_url": "memory://", "bus": "memory", "database_url": database_url, "sweep_interval": 0,
    }
    return SchedulerSettings(**{**values, **overrides})


def lease_changed(
    lease_id: int,
    version: int = 1,
    *,
    expire_at: datetime | None,
    warn_at: Iterable[datetime] = (),
    change: LeaseChange = LeaseChange.created,
) -> LeaseChanged:
    """A LeaseChanged as the api's outbox sends it: the schedule for this version."""
    expires = expire_at or now()
    lease = LeaseSnapshot(
        lease_id=lease_id, version=version,
        status=LeaseStatus.active if expire_at is not None else LeaseStatus.released,
        owner_email=f"owner{lease_id}@example.com", expires_at=expires, account_id=1, cloud_account_id=1,
        upstream_account_id="111111111111", region="us-east-1", instance_id=f"i-{lease_id:017x}",
        instance_type="t3.micro", instance_name=f"box-{lease_id}", mode="enforce",
    )
    return LeaseChanged(change=change, lease=lease, warn_at=list(warn_at), expire_at=expire_at, actor="test")


@dataclass
class Received:
    message: Message
    at: datetime  # the wall clock when the observer got it


@dataclass
class Observer:
    """A consumer of its own queue, recording the scheduler's messages in arrival order."""

    bus: Bus
    received: list[Received] = field(default_factory=list)

    QUEUE = "observer"

    def subscribe(self) -> None:
        self.bus.subscribe(Queue(self.QUEUE, (LeaseExpiringSoon, LeaseExpired, SweepRequested,)), self._record,
            batch_size=1000, max_wait=0.005,
        )

    async def _record(self, messages: Sequence[Any]) -> None:
        at = now()
        self.received.extend(Received(message, at) for message in messages)

    def of(self, kind: type[M]) -> list[tuple[M, datetime]]:
        return [(r.message, r.at) for r in self.received if isinstance(r.message, kind)]

    def lease_messages(self) -> list[Received]:
        return [r for r in self.received if isinstance(r.message, (LeaseExpiringSoon, LeaseExpired))]

    async def wait_for(self, count: int, kind: type[Message] = Message, *, timeout: float = 20.0) -> None:
        await eventually(lambda: len(self.of(kind)) >= count, timeout=timeout)
