"""API tokens: shown once, stored only as a hash, and dead once revoked."""

from __future__ import annotations

import hashlib
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from tests.api.factories import Api, Caller, Tenant
from zc_api.models import ApiToken


async def _database_text(database_url: str) -> str:
    """Every row of every table, as text: what someone reading a backup would see."""
    connection = await asyncpg.connect(database_url)
    try:
        tables = [r["tablename"] for r in await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )]
        rows = []
        for table in tables:
            rows += [str(r[0]) for r in await connection.fetch(f'SELECT t::text FROM "{table}" t')]
        return "\n".join(rows)
    finally:
        await connection.close()


async def _create(api: Api, caller: Caller, name: str = "laptop") -> dict[str, Any]:
    response = await api.client.post("/api/v1/tokens", json={"name": name}, headers=caller.headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_new_token_is_shown_once_and_works(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant.dev)

    me = await api.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {created['token']}"})
    listed = (await api.client.get("/api/v1/tokens", headers=tenant.dev.headers)).json()

    assert me.status_code == 200 and me.json()["id"] == tenant.dev.user_id
    assert created["token"].startswith(created["prefix"])
    mine = [t for t in listed["data"] if t["id"] == created["id"]]
    assert mine and "token" not in mine[0]
    assert created["token"] not in str(listed)


async def test_database_never_holds_the_clear_token(api: Api, tenant: Tenant, clean_database: str) -> None:
    created = await _create(api, tenant.dev)

    async with api.sessions() as session:
        stored = await session.get(ApiToken, created["id"])
    everything = await _database_text(clean_database)

    assert stored is not None
    assert stored.token_hash == hashlib.sha256(created["token"].encode()).hexdigest()
    assert created["token"] not in everything
    assert created["token"][len(created["prefix"]):] not in everything


async def test_revoked_token_is_401(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant.dev)
    headers = {"Authorization": f"Bearer {created['token']}"}

    revoked = await api.client.delete(f"/api/v1/tokens/{created['id']}", headers=tenant.dev.headers)
    after = await api.client.get("/api/v1/users/me", headers=headers)

    assert revoked.status_code == 204
    assert after.status_code == 401
    listed = (await api.client.get("/api/v1/tokens", headers=tenant.dev.headers)).json()
    assert created["id"] not in [t["id"] for t in listed["data"]]


async def test_revoked_token_cannot_be_revoked_again(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant.dev)
    url = f"/api/v1/tokens/{created['id']}"

    first = await api.client.delete(url, headers=tenant.dev.headers)
    again = await api.client.delete(url, headers=tenant.dev.headers)

    assert (first.status_code, again.status_code) == (204, 404)


async def test_revoking_the_token_in_use_ends_it(api: Api, tenant: Tenant) -> None:
    created = await _create(api, tenant.dev)
    headers = {"Authorization": f"Bearer {created['token']}"}

    assert (await api.client.delete(f"/api/v1/tokens/{created['id']}", headers=headers)).status_code == 204
    assert (await api.client.get("/api/v1/tokens", headers=headers)).status_code == 401


async def test_someone_elses_token_cannot_be_revoked_or_seen(api: Api, tenant: Tenant) -> None:
    admins = await _create(api, tenant.admin)

    revoked = await api.client.delete(f"/api/v1/tokens/{admins['id']}", headers=tenant.dev.headers)
    listed = (await api.client.get("/api/v1/tokens", headers=tenant.dev.headers)).json()

    assert revoked.status_code == 404
    assert admins["id"] not in [t["id"] for t in listed["data"]]
    still = await api.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {admins['token']}"})
    assert still.status_code == 200


async def test_token_without_a_name_is_422(api: Api, tenant: Tenant) -> None:
    response = await api.client.post("/api/v1/tokens", json={}, headers=tenant.dev.headers)

    assert response.status_code == 422
    assert response.json()["field"] == "name"
