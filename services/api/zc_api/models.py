"""The business objects as tables. Every other module reads and writes these through
a session; the schema itself is changed only by Alembic migrations."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, TypeVar, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Mapped
from sqlmodel import Field, SQLModel, col

from zc_common.internal_api import LeaseAction, SweepState
from zc_common.messages import (
    LIVE_LEASE_STATUSES,
    ActionOnExpiry,
    CloudAccountMode,
    InstanceState,
    LeaseStatus,
    Role,
)

TZ = sa.DateTime(timezone=True)
LIVE_STATUSES_SQL = "status IN ({})".format(", ".join(f"'{s.value}'" for s in sorted(LIVE_LEASE_STATUSES)))

DEFAULT_LEASE_SECONDS = 3 * 24 * 3600
DEFAULT_MAX_LEASE_SECONDS = 14 * 24 * 3600
DEFAULT_WARNING_SECONDS = [24 * 3600, 3600]
DEFAULT_OVER_QUOTA_GRACE_SECONDS = 3600
DEFAULT_BLAST_RADIUS_PERCENT = 50
DEFAULT_BLAST_RADIUS_PER_HOUR = 100


_T = TypeVar("_T")


def never_null(attribute: _T | None) -> Mapped[_T]:
    """``col(attribute)`` where the query cannot read NULL from it: a primary key read
    back, or a column it filters with ``IS NOT NULL``. The model's ``X | None`` is for an
    object not yet flushed; the statement is the same as with ``col``."""
    return cast("Mapped[_T]", col(attribute))


def _enum(enum_type: type[enum.StrEnum], default: enum.StrEnum | None = None, *, nullable: bool = False) -> Any:
    """An enum column: its value in a VARCHAR(16), bounded by the CHECK constraint the
    migrations made, read back as the enum member."""
    return Field(
        default=default,
        sa_type=sa.Enum(
            enum_type, native_enum=False, create_constraint=False, length=16, validate_strings=True,
            values_callable=lambda members: [member.value for member in members],
        ),
        sa_column_kwargs={"nullable": nullable},
    )


def _now_column(**kwargs: Any) -> Any:
    return Field(default=None, sa_type=TZ, sa_column_kwargs={"server_default": sa.func.now(), "nullable": False, **kwargs})


class Account(SQLModel, table=True):
    """A customer (e.g. BigDB): a tenant. Nothing crosses from one account to another."""

    __tablename__ = "account"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    created_at: datetime | None = _now_column()
    # Where the notifier also posts this account's lease notices (Slack-compatible), set
    # by its admins. A chat channel: never given renew or shut-down links.
    webhook_url: str | None = Field(default=None, max_length=2048)


class AccountPolicy(SQLModel, table=True):
    """How an account's instances are leased. One row per account."""

    __tablename__ = "account_policy"
    __table_args__ = (
        sa.CheckConstraint("default_lease_seconds > 0 AND default_lease_seconds <= max_lease_seconds", name="lease_bounds"),
        sa.CheckConstraint("action_on_expiry IN ('stop', 'terminate')", name="action_on_expiry"),
        sa.CheckConstraint("blast_radius_percent BETWEEN 0 AND 100", name="blast_radius_percent"),
        sa.CheckConstraint("blast_radius_per_hour >= 0", name="blast_radius_per_hour"),
        # Sign-in finds the account an address may join by set lookup (array overlap).
        sa.Index("ix_account_policy_email_patterns", "allowed_email_patterns", postgresql_using="gin"),
    )
    account_id: int = Field(foreign_key="account.id", primary_key=True, ondelete="CASCADE")
    default_lease_seconds: int = DEFAULT_LEASE_SECONDS
    max_lease_seconds: int = DEFAULT_MAX_LEASE_SECONDS
    owner_tag: str = Field(default="owner", max_length=128)
    allowed_email_patterns: list[str] = Field(
        default_factory=list, sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False, server_default="{}")
    )
    max_instances_per_user: int | None = None
    over_quota_grace_seconds: int = DEFAULT_OVER_QUOTA_GRACE_SECONDS
    action_on_expiry: ActionOnExpiry = _enum(ActionOnExpiry, ActionOnExpiry.stop)
    warning_seconds: list[int] = Field(
        default_factory=lambda: list(DEFAULT_WARNING_SECONDS),
        sa_column=sa.Column(pg.ARRAY(sa.Integer), nullable=False, server_default="{86400,3600}"),
    )
    blast_radius_percent: int = Field(
        default=DEFAULT_BLAST_RADIUS_PERCENT,
        sa_column_kwargs={"server_default": str(DEFAULT_BLAST_RADIUS_PERCENT)},
        description="at most this share of a cloud account's managed instances is reaped per hour",
    )
    blast_radius_per_hour: int = Field(
        default=DEFAULT_BLAST_RADIUS_PER_HOUR,
        sa_column_kwargs={"server_default": str(DEFAULT_BLAST_RADIUS_PER_HOUR)},
        description="and at most this many per cloud account per hour",
    )
    updated_at: datetime | None = _now_column(onupdate=sa.func.now())


