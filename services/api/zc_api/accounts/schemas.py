"""Accounts (tenants) as the API reads and writes them."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from zc_api.models import Account, AccountPolicy
from zc_api.policies.schemas import AccountPolicyPublic, LeaseUnit

AccountName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class AccountCreate(BaseModel):
    """The seed's payload, accepted as written: ``{"lease_expires_in": 3,
    "lease_expires_in_units": "days", "name": "BigDB"}``. Fields ZeroCloud does not
    know are ignored here (and only here and for cloud accounts) so that it keeps working."""

    model_config = ConfigDict(extra="ignore")

    name: AccountName
    lease_expires_in: Annotated[int, Field(gt=0)] | None = Field(
        None, description="The policy's default lease, in lease_expires_in_units (default: 3 days)."
    )
    lease_expires_in_units: LeaseUnit | None = None


MAX_WEBHOOK_URL_LENGTH = 2048


def _webhook_url(value: str) -> str:
    """An http(s) URL to a host on the network: no credentials in it, no fragment, and not
    an address inside ZeroCloud's own network (loopback, private, link-local, such as the
    cloud's metadata service) written as a literal."""
    if any(ord(c) < 33 or ord(c) == 127 for c in value):
        raise ValueError("must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"is not a URL: {error}") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// (or http://) URL with a host, e.g. https://hooks.slack.com/services/…")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ValueError("must not carry a user, password or #fragment")
    host = parts.hostname.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost") or port == 0:
        raise ValueError("must name a host outside ZeroCloud's own network")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return value
    if not address.is_global:
        raise ValueError("must name a host outside ZeroCloud's own network (not a private or loopback address)")
    return value


WebhookUrl = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_WEBHOOK_URL_LENGTH),
    AfterValidator(_webhook_url),
]


class AccountUpdate(BaseModel):
    """Only the fields sent change; ``webhook_url: null`` removes the account's webhook."""

    model_config = ConfigDict(extra="forbid")

    name: AccountName | None = None
    webhook_url: WebhookUrl | None = Field(
        None,
        description="A Slack-compatible webhook the account's lease notices are also posted to (admins only). "
        "A chat channel is read by others: it never gets renew or shut-down links.",
    )


class AccountPublic(BaseModel):
    id: int
    name: str
    created_at: datetime | None
    policy: AccountPolicyPublic
    webhook_url: str | None = Field(
        None, description="The account's webhook (shown to its admins only: whoever holds it can post there)."
    )

    @classmethod
    def of(cls, account: Account, policy: AccountPolicy, *, admin: bool = False) -> AccountPublic:
        assert account.id is not None
        return cls(
            id=account.id, name=account.name, created_at=account.created_at,
            policy=AccountPolicyPublic.model_validate(policy), webhook_url=account.webhook_url if admin else None,
        )
