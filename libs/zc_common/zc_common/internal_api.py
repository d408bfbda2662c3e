"""The api's internal endpoints, as the other services see them: the response models
and a small client. The api serves exactly these models under /internal/v1 and accepts
only the service token there."""

from __future__ import annotations

import enum
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from zc_common.aws import CloudAccountRole


class CloudAccountMode(str, enum.Enum):
    observe = "observe"
    enforce = "enforce"


class CloudAccountRecord(BaseModel):
    """An onboarded AWS account with what is needed to act inside it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: int
    account_id: int
    name: str
    upstream_account_id: str
    role_arn: str
    external_id: str
    regions: list[str]
    mode: CloudAccountMode

    @property
    def role(self) -> CloudAccountRole:
        return CloudAccountRole(self.role_arn, self.external_id)


class CloudAccountRecords(BaseModel):
    data: list[CloudAccountRecord]
    count: int


class KnownInstances(BaseModel):
    """Instances the api holds as not gone in one cloud account and region."""

    cloud_account_id: int
    region: str
    instance_ids: list[str]


class InternalApiError(Exception):
    pass


class InternalApi:
    """httpx client for /internal/v1 with the service token."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 15.0, transport: httpx.AsyncBaseTransport | None = None) -> None:
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
            raise InternalApiError(f"GET {path} -> {response.status_code}: {response.text[:300]}")
        return response.json()

    async def cloud_accounts(self, upstream_account_id: str | None = None) -> list[CloudAccountRecord]:
        """Every onboarded cloud account, or those of one upstream AWS account id."""
        body = await self._get("/cloudaccounts", upstream_account_id=upstream_account_id)
        return CloudAccountRecords.model_validate(body).data

    async def known_instances(self, cloud_account_id: int, region: str) -> list[str]:
        body = await self._get(f"/cloudaccounts/{cloud_account_id}/instances", region=region)
        return KnownInstances.model_validate(body).instance_ids