class JoinedHow(enum.StrEnum):
    first_admin = "first_admin"
    bootstrap = "bootstrap"
    added = "added"
    invitation = "invitation"
    allowed_email = "allowed_email"


class User(SQLModel, table=True):
    """A person: an account's admin or a developer who owns instances."""

    __tablename__ = "app_user"
    __table_args__ = (
        sa.UniqueConstraint("account_id", "email", name="uq_user_account_email"),
        sa.CheckConstraint("role IN ('admin', 'dev')", name="role"),
        sa.CheckConstraint("email = lower(email)", name="email_lowercase"),
    )
    id: int | None = Field(default=None, primary_key=True)
    account_id: int | None = Field(default=None, foreign_key="account.id", index=True, ondelete="CASCADE")
    email: str = Field(max_length=320)
    github_login: str | None = Field(default=None, max_length=100, unique=True)
    github_id: int | None = Field(
        default=None, sa_type=sa.BigInteger, unique=True, description="GitHub's numeric id: a login can be renamed"
    )
    name: str | None = Field(default=None, max_length=200)
    role: Role = _enum(Role, Role.dev)
    email_confirmed_at: datetime | None = Field(
        default=None, sa_type=TZ, description="nothing is mailed to the address before it is confirmed"
    )
    # How they came into their account (JoinedHow): only someone who joined by an allowed
    # email pattern, with nothing to hand over, may be moved by another account's invitation.
    joined_how: JoinedHow | None = _enum(JoinedHow, nullable=True)
    created_at: datetime | None = _now_column()


class RemovedUser(SQLModel, table=True):
    """An address an admin removed from their account: it does not rejoin that account by
    an allowed email pattern (only by a new invitation, or being added again)."""

    __tablename__ = "removed_user"
    account_id: int = Field(foreign_key="account.id", primary_key=True, ondelete="CASCADE")
    email: str = Field(max_length=320, primary_key=True)
    removed_at: datetime | None = _now_column()
    removed_by: str = Field(max_length=200)


class EventFlow(SQLModel, table=True):
    """Events arriving through a cloud account's topic in one region: when the ingestor
    last saw one, and the last probe verify sent through it that arrived."""

    __tablename__ = "event_flow"
    cloud_account_id: int = Field(foreign_key="cloud_account.id", primary_key=True, ondelete="CASCADE")
    region: str = Field(max_length=32, primary_key=True)
    topic_arn: str = Field(sa_type=sa.Text)
    last_event_at: datetime = Field(sa_type=TZ)
    last_probe: str | None = Field(default=None, max_length=64)


class PastLeaseDigest(SQLModel, table=True):
    """An account's daily list of instances running past their lease, once made for a UTC
    day (whichever api replica got there first made it)."""

    __tablename__ = "past_lease_digest"
    account_id: int = Field(foreign_key="account.id", primary_key=True, ondelete="CASCADE")
    day: date = Field(primary_key=True)
    leases: int
    created_at: datetime | None = _now_column()


class UserPolicy(SQLModel, table=True):
    """Per-user overrides of the account policy; a null field means 'as the account'."""

    __tablename__ = "user_policy"
    user_id: int = Field(foreign_key="app_user.id", primary_key=True, ondelete="CASCADE")
    default_lease_seconds: int | None = None
    max_lease_seconds: int | None = None
    max_instances: int | None = None
    updated_at: datetime | None = _now_column(onupdate=sa.func.now())


