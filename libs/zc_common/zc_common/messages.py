"""The messages services exchange over the bus: versioned, self-describing, tolerant of
fields added by a newer version. The ``type`` is also the routing key."""

from __future__ import annotations

import enum
import json
from datetime import date, datetime, timedelta, timezone
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zc_common.unstorable import find_nul, where


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Message(BaseModel):
    """Base of every bus message. ``message_id`` de-duplicates re-deliveries;
    ``occurred_at`` is when the thing it reports happened. No string in a message
    carries U+0000."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    registry: ClassVar[dict[str, type[Message]]] = {}

    type: str
    schema_version: int = 1
    message_id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _storable(self) -> Message:
        # No service can store U+0000 (PostgreSQL text): a message carrying one is refused
        # when made, and dead-lettered alone, with this reason, when it arrives.
        found = find_nul(self)
        if found is not None:
            raise ValueError(f"{where(found, 'message')} contains U+0000 (a NUL character), which cannot be stored")
        return self

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        field = cls.model_fields.get("type")
        if field is not None and isinstance(field.default, str) and field.default:
            Message.registry[field.default] = cls

    @classmethod
    def type_name(cls) -> str:
        default = cls.model_fields["type"].default
        assert isinstance(default, str)
        return default

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


class UndecodableMessage(ValueError):
    """A body that can never become a message; the reason says why (for the dead-letter)."""


def decode(body: bytes, type_hint: str | None = None) -> Message:
    """Turn a bus body into its message model, or raise UndecodableMessage with the reason."""
    try:
        raw = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UndecodableMessage(f"body is not JSON: {error}") from None
    except RecursionError:  # a RuntimeError: would escape the bus's dead-lettering
        raise UndecodableMessage("body is not usable JSON: nested too deeply") from None
    if not isinstance(raw, dict):
        raise UndecodableMessage("body is not a JSON object")
    type_name = raw.get("type") or type_hint
    model = Message.registry.get(str(type_name))
    if model is None:
        raise UndecodableMessage(f"unknown message type {type_name!r}")
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise UndecodableMessage(
            f"{type_name} failed validation at {where}: {first['msg']} ({error.error_count()} errors)"
        ) from None


# --- the vocabulary every service, table and page shares ------------------------------


class CloudAccountMode(enum.StrEnum):
    """Observe: leases, warnings and audit, but nothing is ever stopped. Enforce: reaped."""

    observe = "observe"
    enforce = "enforce"


class ActionOnExpiry(enum.StrEnum):
    """What the reaper does to an instance whose lease ran out (enforce mode)."""

    stop = "stop"
    terminate = "terminate"

    @property
    def done(self) -> str:
        """In words, once done: "stopped", "terminated"."""
        return {"stop": "stopped", "terminate": "terminated"}[self.value]


class Role(enum.StrEnum):
    admin = "admin"
    dev = "dev"

    @property
    def in_words(self) -> str:
        """As a sentence says it: "an admin", "a developer"."""
        return {"admin": "an admin", "dev": "a developer"}[self.value]


# --- resources -------------------------------------------------------------------------


class InstanceState(enum.StrEnum):
    pending = "pending"
    running = "running"
    stopping = "stopping"
    stopped = "stopped"
    shutting_down = "shutting-down"
    terminated = "terminated"

    @property
    def is_live(self) -> bool:
        """Running or about to: an instance in this state gets a lease."""
        return self in (InstanceState.pending, InstanceState.running)

    @property
    def is_gone(self) -> bool:
        return self in (InstanceState.shutting_down, InstanceState.terminated)


class ResourceRef(BaseModel):
    """A resource as a CloudTrail record names it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    arn: str
    account_id: str
    type: str = "AWS::EC2::Instance"


