"""AWS access: aiobotocore clients that act inside a customer's account through its
role, always with the external ID ZeroCloud generated for it. Credentials are cached
until shortly before they expire; every client uses adaptive retries and honours the
configured endpoint (a moto server in tests and the sandbox)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

log = logging.getLogger("zc.aws")

REFRESH_BEFORE = timedelta(minutes=5)


@dataclass(frozen=True)
class CloudAccountRole:
    """How to act inside one customer AWS account."""

    role_arn: str
    external_id: str

    @property
    def upstream_account_id(self) -> str:
        return self.role_arn.split(":")[4]


@dataclass(frozen=True)
class _Credentials:
    access_key: str
    secret_key: str
    token: str
    expires_at: datetime


class AwsAccess:
    """One per process. ``client(service, region, role)`` is an async context manager."""

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        default_region: str = "us-east-1",
        session_name: str = "zerocloud",
        max_attempts: int = 8,
        session_seconds: int = 3600,
    ) -> None:
        self.endpoint_url = endpoint_url
        self.default_region = default_region
        self.session_name = session_name
        self.session_seconds = session_seconds
        self.config = AioConfig(
            retries={"mode": "adaptive", "max_attempts": max_attempts},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=50,
        )
        self._session: AioSession = get_session()
        self._cache: dict[CloudAccountRole, _Credentials] = {}
        self._locks: dict[CloudAccountRole, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def client(
        self, service: str, region: str | None = None, role: CloudAccountRole | None = None
    ) -> AsyncIterator[Any]:
        """A client for ``service`` in ``region``, as ZeroCloud itself or inside ``role``."""
        kwargs: dict[str, Any] = {
            "region_name": region or self.default_region,
            "endpoint_url": self.endpoint_url,
            "config": self.config,
        }
        if role is not None:
            creds = await self.credentials(role)
            kwargs.update(
                aws_access_key_id=creds.access_key,
                aws_secret_access_key=creds.secret_key,
                aws_session_token=creds.token,
            )
        async with self._session.create_client(service, **kwargs) as client:
            yield client

    async def credentials(self, role: CloudAccountRole) -> _Credentials:
        cached = self._cache.get(role)
        if cached and cached.expires_at - REFRESH_BEFORE > datetime.now(timezone.utc):
            return cached
        lock = self._locks.setdefault(role, asyncio.Lock())
        async with lock:
            cached = self._cache.get(role)
            if cached and cached.expires_at - REFRESH_BEFORE > datetime.now(timezone.utc):
                return cached
            fresh = await self.assume_role(role)
            self._cache[role] = fresh
            return fresh

    async def assume_role(self, role: CloudAccountRole) -> _Credentials:
        """AssumeRole with the external ID; raises botocore's ClientError on refusal."""
        async with self.client("sts") as sts:
            answer = await sts.assume_role(
                RoleArn=role.role_arn,
                RoleSessionName=self.session_name,
                ExternalId=role.external_id,
                DurationSeconds=self.session_seconds,
            )
        creds = answer["Credentials"]
        expires = creds["Expiration"]
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        log.info("assumed %s until %s", role.role_arn, expires.isoformat())
        return _Credentials(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"], expires)

    def forget(self, role: CloudAccountRole) -> None:
        """Drop cached credentials (after an access-denied, say)."""
        self._cache.pop(role, None)


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None
