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

from zc_api.models import UNVERIFIED_CLAIM_SECONDS, CloudAccount


class ClaimStatus(str, enum.Enum):
    pending_verification = "pending_verification"
    verified = "verified"
    expired = "expired"


def in_force_sql(alias: str) -> str:
    """A SQL condition on ``alias`` (a cloud_account row): the claim is in force."""
    fresh = f"created_at > now() - interval '{UNVERIFIED_CLAIM_SECONDS} seconds'"
    return (
        f"({alias}.removed_at IS NULL AND ({alias}.verified_at IS NOT NULL OR ({alias}.{fresh} AND NOT EXISTS ("
        f"SELECT 1 FROM cloud_account rival WHERE rival.upstream_account_id = {alias}.upstream_account_id"
        f" AND rival.id <> {alias}.id AND rival.removed_at IS NULL"
        f" AND (rival.verified_at IS NOT NULL OR rival.{fresh})))))"
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
