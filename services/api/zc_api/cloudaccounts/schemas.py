"""Cloud accounts (a customer's AWS accounts) as the API reads and writes them."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from zc_common.messages import CloudAccountMode

from zc_api.cloudaccounts.claims import ClaimStatus, status_of, verify_by
from zc_api.models import UNVERIFIED_CLAIM_SECONDS, CloudAccount

ROLE_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")

CONFUSED_DEPUTY = (
    "ZeroCloud generates the external ID of every cloud account and returns it: put that value in "
    "the role's trust policy (the sts:ExternalId condition) and leave assume_role_external_id out. "
    "An external ID chosen by the caller would let anyone who knows or guesses it have ZeroCloud "
    "assume a role in an AWS account that is not theirs (the confused-deputy problem)."
)


def _upstream_id(value: Any) -> Any:
    # A 12-digit number is unambiguous; shorter numbers lost their leading zeros and are refused.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _provider(value: str) -> str:
    if value.strip().upper() != "AWS":
        raise ValueError(f"cloud provider {value!r} is not supported: ZeroCloud manages AWS accounts only")
    return "AWS"


def _role_arn(value: str) -> str:
    if not ROLE_ARN.match(value):
        raise ValueError("is not an IAM role ARN like arn:aws:iam::123456789012:role/ZeroCloud")
    return value


def region_name(value: str) -> str:
    """An AWS region's name, such as us-east-1 (its form only: AWS adds regions)."""
    if not _REGION.match(value):
        raise ValueError(f"{value!r} is not an AWS region such as us-east-1")
    return value



def _unique(value: list[str]) -> list[str]:
    return list(dict.fromkeys(value))


Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
UpstreamAccountId = Annotated[
    str, BeforeValidator(_upstream_id), Field(pattern=r"^\d{12}$", description="The 12-digit AWS account id.")
]
RoleArn = Annotated[str, Field(max_length=2048), AfterValidator(_role_arn)]
Regions = Annotated[
    list[Annotated[str, AfterValidator(region_name)]], Field(min_length=1, max_length=40), AfterValidator(_unique)
]
TopicArns = Annotated[
    dict[Annotated[str, AfterValidator(region_name)], Annotated[str, Field(min_length=1, max_length=512)]],
    Field(
        max_length=40,
        description="Region -> the ARN of the SNS topic the ZeroCloud stack made there (its TopicArn output). "
        "Verify finds it from the stack through the role; enter it here when the stack cannot be read. "
        "Events arriving through SNS are taken only from these topics.",
    ),
]


class CloudAccountCreate(BaseModel):
    """The seed's payload, accepted as written (unknown fields are ignored)."""

    model_config = ConfigDict(extra="ignore")

    name: Name
    cloudprovider: Annotated[str, AfterValidator(_provider)] = "AWS"
    upstream_account_id: UpstreamAccountId
    assume_role_arn: RoleArn
    assume_role_external_id: str | None = Field(
        None, description="Refused unless the operator allows caller-chosen IDs. " + CONFUSED_DEPUTY
    )
    regions: Regions = Field(default_factory=lambda: ["us-east-1"])
    mode: CloudAccountMode = Field(
        CloudAccountMode.observe, description="observe: leases and mail, no AWS changes; enforce: reap."
    )


class CloudAccountUpdate(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    regions: Regions | None = None
    mode: CloudAccountMode | None = None
    topic_arns: TopicArns | None = None


class CloudAccountPublic(BaseModel):
    id: int
    account_id: int
    name: str
    cloudprovider: str
    upstream_account_id: str
    assume_role_arn: str
    external_id: str = Field(description="Put it in the role's trust policy (sts:ExternalId).")
    regions: list[str]
    mode: CloudAccountMode
    created_at: datetime | None
    status: ClaimStatus = Field(
        description="pending_verification: verify it (POST .../verify) before verify_by; until then it receives "
        "its AWS account's events only while no other claim on that account is verified or pending. "
        f"verified: the AWS account is this cloud account's alone. expired: not verified within "
        f"{UNVERIFIED_CLAIM_SECONDS // 3600} h, it receives nothing until a verify succeeds."
    )
    verified_at: datetime | None
    verify_by: datetime | None = Field(description="When an unverified claim expires; null once verified.")
    topic_arns: dict[str, str] = Field(description="Region -> the SNS topic bound to this cloud account.")

    @classmethod
    def of(cls, row: CloudAccount, *, now: datetime | None = None) -> CloudAccountPublic:
        assert row.id is not None
        now = now or datetime.now(timezone.utc)
        return cls(
            id=row.id, account_id=row.account_id, name=row.name, cloudprovider=row.provider,
            upstream_account_id=row.upstream_account_id, assume_role_arn=row.role_arn,
            external_id=row.external_id, regions=list(row.regions), mode=CloudAccountMode(row.mode),
            created_at=row.created_at, status=status_of(row, now=now), verified_at=row.verified_at,
            verify_by=None if row.verified_at is not None or row.created_at is None else verify_by(row),
            topic_arns=dict(row.topic_arns),
        )


class VerifyCheck(BaseModel):
    name: str = Field(
        description="assume_role, caller_identity, describe_instances:<region>, events_topic:<region>, claim, "
        "events_subscription:<region> (when the operator set ZC_EVENT_QUEUE_ARN)"
    )
    ok: bool
    detail: str


class VerifyReport(BaseModel):
    ok: bool = Field(description="Every check passed.")
    checks: list[VerifyCheck]


class CloudAccountRemoved(BaseModel):
    id: int
    leases_released: int = Field(description="Live leases of the cloud account, now released.")