class ApiToken(SQLModel, table=True):
    """A bearer token, stored only as its SHA-256; shown once when created."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16)
    created_at: datetime | None = _now_column()
    last_used_at: datetime | None = Field(default=None, sa_type=TZ)
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)


# An unverified claim on an AWS account id receives events for this long after it was
# made; past it the claim is refused for events until a verify succeeds.
UNVERIFIED_CLAIM_SECONDS = 24 * 3600
LIVE_VERIFIED_SQL = "verified_at IS NOT NULL AND removed_at IS NULL"


class CloudAccount(SQLModel, table=True):
    """A tenant's claim on an AWS account, reached through its role with our external ID.
    Several tenants may claim one AWS account; the claim becomes exclusive once verified
    (assumed with the generated external ID). Removed claims are kept with their leases
    and audit trail, and hold nothing."""

    __tablename__ = "cloud_account"
    __table_args__ = (
        sa.CheckConstraint("mode IN ('observe', 'enforce')", name="mode"),
        sa.CheckConstraint("provider = 'AWS'", name="provider"),
        sa.Index(
            "uq_cloud_account_verified_upstream", "upstream_account_id", unique=True,
            postgresql_where=sa.text(LIVE_VERIFIED_SQL),
        ),
        sa.Index("uq_cloud_account_verified_role", "role_arn", unique=True, postgresql_where=sa.text(LIVE_VERIFIED_SQL)),
    )
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    provider: str = Field(default="AWS", max_length=16)
    upstream_account_id: str = Field(max_length=12, index=True)
    role_arn: str = Field(max_length=2048)
    external_id: str = Field(max_length=1224)
    regions: list[str] = Field(
        default_factory=lambda: ["us-east-1"],
        sa_column=sa.Column(pg.ARRAY(sa.Text), nullable=False, server_default="{us-east-1}"),
    )
    mode: CloudAccountMode = _enum(CloudAccountMode, CloudAccountMode.observe)
    created_at: datetime | None = _now_column()
    verified_at: datetime | None = Field(
        default=None, sa_type=TZ, description="first verify that assumed the role with the external ID"
    )
    removed_at: datetime | None = Field(default=None, sa_type=TZ)
    topic_arns: dict[str, str] = Field(
        default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default="{}"),
        description="region -> the SNS topic of this account's stack: only its events are taken",
    )


class Resource(SQLModel, table=True):
    """An EC2 instance as AWS last described it. ``observed_at`` orders updates."""

    __tablename__ = "resource"
    __table_args__ = (
        sa.UniqueConstraint("cloud_account_id", "instance_id", name="uq_resource_instance"),
        # The list, by id within the tenant, and by state.
        sa.Index("ix_resource_account_id_id", "account_id", "id"),
        sa.Index("ix_resource_account_state_id", "account_id", "state", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True, ondelete="CASCADE")
    cloud_account_id: int = Field(foreign_key="cloud_account.id", ondelete="CASCADE")
    region: str = Field(max_length=32)
    instance_id: str = Field(max_length=32)
    instance_type: str | None = Field(default=None, max_length=64)
    state: InstanceState = _enum(InstanceState)
    name: str | None = Field(default=None, max_length=256)
    tags: dict[str, str] = Field(default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default="{}"))
    launch_time: datetime | None = Field(default=None, sa_type=TZ)
    gone: bool = False
    first_seen_at: datetime | None = _now_column()
    observed_at: datetime = Field(sa_type=TZ)


class Lease(SQLModel, table=True):
    """An instance's lease: who owns it and until when. At most one live lease per
    resource, enforced by a partial unique index, not by hope."""

    __tablename__ = "lease"
    __table_args__ = (
        sa.Index("uq_lease_live_resource", "resource_id", unique=True, postgresql_where=sa.text(LIVE_STATUSES_SQL)),
        # The lists, soonest expiry first (id for ties), by tenant: every lease; by status;
        # the live ones (the leases page's default). Revision 0014.
        sa.Index("ix_lease_account_expires_id", "account_id", "expires_at", "id"),
        sa.Index("ix_lease_account_status_expires_id", "account_id", "status", "expires_at", "id"),
        sa.Index(
            "ix_lease_account_live_expires_id", "account_id", "expires_at", "id",
            postgresql_where=sa.text(LIVE_STATUSES_SQL),
        ),
        # The blast-radius cap counts a cloud account's leases claimed in the last hour.
        sa.Index(
            "ix_lease_cloud_account_claimed", "cloud_account_id", "claimed_at",
            postgresql_where=sa.text("claimed_at IS NOT NULL"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'expired', 'reaping', 'reaped', 'released', 'exempt')", name="status"
        ),
        sa.CheckConstraint("version >= 1", name="version_positive"),
    )
    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE")
    account_id: int = Field(foreign_key="account.id", ondelete="CASCADE")
    cloud_account_id: int = Field(foreign_key="cloud_account.id", index=True, ondelete="CASCADE")
    owner_user_id: int | None = Field(default=None, foreign_key="app_user.id", index=True, ondelete="SET NULL")
    owner_email: str = Field(max_length=320)
    owner_reason: str = Field(max_length=500, description="why this owner was chosen")
    expires_at: datetime = Field(sa_type=TZ)
    version: int = 1
    status: LeaseStatus = _enum(LeaseStatus, LeaseStatus.active)
    over_quota: bool = False
    created_by_message_id: UUID | None = None
    created_at: datetime | None = _now_column()
    updated_at: datetime | None = _now_column(onupdate=sa.func.now())
    ended_at: datetime | None = Field(default=None, sa_type=TZ)
    exempt_reason: str | None = Field(default=None, sa_type=sa.Text)
    claimed_at: datetime | None = Field(default=None, sa_type=TZ, description="when the reaper claimed it")
    reaped_at: datetime | None = Field(default=None, sa_type=TZ)
    # Nobody is reaped without the warnings the policy promised: the claim waits for the
    # final warning of this version (warn_by) to be reported sent (warned_at).
    warn_by: datetime | None = Field(
        default=None, sa_type=TZ, description="the last warning planned for this version; NULL: none planned"
    )
    warned_at: datetime | None = Field(
        default=None, sa_type=TZ,
        description="when this version's last warning was delivered (or found undeliverable); NULL: not yet",
    )


# A sweep the ingestor has not finished: at most one per cloud account and region.
SWEEP_IN_PROGRESS_SQL = "state IN ('requested', 'running')"


class Sweep(SQLModel, table=True):
    """An inventory sweep of one cloud account and region an admin asked for: its state
    as the ingestor reported it, and what it counted."""

    __tablename__ = "sweep"
    __table_args__ = (
        sa.CheckConstraint("state IN ('requested', 'running', 'done', 'failed')", name="state"),
        # Two racing requests cannot both insert: the second finds the first.
        sa.Index(
            "uq_sweep_in_progress", "cloud_account_id", "region", unique=True,
            postgresql_where=sa.text(SWEEP_IN_PROGRESS_SQL),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True, ondelete="CASCADE")
    cloud_account_id: int = Field(foreign_key="cloud_account.id", ondelete="CASCADE")
    region: str = Field(max_length=32)
    requested_by: str = Field(max_length=200)
    state: SweepState = _enum(SweepState, SweepState.requested)
    instances_seen: int | None = None
    instances_gone: int | None = None
    error: str | None = Field(default=None, max_length=1000)
    requested_at: datetime | None = _now_column()
    started_at: datetime | None = Field(default=None, sa_type=TZ)
    finished_at: datetime | None = Field(default=None, sa_type=TZ)


class ActionToken(SQLModel, table=True):
    """A single-use link (renew or shut down) mailed to a lease's owner, bound to one
    version of the lease; stored only as its SHA-256."""

    __tablename__ = "action_token"
    __table_args__ = (sa.CheckConstraint("action IN ('renew', 'shutdown')", name="action"),)
    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    token_hash: str = Field(max_length=64, unique=True)
    lease_id: int = Field(foreign_key="lease.id", index=True, ondelete="CASCADE")
    lease_version: int
    action: LeaseAction = _enum(LeaseAction)
    expires_at: datetime = Field(sa_type=TZ)
    used_at: datetime | None = Field(default=None, sa_type=TZ)
    created_at: datetime | None = _now_column()


class Notification(SQLModel, table=True):
    """A notification key (message and recipient) the notifier reserved or sent: a
    re-delivered message never mails anyone twice."""

    __tablename__ = "notification"
    __table_args__ = (sa.CheckConstraint("state IN ('reserved', 'sent')", name="state"),)
    key: str = Field(sa_type=sa.Text, primary_key=True)
    state: str = Field(default="reserved", max_length=16)
    created_at: datetime | None = _now_column()
    sent_at: datetime | None = Field(default=None, sa_type=TZ)


class AuditEvent(SQLModel, table=True):
    """Who or what changed which resource or lease, when and why."""

    __tablename__ = "audit_event"
    __table_args__ = (
        # The log, newest first (id for ties), by tenant.
        sa.Index("ix_audit_account_at_id", "account_id", "at", "id"),
        # A lease's trail; when each resource last changed state (the leases pages).
        sa.Index("ix_audit_subject", "subject_type", "subject_id", "at"),
    )
    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    account_id: int | None = Field(default=None, foreign_key="account.id", ondelete="CASCADE")
    at: datetime | None = _now_column()
    actor: str = Field(max_length=200)
    action: str = Field(max_length=64)
    subject_type: str = Field(max_length=32)
    subject_id: int | None = None
    reason: str | None = None
    message_id: UUID | None = None
    details: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(pg.JSONB, nullable=False, server_default="{}"))


class OutboxMessage(SQLModel, table=True):
    """A message written in the same transaction as the change it reports; the relay
    publishes it with confirms and marks it sent."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_unpublished", "id", postgresql_where=sa.text("published_at IS NULL")),)
    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    message_id: UUID = Field(unique=True)
    type: str = Field(max_length=64)
    body: str = Field(sa_type=sa.Text)
    created_at: datetime | None = _now_column()
    published_at: datetime | None = Field(default=None, sa_type=TZ)


