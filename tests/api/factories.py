"""Builders for api tests: a running api behind an httpx client, and the people, tenants,
cloud accounts, resources and leases the tests need — through the API where the API
makes them, through the session where only ingestion would (resources, leases)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from zc_common.bus.memory import InProcessBus
from zc_common.settings import ApiSettings

from tests.support.credentials import API_CREDENTIALS
from zc_api.auth.bootstrap import create_admin
from zc_api.auth.service import issue_token
from zc_api.database import transaction
from zc_api.main import create_app, internal_app
from zc_api.models import Lease, Resource, User

SEED_ACCOUNT = {"lease_expires_in": 3, "lease_expires_in_units": "days", "name": "BigDB"}


@dataclass
class Api:
    """The api's public listener (``client``) and its internal one (``internal``)."""

    app: FastAPI
    client: httpx.AsyncClient
    internal: httpx.AsyncClient

    @property
    def internal_app(self) -> FastAPI:
        return internal_app(self.app)

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        sessions: async_sessionmaker[AsyncSession] = self.app.state.runtime.sessions
        return sessions


@dataclass
class Caller:
    """Someone holding an API token."""

    user_id: int
    email: str
    token: str
    account_id: int | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Tenant:
    """An account with its admin and one developer."""

    account_id: int
    admin: Caller
    dev: Caller


def settings(database_url: str, moto_url: str, **overrides: Any) -> ApiSettings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "amqp_url": "memory://",
        "bus": "memory",
        **API_CREDENTIALS,
        "aws_endpoint_url": moto_url,
        "aws_max_attempts": 2,
        **overrides,
    }
    return ApiSettings(**values)


@contextlib.asynccontextmanager
async def running_api(api_settings: ApiSettings) -> AsyncIterator[Api]:
    """The api app, started (lifespan) and reachable through an httpx client."""
    bus = InProcessBus()
    app = create_app(api_settings, bus=bus)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            internal = httpx.ASGITransport(app=internal_app(app))
            async with (
                httpx.AsyncClient(transport=transport, base_url="http://zerocloud.test") as client,
                httpx.AsyncClient(transport=internal, base_url="http://zerocloud.internal") as internal_client,
            ):
                yield Api(app=app, client=client, internal=internal_client)
    finally:
        await bus.close()


def random_upstream() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(12))


def role_arn(upstream: str, name: str = "ZeroCloud") -> str:
    return f"arn:aws:iam::{upstream}:role/{name}"


async def make_admin(api: Api, email: str | None = None) -> Caller:
    """An admin who belongs to no account yet (as bootstrapped or created by the CLI)."""
    email = email or f"admin-{secrets.token_hex(4)}@example.com"
    async with transaction(api.sessions) as session:
        user, token = await create_admin(session, email)
    assert user.id is not None
    return Caller(user_id=user.id, email=user.email, token=token)


async def make_account(api: Api, admin: Caller | None = None, **payload: Any) -> tuple[Caller, dict[str, Any]]:
    """An account created through the API; its creator becomes its admin."""
    admin = admin or await make_admin(api)
    body = {**SEED_ACCOUNT, "name": f"BigDB {secrets.token_hex(3)}", **payload}
    response = await api.client.post("/api/v1/accounts", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    account = response.json()
    admin.account_id = account["id"]
    return admin, account


async def make_user_token(
    api: Api, account_id: int | None, *, email: str | None = None, role: str = "dev", confirmed: bool = True
) -> Caller:
    """A user of ``account_id`` with a token of their own; their address confirmed (as an
    admin's adding them does) unless ``confirmed=False``."""
    email = email or f"{role}-{secrets.token_hex(4)}@example.com"
    async with transaction(api.sessions) as session:
        user = User(
            account_id=account_id, email=email, role=role,
            email_confirmed_at=datetime.now(timezone.utc) if confirmed else None,
        )
        session.add(user)
        await session.flush()
        token = await issue_token(session, user, "test")
    assert user.id is not None
    return Caller(user_id=user.id, email=email, token=token, account_id=account_id)


async def make_tenant(api: Api) -> Tenant:
    admin, account = await make_account(api)
    dev = await make_user_token(api, account["id"])
    return Tenant(account_id=account["id"], admin=admin, dev=dev)


async def make_cloud_account(
    api: Api, tenant: Tenant, *, upstream: str | None = None, **payload: Any
) -> dict[str, Any]:
    upstream = upstream or random_upstream()
    body = {
        "name": f"prod {upstream}", "cloudprovider": "AWS", "upstream_account_id": upstream,
        "assume_role_arn": role_arn(upstream), **payload,
    }
    response = await api.client.post(
        f"/api/v1/accounts/{tenant.account_id}/cloudaccounts", json=body, headers=tenant.admin.headers
    )
    assert response.status_code == 201, response.text
    cloud: dict[str, Any] = response.json()
    return cloud


async def make_lease(
    api: Api,
    cloud_account: dict[str, Any],
    owner: Caller,
    *,
    region: str = "us-east-1",
    status: str = "active",
    expires_in: timedelta = timedelta(days=3),
    instance_id: str | None = None,
    warned_before: timedelta | None = None,
) -> tuple[int, int]:
    """A resource and its lease, as ingestion would record them: (resource id, lease id).
    ``warned_before``: its last warning was planned that long before the expiry (warn_by),
    and not reported delivered yet; None: no warning planned."""
    instance_id = instance_id or f"i-{secrets.token_hex(8)}"
    now = datetime.now(timezone.utc)
    async with transaction(api.sessions) as session:
        resource = Resource(
            account_id=cloud_account["account_id"], cloud_account_id=cloud_account["id"], region=region,
            instance_id=instance_id, instance_type="t3.micro", state="running", name=f"box {instance_id}",
            tags={"owner": owner.email, "Name": f"box {instance_id}"}, observed_at=now,
        )
        session.add(resource)
        await session.flush()
        assert resource.id is not None
        lease = Lease(
            resource_id=resource.id, account_id=cloud_account["account_id"],
            cloud_account_id=cloud_account["id"], owner_user_id=owner.user_id, owner_email=owner.email,
            owner_reason=f"owner tag names {owner.email}", expires_at=now + expires_in, status=status,
            warn_by=None if warned_before is None else now + expires_in - warned_before,
        )
        session.add(lease)
        await session.flush()
        assert lease.id is not None
        return resource.id, lease.id