class InstanceSnapshot(BaseModel):
    """What DescribeInstances said about one instance: the only thing ZeroCloud records."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    instance_id: str = Field(pattern=r"^i-[0-9a-f]{8,17}$")
    instance_type: str
    state: InstanceState
    tags: dict[str, str] = Field(default_factory=dict)
    launch_time: datetime | None = None
    termination_protected: bool | None = None

    @property
    def name(self) -> str | None:
        return self.tags.get("Name")


class ResourceChange(Message):
    """An instance as AWS described it, and the event (or sweep) that made us look.

    Kept close to a CloudTrail record (event name, time, source, region, recipient
    account, resources) plus ZeroCloud's observed snapshot. ``observed_at`` orders
    changes: a snapshot never overwrites one observed later.
    """

    type: Literal["ResourceChange"] = "ResourceChange"
    event_name: str = Field(description="e.g. RunInstances, EC2 Instance State-change Notification, Sweep")
    event_time: datetime
    event_source: str = Field(description="aws.ec2, ec2.amazonaws.com, zerocloud.sweep, zerocloud.api")
    event_id: str | None = Field(None, description="The EventBridge/CloudTrail id of the hint")
    aws_region: str
    recipient_account_id: str = Field(pattern=r"^\d{12}$")
    resources: list[ResourceRef] = Field(default_factory=list)
    instance_id: str = Field(pattern=r"^i-[0-9a-f]{8,17}$")
    instance: InstanceSnapshot | None = Field(None, description="None when AWS no longer knows it")
    gone: bool = Field(description="Terminated, shutting down or no longer listed by AWS")
    observed_at: datetime


class CloudEventReceived(Message):
    """A raw EventBridge/CloudTrail event that reached the api (POST /cloudevents);
    the ingestor treats it exactly like one read from the event queue."""

    type: Literal["CloudEventReceived"] = "CloudEventReceived"
    event: dict[str, Any]


class SweepRequested(Message):
    """Run the inventory sweep now: for one cloud account and region, or everything. An
    admin's request (POST /api/v1/sweeps) carries its ``sweep_id``, and the ingestor
    reports on it; the scheduler's timer sends none."""

    type: Literal["SweepRequested"] = "SweepRequested"
    cloud_account_id: int | None = None
    region: str | None = None
    sweep_id: int | None = Field(None, ge=1, description="The api's sweep row to report to (POST /internal/v1/sweeps/{id}/report)")


# --- leases ----------------------------------------------------------------------------


class LeaseStatus(enum.StrEnum):
    active = "active"
    expired = "expired"
    reaping = "reaping"
    reaped = "reaped"
    released = "released"
    exempt = "exempt"

    @property
    def is_live(self) -> bool:
        """Still holds its instance: at most one such lease per resource."""
        return self in LIVE_LEASE_STATUSES


LIVE_LEASE_STATUSES = frozenset(
    {LeaseStatus.active, LeaseStatus.expired, LeaseStatus.reaping, LeaseStatus.exempt}
)


class LeaseSnapshot(BaseModel):
    """A lease as the api committed it, with what a reader needs to act on or mail it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lease_id: int
    version: int = Field(ge=1)
    status: LeaseStatus
    owner_email: str
    expires_at: datetime
    account_id: int
    cloud_account_id: int
    upstream_account_id: str
    region: str
    instance_id: str
    instance_type: str | None = None
    instance_name: str | None = None
    cloud_account_name: str | None = None
    mode: CloudAccountMode = Field(CloudAccountMode.observe, description="the cloud account's mode")
    action_on_expiry: ActionOnExpiry = Field(ActionOnExpiry.stop, description="what happens at expiry")


class LeaseChange(str, enum.Enum):
    created = "created"
    renewed = "renewed"
    owner_changed = "owner_changed"
    exempted = "exempted"
    released = "released"
    shutdown_requested = "shutdown_requested"
    expired = "expired"  # observe mode: what would have been reaped
    reaped = "reaped"
    reap_skipped = "reap_skipped"
    # A warning could not reach its owner in time: the expiry moved so that it still
    # precedes the reap by its lead, and the new version warns at once.
    warning_deferred = "warning_deferred"


class LeaseChanged(Message):
    """A committed change to a lease. It is also the lease schedule: the scheduler keeps
    timers at ``warn_at`` and ``lease.expires_at`` for an active lease of this version,
    and cancels older versions' timers."""

    type: Literal["LeaseChanged"] = "LeaseChanged"
    change: LeaseChange
    lease: LeaseSnapshot
    warn_at: list[datetime] = Field(default_factory=list)
    expire_at: datetime | None = Field(
        None, description="When the scheduler fires LeaseExpired for this version; None: no timers"
    )
    actor: str = Field(description="who or what: user:<id>, service:<name>, message:<id>")
    reason: str | None = None


