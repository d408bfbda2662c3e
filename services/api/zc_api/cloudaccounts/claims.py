"""Which claim on an AWS account is in force: the one ZeroCloud takes that account's
events for, sweeps, and reaps in. Several tenants may claim one AWS account id; a claim
is exclusive only once verified (the role assumed with the external ID ZeroCloud
generated for it). Events are keyed by the upstream account id, so at most one claim
per id may be in force:

- a live verified claim (at most one, by a partial unique index);
- else an unverified claim younger than UNVERIFIED_CLAIM_SECONDS that no other live
  claim contests (a second unverified claim, or a verified one, on the same id).

Removed claims, unverified claims past their time and contested ones receive nothing."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from zc_api import bulk
from zc_api.models import UNVERIFIED_CLAIM_SECONDS, CloudAccount


class ClaimStatus(str, enum.Enum):
    pending_verification = "pending_verification"
    verified = "verified"
    expired = "expired"


# Inline, as the text form had it: the statement keeps one text whatever the setting.
_FRESHNESS = sa.literal_column(f"interval '{UNVERIFIED_CLAIM_SECONDS} seconds'", sa.Interval)


def in_force(cloud: sa.FromClause | None = None) -> ColumnElement[bool]:
    """The condition on ``cloud`` (the cloud_account table or an alias of it, the table by
    default) that the claim is in force; correlated to it in the statement that uses it."""
    c = bulk.table(CloudAccount) if cloud is None else cloud
    rival = bulk.table(CloudAccount).alias("rival")

    def fresh(t: sa.FromClause) -> ColumnElement[bool]:
        created: ColumnElement[Any] = t.c.created_at
        return created > sa.func.now() - _FRESHNESS

    contested = sa.exists().where(
        rival.c.upstream_account_id == c.c.upstream_account_id,
        rival.c.id != c.c.id,
        rival.c.removed_at.is_(None),
        sa.or_(rival.c.verified_at.is_not(None), fresh(rival)),
    )
    return sa.and_(
        c.c.removed_at.is_(None),
        sa.or_(c.c.verified_at.is_not(None), sa.and_(fresh(c), sa.not_(contested))),
    )


def status_of(row: CloudAccount, *, now: datetime) -> ClaimStatus:
    """What the claim's own tenant is told: nothing here depends on other tenants' claims."""
    if row.verified_at is not None:
        return ClaimStatus.verified
    if row.created_at is None or now < verify_by(row):
        return ClaimStatus.pending_verification
    return ClaimStatus.expired


def verify_by(row: CloudAccount) -> datetime:
    assert row.created_at is not None
    return row.created_at + timedelta(seconds=UNVERIFIED_CLAIM_SECONDS)