class WebSession(SQLModel, table=True):
    """A signed-in browser: the cookie holds a random token, the table its SHA-256 and
    the CSRF secret every form of that session must echo."""

    __tablename__ = "web_session"
    id: int | None = Field(default=None, primary_key=True, sa_type=sa.BigInteger)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    csrf_token: str = Field(max_length=64)
    created_at: datetime | None = _now_column()
    expires_at: datetime = Field(sa_type=TZ)
    last_seen_at: datetime | None = Field(default=None, sa_type=TZ)
    ended_at: datetime | None = Field(default=None, sa_type=TZ, description="logout")


class LoginAttempt(SQLModel, table=True):
    """One GitHub sign-in in flight: its OAuth state (hashed), PKCE verifier and where to
    go after. Used once; a callback with an unknown or used state is refused."""

    __tablename__ = "login_attempt"
    state_hash: str = Field(max_length=64, primary_key=True)
    code_verifier: str = Field(max_length=128)
    next_path: str = Field(default="/", max_length=2000)
    invitation_id: int | None = Field(default=None, foreign_key="invitation.id", ondelete="CASCADE")
    created_at: datetime | None = _now_column()
    expires_at: datetime = Field(sa_type=TZ)
    used_at: datetime | None = Field(default=None, sa_type=TZ)


