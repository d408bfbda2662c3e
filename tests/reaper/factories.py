"""Builders for the reaper's tests: the customer's hands in moto, AWS access that counts
(and can throttle) calls, a fake of the api's internal claim/outcomes endpoints with the
spec's compare-and-set semantics, and leases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import HTTPException, Request

from zc_common.internal_api import (
    ClaimedLease,
    ClaimRefusal,
    ClaimRequest,
    ClaimResult,
    CloudAccountRecord,
    LeaseRef,
    ReapOutcome,
    ReapOutcomeKind,
    ReapOutcomes,
)
from zc_common.messages import ActionOnExpiry, CloudAccountMode, LeaseExpired, LeaseSnapshot, LeaseStatus
from zc_common.settings import ReaperSettings

from tests.support.aws_doubles import CUSTOMER, OWNER, REGION, WRITES, CountingAwsAccess, CustomerAccount
from tests.support.credentials import REAPER_TOKEN
from tests.support.fake_api import FakeInternalApi

__all__ = ["CUSTOMER", "OWNER", "REGION", "WRITES", "CountingAwsAccess", "CustomerAccount"]

OTHER_CUSTOMER = "333333333333"
OTHER_REGION = "eu-west-1"
SERVICE_TOKEN = REAPER_TOKEN  # the credential the fake api accepts


# --- AWS as the reaper sees it ---------------------------------------------------------


# --- the api, faked --------------------------------------------------------------------


def cloud_account(
    id: int = 1, upstream_account_id: str = CUSTOMER, *, mode: CloudAccountMode = CloudAccountMode.enforce,
    role_account_id: str | None = None,
) -> CloudAccountRecord:
    return CloudAccountRecord(
        id=id,
        account_id=1,
        name=f"dev-{upstream_account_id}",
        upstream_account_id=upstream_account_id,
        role_arn=f"arn:aws:iam::{role_account_id or upstream_account_id}:role/ZeroCloud",
        external_id=f"zc-external-{id}",
        regions=[REGION, OTHER_REGION],
        mode=mode,
    )


@dataclass
class FakeLease:
    """A lease row as the api holds it."""

    lease_id: int
    instance_id: str
    cloud_account_id: int
    upstream_account_id: str
    region: str
    action: ActionOnExpiry
    owner_tag: str
    owner_tag_value: str | None
    version: int = 1
    status: LeaseStatus = LeaseStatus.active
    expires_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc) - timedelta(seconds=1))
    reason: str | None = None

    @property
    def ref(self) -> LeaseRef:
        return LeaseRef(lease_id=self.lease_id, version=self.version)

    def snapshot(self, mode: CloudAccountMode) -> LeaseSnapshot:
        return LeaseSnapshot(
            lease_id=self.lease_id, version=self.version, status=self.status, owner_email=OWNER,
            expires_at=self.expires_at, account_id=1, cloud_account_id=self.cloud_account_id,
            upstream_account_id=self.upstream_account_id, region=self.region, instance_id=self.instance_id,
            mode=mode.value, action_on_expiry=self.action.value,
        )


class FakeApi(FakeInternalApi):
    """The api's internal endpoints the reaper uses, with the spec's semantics kept to the
    minimum: claim is a compare-and-set on (lease id, version, status); outcomes apply only
    to leases in status reaping at that version."""

    def __init__(self) -> None:
        super().__init__(SERVICE_TOKEN)
        self.records: dict[int, CloudAccountRecord] = {1: cloud_account()}
        self.leases: dict[int, FakeLease] = {}
        self.claims: list[list[LeaseRef]] = []
        self.reported: list[ReapOutcome] = []
        self.failing_outcomes = 0  # answer 503 to this many outcome reports
        self.claims_regardless_of_mode = False  # a broken api: claims in observe mode too
        self.warning_owed: set[int] = set()  # leases whose last warning was never delivered
        self.app.get("/internal/v1/cloudaccounts")(self._cloud_accounts)
        self.app.post("/internal/v1/leases/claim")(self._claim)
        self.app.post("/internal/v1/leases/outcomes")(self._outcomes)

    def lease(
        self, instance_id: str, *, cloud_account_id: int = 1, region: str = REGION,
        action: ActionOnExpiry = ActionOnExpiry.stop, owner_tag: str = "owner", owner_tag_value: str | None = OWNER,
        upstream_account_id: str | None = None,
    ) -> FakeLease:
        """An active lease whose expiry has just passed (its timer fired)."""
        record = self.records[cloud_account_id]
        lease = FakeLease(
            lease_id=len(self.leases) + 1, instance_id=instance_id, cloud_account_id=cloud_account_id,
            upstream_account_id=upstream_account_id or record.upstream_account_id, region=region, action=action,
            owner_tag=owner_tag, owner_tag_value=owner_tag_value,
        )
        self.leases[lease.lease_id] = lease
        return lease

    def expired(self, *leases: FakeLease) -> list[LeaseExpired]:
        """The LeaseExpired the scheduler fires for each lease at its current version."""
        return [LeaseExpired(lease=lease.snapshot(self._mode(lease))) for lease in leases]

    def renew(self, lease: FakeLease) -> None:
        lease.version += 1
        lease.status = LeaseStatus.active
        lease.expires_at = datetime.now(timezone.utc) + timedelta(hours=1)

    def outcomes_of(self, lease: FakeLease) -> list[ReapOutcome]:
        return [o for o in self.reported if o.lease_id == lease.lease_id]

    def _mode(self, lease: FakeLease) -> CloudAccountMode:
        return self.records[lease.cloud_account_id].mode

    async def _cloud_accounts(self, request: Request, upstream_account_id: str | None = None) -> dict[str, Any]:
        self._authorize(request)
        self.requests["cloudaccounts"] += 1
        data = [r for r in self.records.values() if upstream_account_id in (None, r.upstream_account_id)]
        return {"data": [r.model_dump(mode="json") for r in data], "count": len(data)}

    async def _claim(self, request: Request, body: ClaimRequest) -> ClaimResult:
        self._authorize(request)
        self.requests["claim"] += 1
        self.claims.append(body.leases)
        result = ClaimResult()
        now = datetime.now(timezone.utc)
        for ref in body.leases:
            lease = self.leases.get(ref.lease_id)
            refuse = None
            if lease is None:
                refuse = "unknown"
            elif lease.version != ref.version:
                refuse = "stale_version"
            elif lease.status in (LeaseStatus.active, LeaseStatus.exempt) and lease.expires_at > now:
                refuse = "not_expired"
            elif lease.status not in (LeaseStatus.active, LeaseStatus.exempt, LeaseStatus.expired, LeaseStatus.reaping):
                refuse = "not_live"
            elif lease.lease_id in self.warning_owed:
                refuse = "warning_pending"  # the api moved the reap: a new version, a new timer
                self.renew(lease)
            if refuse is not None or lease is None:
                result.refused.append(ClaimRefusal(lease_id=ref.lease_id, version=ref.version, reason=refuse or "unknown"))
                continue
            mode = self._mode(lease)
            if mode == CloudAccountMode.enforce or self.claims_regardless_of_mode:
                lease.status = LeaseStatus.reaping  # again for a re-delivery: idempotent
                result.claimed.append(ClaimedLease(
                    lease=lease.snapshot(mode), action=lease.action, owner_tag=lease.owner_tag,
                    owner_tag_value=lease.owner_tag_value,
                ))
            elif lease.status is LeaseStatus.reaping:
                result.refused.append(ClaimRefusal(lease_id=ref.lease_id, version=ref.version, reason="not_live"))
            else:
                lease.status = LeaseStatus.expired
                result.observed.append(ref)
        return result

    async def _outcomes(self, request: Request, body: ReapOutcomes) -> None:
        self._authorize(request)
        self.requests["outcomes"] += 1
        if self.failing_outcomes > 0:
            self.failing_outcomes -= 1
            raise HTTPException(503, "database unavailable")
        for outcome in body.outcomes:
            lease = self.leases.get(outcome.lease_id)
            if lease is None or lease.version != outcome.version or lease.status is not LeaseStatus.reaping:
                continue
            self.reported.append(outcome)
            lease.reason = outcome.reason
            if outcome.outcome in (ReapOutcomeKind.stopped, ReapOutcomeKind.terminated):
                lease.status = LeaseStatus.reaped
                lease.version += 1
            elif outcome.outcome is ReapOutcomeKind.gone:
                lease.status = LeaseStatus.released
            else:
                lease.status = LeaseStatus.expired


# --- the reaper ------------------------------------------------------------------------


def reaper_settings(moto_url: str, **overrides: Any) -> ReaperSettings:
    values: dict[str, Any] = {
        "bus": "memory",
        "amqp_url": "memory://",
        "api_url": "http://api.test",
        "service_token": SERVICE_TOKEN,
        "aws_endpoint_url": moto_url,
        "aws_retry_delay": 0.01,
        "batch_wait": 0.1,
        "message_retry_delay": 0.2,
    }
    return ReaperSettings(**{**values, **overrides})


