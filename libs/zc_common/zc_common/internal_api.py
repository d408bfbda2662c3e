"""The api's internal endpoints, as the other services see them: the response models
and a small client. The api serves exactly these models under /internal/v1 on its
internal listener, and each route accepts only the credential of the service it is for."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Annotated, Any

import httpx
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from zc_common.aws import CloudAccountRole
from zc_common.messages import ActionOnExpiry, CloudAccountMode, LeaseSnapshot


class ReapOutcomeKind(str, enum.Enum):
    stopped = "stopped"
    terminated = "terminated"
    skipped = "skipped"  # protection, live state changed, owner tag changed: reported, never forced
    gone = "gone"  # the instance no longer exists: the lease is released


class LeaseAction(enum.StrEnum):
    renew = "renew"
    shutdown = "shutdown"


class CloudAccountRecord(BaseModel):
    """An onboarded AWS account with what is needed to act inside it: the one claim on it
    that is in force (verified, or not yet contested nor expired)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    account_id: int
    name: str
    upstream_account_id: str
    role_arn: str
    external_id: str
    regions: list[str]
    mode: CloudAccountMode
    topic_arns: dict[str, str] = Field(
        default_factory=dict,
        description="region -> the SNS topic bound to this cloud account: SNS-wrapped events naming its "
        "AWS account are taken only from these",
    )

    @property
    def role(self) -> CloudAccountRole:
        return CloudAccountRole(self.role_arn, self.external_id)


class CloudAccountRecords(BaseModel):
    data: list[CloudAccountRecord]
    count: int