class Invitation(SQLModel, table=True):
    """An admin's invitation of an email address into their account, with a role. The
    mailed link (single-use, stored hashed) proves the address when accepted."""

    __tablename__ = "invitation"
    __table_args__ = (sa.CheckConstraint("role IN ('admin', 'dev')", name="role"),)
    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", index=True, ondelete="CASCADE")
    email: str = Field(max_length=320)
    role: Role = _enum(Role, Role.dev)
    token_hash: str = Field(max_length=64, unique=True)
    invited_by_user_id: int | None = Field(default=None, foreign_key="app_user.id", ondelete="SET NULL")
    created_at: datetime | None = _now_column()
    expires_at: datetime = Field(sa_type=TZ)
    accepted_at: datetime | None = Field(default=None, sa_type=TZ)
    accepted_by_user_id: int | None = Field(default=None, foreign_key="app_user.id", ondelete="SET NULL")
    revoked_at: datetime | None = Field(default=None, sa_type=TZ)


class EmailConfirmation(SQLModel, table=True):
    """A single-use link mailed to a person's address; following it (GET shows, POST
    confirms) sets ``User.email_confirmed_at``."""

    __tablename__ = "email_confirmation"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    user_id: int = Field(foreign_key="app_user.id", index=True, ondelete="CASCADE")
    email: str = Field(max_length=320)
    created_at: datetime | None = _now_column()
    expires_at: datetime = Field(sa_type=TZ)
    used_at: datetime | None = Field(default=None, sa_type=TZ)
