"""AWS access: aiobotocore clients that act inside a customer's account through its
role, always with the external ID ZeroCloud generated for it. Credentials are cached
until shortly before they expire; every client uses adaptive retries and honours the
configured endpoint (a moto server in tests and the sandbox). Every call is counted
(zc_common.metrics.AWS_CALLS) through botocore's event hooks."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import ssl
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

from aiobotocore.config import AioConfig
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.session import AioSession, get_session

from zc_common import metrics

log = logging.getLogger("zc.aws")

REFRESH_BEFORE = timedelta(minutes=5)
# A kept client replaced (its credentials were refreshed) is closed this long after, so
# that a call still using it finishes first.
RETIRED_CLIENT_SECONDS = 120.0
# /readyz asks AWS at most this often, and waits this long for its answer.
READINESS_CACHE_SECONDS = 30.0
READINESS_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class CloudAccountRole:
    """How to act inside one customer AWS account."""

    role_arn: str
    external_id: str

    @property
    def upstream_account_id(self) -> str:
        return self.role_arn.split(":")[4]


class SharedTlsSession(AIOHTTPSession):  # type: ignore[misc]
    """aiobotocore's HTTP session, with the TLS context (the CA bundle loaded: ~26 ms of
    CPU) built once per process and verify setting instead of once per client. A sweep
    opens a client per cloud account and region, so at 10,000 accounts × 3 regions that
    is some 13 minutes of CPU a sweep. Certificates are verified exactly as before. With
    a client certificate the context is not shared (aiobotocore loads the certificate
    into it); a proxy's context is built apart and is not affected."""

    _contexts: ClassVar[dict[Any, ssl.SSLContext]] = {}
    _contexts_lock: ClassVar[threading.Lock] = threading.Lock()  # built off the event loop, in a thread

    def _build_verify_context(self) -> ssl.SSLContext:
        if self._cert_file:
            return super()._build_verify_context()  # type: ignore[no-any-return]
        key = self._verify
        with self._contexts_lock:
            context = self._contexts.get(key)
            if context is None:
                context = self._contexts[key] = super()._build_verify_context()
        return context


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
            http_session_cls=SharedTlsSession,
        )
        self._session: AioSession = get_session()
        # ISO 8601 timestamps (all EC2 and STS send) read by the standard library: botocore's
        # dateutil parser took about 0.2 ms each, four per described instance (issue #12).
        self._session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
        # On the session, so every client it creates (and every call they make) is counted.
        self._session.register("after-call", _count_call, unique_id="zc-metrics-after-call")
        self._session.register("after-call-error", _count_failed_call, unique_id="zc-metrics-after-call-error")
        self._cache: dict[CloudAccountRole, _Credentials] = {}
        self._locks: dict[CloudAccountRole, asyncio.Lock] = {}
        self._readiness: tuple[float, bool] | None = None
        self._readiness_lock = asyncio.Lock()
        # Clients kept open by kept_client, by (service, region, role), each with the access
        # key it was made with; replaced ones wait in _retired to be closed.
        self._kept: dict[tuple[str, str, CloudAccountRole | None], tuple[str | None, Any, contextlib.AsyncExitStack]] = {}
        self._kept_lock = asyncio.Lock()
        self._retired: list[tuple[float, contextlib.AsyncExitStack]] = []

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

    async def kept_client(
        self, service: str, region: str | None = None, role: CloudAccountRole | None = None
    ) -> Any:
        """A client like ``client``'s, kept open and shared by every caller until its role's
        credentials are refreshed (then a new one is made) or ``close``: making an
        aiobotocore client costs tens of milliseconds of CPU, more than the call itself,
        so a path that calls AWS many times a second (following events) keeps its clients."""
        key = (service, region or self.default_region, role)
        access_key = (await self.credentials(role)).access_key if role is not None else None
        kept = self._kept.get(key)
        if kept is not None and kept[0] == access_key:
            return kept[1]
        async with self._kept_lock:
            await self._close_retired(time.monotonic())
            kept = self._kept.get(key)
            if kept is not None and kept[0] == access_key:
                return kept[1]
            stack = contextlib.AsyncExitStack()
            client = await stack.enter_async_context(self.client(service, key[1], role))
            if kept is not None:
                self._retired.append((time.monotonic() + RETIRED_CLIENT_SECONDS, kept[2]))
            self._kept[key] = (access_key, client, stack)
            return client

    async def _close_retired(self, now: float) -> None:
        due = [stack for at, stack in self._retired if at <= now]
        self._retired = [(at, stack) for at, stack in self._retired if at > now]
        for stack in due:
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def close(self) -> None:
        """Close every kept client."""
        stacks = [stack for _, _, stack in self._kept.values()] + [stack for _, stack in self._retired]
        self._kept.clear()
        self._retired.clear()
        for stack in stacks:
            with contextlib.suppress(Exception):
                await stack.aclose()

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

    async def answers(self) -> bool:
        """Whether AWS answers ZeroCloud's own credentials (STS GetCallerIdentity, one try,
        a short timeout), for /readyz. The answer is kept READINESS_CACHE_SECONDS so that
        frequent probes of several replicas do not become a load on AWS."""
        async with self._readiness_lock:
            now = time.monotonic()
            if self._readiness is not None and now - self._readiness[0] < READINESS_CACHE_SECONDS:
                return self._readiness[1]
            config = AioConfig(
                retries={"mode": "standard", "max_attempts": 1},
                connect_timeout=READINESS_TIMEOUT_SECONDS,
                read_timeout=READINESS_TIMEOUT_SECONDS,
            )
            try:
                async with asyncio.timeout(READINESS_TIMEOUT_SECONDS + 1):
                    async with self._session.create_client(
                        "sts", region_name=self.default_region, endpoint_url=self.endpoint_url, config=config
                    ) as sts:
                        await sts.get_caller_identity()
                answered = True
            except Exception as error:  # noqa: BLE001 - any failure means AWS is not usable now
                log.warning("AWS does not answer (%s: %s)", type(error).__name__, error)
                answered = False
            self._readiness = (time.monotonic(), answered)
            return answered


def parse_timestamp(value: Any) -> datetime:
    """A timestamp of an AWS answer, aware (UTC when it names no zone), as botocore's own
    parser reads them: ISO 8601 (what EC2 and STS send), epoch seconds (JSON protocols)
    or RFC 822 (some headers). Raises ValueError for anything else, as botocore does."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = email.utils.parsedate_to_datetime(text)
            except (TypeError, ValueError):
                try:
                    return datetime.fromtimestamp(float(text), timezone.utc)
                except ValueError:
                    raise ValueError(f"Invalid timestamp {value!r}") from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)
    raise ValueError(f"Invalid timestamp {value!r}")


def error_code(error: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _count_call(event_name: str, http_response: Any, parsed: Any, **_: Any) -> None:
    """botocore's after-call (event ``after-call.<service>.<Operation>``): an answer came,
    after botocore's own retries; a status of 300 or more is an AWS error."""
    service, operation = event_name.split(".", 2)[1:]
    outcome = "ok"
    if getattr(http_response, "status_code", 200) >= 300:
        code = parsed.get("Error", {}).get("Code") if isinstance(parsed, dict) else None
        outcome = str(code or f"HTTP{http_response.status_code}")
    metrics.AWS_CALLS.labels(service, operation, outcome).inc()


def _count_failed_call(event_name: str, exception: BaseException, **_: Any) -> None:
    """botocore's after-call-error: no answer at all (connection refused, timeout)."""
    service, operation = event_name.split(".", 2)[1:]
    metrics.AWS_CALLS.labels(service, operation, type(exception).__name__).inc()