class EventArrival(BaseModel):
    """Events came through a topic verify bound: when the ingestor last saw one, and the
    nonce of verify's probe when it was one."""

    topic_arn: str = Field(min_length=1, max_length=300)
    at: datetime
    probe: str | None = Field(None, min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


class EventArrivals(BaseModel):
    arrivals: list[EventArrival] = Field(max_length=100)


class KnownInstances(BaseModel):
    """Instances the api holds as not gone in one cloud account and region."""

    cloud_account_id: int
    region: str
    instance_ids: list[str]


class SweepState(enum.StrEnum):
    """A sweep an admin asked for: requested (published to the ingestor), running, then
    done or failed."""

    requested = "requested"
    running = "running"
    done = "done"
    failed = "failed"

    @property
    def in_progress(self) -> bool:
        return self in (SweepState.requested, SweepState.running)


MAX_SWEEP_ERROR_CHARS = 1000
SweepCount = Annotated[int, Field(ge=0, le=2**31 - 1)]


class SweepReport(BaseModel):
    """What the ingestor tells the api of a sweep it was asked for by id: that it runs,
    then how it ended (the counts when done; why, when failed)."""

    model_config = ConfigDict(extra="forbid")

    state: SweepState = Field(description="running, done or failed (never requested)")
    instances_seen: SweepCount | None = Field(None, description="instances AWS listed, each published")
    instances_gone: SweepCount | None = Field(
        None, description="instances the api held that AWS no longer lists, published as gone (their leases released)"
    )
    error: str | None = Field(None, min_length=1, max_length=MAX_SWEEP_ERROR_CHARS, description="why it failed")


class LeaseRef(BaseModel):
    """A lease at one version: what a timer, a claim or a link is bound to."""

    model_config = ConfigDict(frozen=True)

    lease_id: int
    version: int


class ClaimRequest(BaseModel):
    leases: list[LeaseRef]


class ClaimedLease(BaseModel):
    """A lease the reaper now holds (status ``reaping``): act on it, then report."""

    lease: LeaseSnapshot
    action: ActionOnExpiry
    owner_tag: str = Field(description="the policy's owner tag key")
    owner_tag_value: str | None = Field(description="the owner tag's value when the lease was made")


class ClaimRefusal(BaseModel):
    lease_id: int
    version: int
    reason: str = Field(
        description="stale_version | not_expired | not_live | blast_radius | warning_pending (the last warning "
        "of this version was not delivered: the api moved the reap, its new version warns at once) | unknown"
    )


class ClaimResult(BaseModel):
    """Compare-and-set on (lease id, version, state). ``observed``: observe mode, the api
    has recorded what would have happened and told the owner; nothing to do in AWS."""

    claimed: list[ClaimedLease] = Field(default_factory=list)
    observed: list[LeaseRef] = Field(default_factory=list)
    refused: list[ClaimRefusal] = Field(default_factory=list)


class ReapOutcome(BaseModel):
    lease_id: int
    version: int
    outcome: ReapOutcomeKind
    reason: str | None = None


class ReapOutcomes(BaseModel):
    outcomes: list[ReapOutcome]


# --- warnings: nobody is reaped without the warnings the policy promised ----------------

MAX_WARNINGS = 10_000
LeaseIdValue = Annotated[int, Field(ge=1, le=2**31 - 1)]
VersionValue = Annotated[int, Field(ge=1, le=2**31 - 1)]


def _in_utc(moment: datetime) -> datetime:
    # 9999-12-31T23:59:59-14:00 is valid ISO 8601 that no datetime holds in UTC: a 422, not a 500.
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{moment.isoformat()} is out of range once converted to UTC") from None


UtcMoment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class WarningUndelivered(str, enum.Enum):
    """Why a warning can never reach its owner, so waiting for it would hold the reap forever."""

    unconfirmed = "unconfirmed"  # the owner's address is not confirmed: nothing is mailed to it
    not_a_mail_address = "not_a_mail_address"
    recipient_refused = "recipient_refused"  # the mail server refused the mailbox for good
    no_channel = "no_channel"  # no channel reaches the owner's own mailbox


class WarningDelivered(BaseModel):
    """A warning (LeaseExpiringSoon) of one lease version went out (the mail server
    accepted it), or can never go out (``undelivered`` says why)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lease_id: LeaseIdValue
    version: VersionValue
    warning_at: UtcMoment = Field(description="the warning's moment, as its timer fired it")
    delivered_at: UtcMoment = Field(description="when the mail server accepted it (or it was found undeliverable)")
    undelivered: WarningUndelivered | None = None


class WarningsDelivered(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warnings: list[WarningDelivered] = Field(max_length=MAX_WARNINGS)


class WarningsRecorded(BaseModel):
    """``recorded``: the versions whose last warning is now (or was already) on record;
    everything else was ignored (an earlier warning of the version, or a version that moved on)."""

    recorded: list[LeaseRef] = Field(default_factory=list)
    ignored: int = 0


class LateWarning(BaseModel):
    """A warning that cannot reach its owner its lead before the lease ends."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lease_id: LeaseIdValue
    version: VersionValue
    warning_at: UtcMoment


class DeferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    warnings: list[LateWarning] = Field(max_length=MAX_WARNINGS)


class DeferOutcome(str, enum.Enum):
    deferred = "deferred"  # a new version: the reap moved by the warning's lead, warned at once
    superseded = "superseded"  # the lease is at another version (renewed, claimed …): that version's warnings stand
    not_active = "not_active"  # being reaped, reaped, released or exempt: there is no reap to move
    no_warning = "no_warning"  # the policy no longer warns
    unknown = "unknown"


class Deferral(BaseModel):
    lease_id: int
    version: int = Field(description="the version asked about")
    warning_at: datetime
    outcome: DeferOutcome
    new_version: int | None = None
    expires_at: datetime | None = Field(None, description="the new expiry, when deferred")


class DeferResult(BaseModel):
    """One answer per warning asked about (repeats once), in the order asked."""

    data: list[Deferral]


class ActionLinksRequest(BaseModel):
    leases: list[LeaseRef]
    actions: list[LeaseAction] = Field(default_factory=lambda: [LeaseAction.renew, LeaseAction.shutdown])


class ActionLinks(BaseModel):
    lease_id: int
    version: int
    links: dict[LeaseAction, str]


class ActionLinksResult(BaseModel):
    data: list[ActionLinks]


class NotificationKeys(BaseModel):
    """Idempotency of mail: ``reserve`` answers the keys not yet sent; ``sent`` records them."""

    keys: list[str]


MAX_NOTICE_RECIPIENTS = 10_000
AccountIdValue = Annotated[int, Field(ge=1, le=2**31 - 1)]


class NoticeRecipient(BaseModel):
    """A person a lease notice is for: their address in one account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: AccountIdValue
    email: str = Field(min_length=1, max_length=320)


class NoticeRecipientsRequest(BaseModel):
    """Where a batch of lease notices may go: asked of the api before anything is sent."""

    model_config = ConfigDict(extra="forbid")

    recipients: list[NoticeRecipient] = Field(default_factory=list, max_length=MAX_NOTICE_RECIPIENTS)
    account_ids: list[AccountIdValue] = Field(default_factory=list, max_length=MAX_NOTICE_RECIPIENTS)


class AccountWebhook(BaseModel):
    """An account's own chat webhook, which its admins set."""

    account_id: int
    url: str


class NoticeRecipients(BaseModel):
    """``confirmed``: the recipients asked whose address is confirmed in that account — mail
    goes to them only (nothing is mailed to an address before its owner confirmed it).
    ``webhooks``: the accounts asked that have a webhook of their own."""

    confirmed: list[NoticeRecipient] = Field(default_factory=list)
    webhooks: list[AccountWebhook] = Field(default_factory=list)


class PeopleLinkKind(str, enum.Enum):
    invitation = "invitation"
    email_confirmation = "email_confirmation"


class PeopleLinkRequest(BaseModel):
    """Mint the link a people mail carries: an invitation's (by invitation id) or an
    email confirmation's (by user id)."""

    model_config = ConfigDict(extra="forbid")

    kind: PeopleLinkKind
    id: int


class PeopleLink(BaseModel):
    """A freshly minted single-use link; its token exists in clear only here and in the mail."""

    url: str
    expires_at: datetime


# The api answers 404 with this ``field`` when there is nothing to mail any more (the
# invitation is no longer pending, the user is gone or already confirmed): a 404
# without it (an api that has no such route yet) is an error, not a reason to skip.
PEOPLE_LINK_GONE_FIELD = "id"


class InternalApiError(Exception):
    """The api answered an error. ``status_code`` is the HTTP status it answered (None only
    when raised without an answer), so callers decide on it without parsing the message."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code

    @classmethod
    def answered(cls, method: str, path: str, response: httpx.Response) -> InternalApiError:
        return cls(
            f"{method} {path} -> {response.status_code}: {response.text[:300]}", status_code=response.status_code
        )


class InternalApi:
    """httpx client for /internal/v1 on the api's internal listener, with this service's own credential."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/internal/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, **params: Any) -> Any:
        response = await self._http.get(path, params={k: v for k, v in params.items() if v is not None})
        if response.status_code >= 400:
            raise InternalApiError.answered("GET", path, response)
        return response.json()

    async def cloud_accounts(self, upstream_account_id: str | None = None) -> list[CloudAccountRecord]:
        """Every cloud account in force, or the one of an upstream AWS account id (a list
        of at most one)."""
        body = await self._get("/cloudaccounts", upstream_account_id=upstream_account_id)
        return CloudAccountRecords.model_validate(body).data

    async def known_instances(self, cloud_account_id: int, region: str) -> list[str]:
        body = await self._get(f"/cloudaccounts/{cloud_account_id}/instances", region=region)
        return KnownInstances.model_validate(body).instance_ids

    async def events_arrived(self, arrivals: list[EventArrival]) -> None:
        """Tell the api events came through these topics (the ingestor)."""
        await self._post("/cloudaccounts/event-arrivals", EventArrivals(arrivals=arrivals))

    async def report_sweep(self, sweep_id: int, report: SweepReport) -> None:
        """Tell the api how the sweep it asked for by id is going (the ingestor)."""
        await self._post(f"/sweeps/{sweep_id}/report", report)

    async def _post(self, path: str, body: BaseModel) -> Any:
        response = await self._http.post(path, content=body.model_dump_json(), headers={"Content-Type": "application/json"})
        if response.status_code >= 400:
            raise InternalApiError.answered("POST", path, response)
        return response.json() if response.content else None

    async def claim(self, leases: list[LeaseRef]) -> ClaimResult:
        return ClaimResult.model_validate(await self._post("/leases/claim", ClaimRequest(leases=leases)))

    async def report_outcomes(self, outcomes: list[ReapOutcome]) -> None:
        await self._post("/leases/outcomes", ReapOutcomes(outcomes=outcomes))

    async def warnings_delivered(self, warnings: list[WarningDelivered]) -> WarningsRecorded:
        """Tell the api these warnings went out (or never can): the claim stops waiting."""
        body = await self._post("/leases/warned", WarningsDelivered(warnings=warnings))
        return WarningsRecorded.model_validate(body)

    async def defer_for_warnings(self, warnings: list[LateWarning]) -> list[Deferral]:
        """These warnings are too late for their lead: ask the api to move the reap."""
        return DeferResult.model_validate(await self._post("/leases/defer", DeferRequest(warnings=warnings))).data

    async def action_links(self, leases: list[LeaseRef], actions: list[LeaseAction] | None = None) -> list[ActionLinks]:
        request = ActionLinksRequest(leases=leases) if actions is None else ActionLinksRequest(leases=leases, actions=actions)
        return ActionLinksResult.model_validate(await self._post("/action-links", request)).data

    async def people_link(self, kind: PeopleLinkKind, subject_id: int) -> PeopleLink | None:
        """A new link for the mail about an invitation / a user (``subject_id``); None when
        the api will not mint one because there is nothing to mail any more (skip the mail)."""
        request = PeopleLinkRequest(kind=kind, id=subject_id)
        response = await self._http.post(
            "/people-links", content=request.model_dump_json(), headers={"Content-Type": "application/json"}
        )
        if response.status_code == 404 and _error_field(response) == PEOPLE_LINK_GONE_FIELD:
            return None
        if response.status_code >= 400:
            raise InternalApiError.answered("POST", "/people-links", response)
        return PeopleLink.model_validate(response.json())

    async def reserve_notifications(self, keys: list[str]) -> list[str]:
        return NotificationKeys.model_validate(await self._post("/notifications/reserve", NotificationKeys(keys=keys))).keys

    async def notifications_sent(self, keys: list[str]) -> None:
        await self._post("/notifications/sent", NotificationKeys(keys=keys))

    async def notice_recipients(
        self, recipients: list[NoticeRecipient], account_ids: list[int]
    ) -> NoticeRecipients:
        request = NoticeRecipientsRequest(recipients=recipients, account_ids=account_ids)
        return NoticeRecipients.model_validate(await self._post("/notifications/recipients", request))


def _error_field(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    field = body.get("field") if isinstance(body, dict) else None
    return field if isinstance(field, str) else None