# How late a warning may reach its owner and still count as given its lead: a minute, or
# a tenth of the lead for short ones (the bus, the digest window and SMTP take a moment).
MAX_WARNING_TOLERANCE = timedelta(seconds=60)


def warning_tolerance(lead: timedelta) -> timedelta:
    return min(MAX_WARNING_TOLERANCE, lead / 10)


class LeaseExpiringSoon(Message):
    """A warning timer fired: ``warning_at`` is its moment, ``lease.expires_at -
    warning_at`` the lead the policy promised the owner before the reap."""

    type: Literal["LeaseExpiringSoon"] = "LeaseExpiringSoon"
    lease: LeaseSnapshot
    warning_at: datetime

    @property
    def lead(self) -> timedelta:
        return self.lease.expires_at - self.warning_at

    def too_late(self, now: datetime, *, batching: timedelta = timedelta(0)) -> bool:
        """Whether, sent ``now``, it reaches the owner short of its lead beyond the
        tolerance and ``batching`` (the delay the notifier adds on purpose: its digest
        window, which every warning waits through, a re-sent one too): then the reap
        must move instead (the api's /leases/defer)."""
        left, lead = self.lease.expires_at - now, self.lead
        if left <= timedelta(0) or lead <= timedelta(0):
            return True
        return left < lead - warning_tolerance(lead) - batching


class LeaseExpired(Message):
    """A lease's expiry timer fired for ``lease.version``; the reaper claims it first."""

    type: Literal["LeaseExpired"] = "LeaseExpired"
    lease: LeaseSnapshot


class BlastRadiusHalted(Message):
    """Reaping in a cloud account stopped at the blast-radius cap; its admins are told."""

    type: Literal["BlastRadiusHalted"] = "BlastRadiusHalted"
    account_id: int
    cloud_account_id: int
    upstream_account_id: str
    admin_emails: list[str]
    held_lease_ids: list[int]
    cap: str = Field(description="the cap that was reached, in words")


class PastLeaseItem(BaseModel):
    """One lease that ended while its instance still runs, in a daily digest."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lease: LeaseSnapshot
    why: str = Field(description="why it still runs: the last thing ZeroCloud recorded about the lease")
    usd_per_day: float | None = Field(None, description="its on-demand price for a day; None when not known")


class LeasesPastTheirEnd(Message):
    """Once a day per account: every lease that ended while its instance still runs
    (stop or termination protection, the blast-radius cap, an owner tag that changed) —
    never forgotten. Its admins get the whole list, each owner their own."""

    type: Literal["LeasesPastTheirEnd"] = "LeasesPastTheirEnd"
    account_id: int
    account_name: str
    day: date = Field(description="the UTC day this digest is for: one per account per day")
    admin_emails: list[str]
    items: list[PastLeaseItem]
    more: int = Field(0, ge=0, description="leases past their end beyond those listed (the list is capped)")
    leases_url: str | None = Field(None, description="the web page listing them, to renew or shut down")


# --- people ----------------------------------------------------------------------------
# Neither message carries the link's token: tokens are stored hashed and exist in clear
# only in the mail. The notifier asks the api to mint the link when it sends
# (POST /internal/v1/people-links), so the outbox and the bus never hold a credential.


class InvitationCreated(Message):
    """An admin invited ``email`` into their account: the invitee is mailed a link."""

    type: Literal["InvitationCreated"] = "InvitationCreated"
    invitation_id: int
    account_id: int
    account_name: str
    email: str
    role: Role = Field(description="the role the invitee gets")
    invited_by_email: str | None = Field(None, description="the inviting admin; None if they are gone")
    invited_by_name: str | None = None
    expires_at: datetime


class EmailConfirmationRequested(Message):
    """A person's address is not confirmed yet: they are mailed a single-use link.
    Nothing else is mailed to the address until it is confirmed."""

    type: Literal["EmailConfirmationRequested"] = "EmailConfirmationRequested"
    user_id: int
    account_id: int | None = None
    email: str
    name: str | None = None
