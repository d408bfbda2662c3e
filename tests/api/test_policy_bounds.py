"""The policy's bounds (issue 10, holes 4, 5 and 7): an email pattern is an address or a
domain, never a glob that lets everyone in, at most 100 of them, matched by set lookup;
at most 10 warnings, a minute apart. Stored policies from before are brought within the
bounds by migration 0008, and what it dropped is in the audit trail."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg
import pytest

from zc_common.messages import utcnow

from tests.api.factories import Api, Tenant, make_account
from tests.api.test_signup import admit, identity
from zc_api.auth import signup
from zc_api.database import migrate
from zc_api.leases.policy import email_allowed, pattern_candidates


def policy_url(tenant: Tenant) -> str:
    return f"/api/v1/accounts/{tenant.account_id}/policy"


async def patch(api: Api, tenant: Tenant, **fields: Any) -> Any:
    return await api.client.patch(policy_url(tenant), json=fields, headers=tenant.admin.headers)


def refusal(response: Any, field: str) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["field"] == field and body["detail"].startswith(f"{field}: "), body
    return str(body["detail"])


# --- patterns ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["*", "*@*", "*@*.com", "  *@*  "])
async def test_a_pattern_that_would_let_everyone_in_is_refused(api: Api, tenant: Tenant, pattern: str) -> None:
    message = refusal(await patch(api, tenant, allowed_email_patterns=["*@bigdb.com", pattern]),
                      "allowed_email_patterns")

    assert "would let everyone in" in message and "*@bigdb.com" in message
    policy = (await api.client.get(policy_url(tenant), headers=tenant.admin.headers)).json()
    assert policy["allowed_email_patterns"] == []  # nothing of the refused update was kept


@pytest.mark.parametrize("pattern", ["dev-*@bigdb.com", "*bigdb.com", "*@com", "bob", "*@big db.com", "*@[a-z].com",
                                     "a@b@bigdb.com", "*@-bigdb.com"])
async def test_a_glob_or_a_malformed_pattern_is_refused_with_the_forms_that_work(
    api: Api, tenant: Tenant, pattern: str
) -> None:
    message = refusal(await patch(api, tenant, allowed_email_patterns=[pattern]), "allowed_email_patterns")

    assert "is not a pattern" in message and "*@*.bigdb.com" in message


async def test_addresses_domains_and_subdomains_are_kept_in_one_form(api: Api, tenant: Tenant) -> None:
    response = await patch(api, tenant, allowed_email_patterns=[
        " Ops@Contractor.IO ", "*@BigDB.com", "*@*.bigdb.com", "*@bigdb.com", "o'brien+zc@eu.bigdb.co.uk",
    ])

    assert response.status_code == 200, response.text
    assert response.json()["allowed_email_patterns"] == [
        "ops@contractor.io", "*@bigdb.com", "*@*.bigdb.com", "o'brien+zc@eu.bigdb.co.uk",
    ]


async def test_at_most_a_hundred_patterns(api: Api, tenant: Tenant) -> None:
    hundred = [f"*@team{i}.bigdb.com" for i in range(100)]
    assert (await patch(api, tenant, allowed_email_patterns=hundred)).status_code == 200

    message = refusal(await patch(api, tenant, allowed_email_patterns=[*hundred, "*@one-more.com"]),
                      "allowed_email_patterns")
    assert "100" in message


def test_an_address_matches_its_own_address_domain_and_parent_domains_only() -> None:
    assert pattern_candidates("Ann@Eng.BigDB.co.uk") == [
        "ann@eng.bigdb.co.uk", "*@eng.bigdb.co.uk", "*@*.bigdb.co.uk", "*@*.co.uk",
    ]
    assert email_allowed("ann@eng.bigdb.com", ["*@*.bigdb.com"])
    assert not email_allowed("ann@bigdb.com", ["*@*.bigdb.com"])  # a subdomain pattern is only subdomains
    assert email_allowed("ann@bigdb.com", ["*@bigdb.com"])
    assert not email_allowed("ann@notbigdb.com", ["*@bigdb.com", "*@*.bigdb.com"])
    assert not email_allowed("ann@bigdb.com.evil.example", ["*@bigdb.com", "*@*.bigdb.com"])
    assert email_allowed("OPS@contractor.io", ["ops@contractor.io"])
    assert not email_allowed("ops2@contractor.io", ["ops@contractor.io"])
    assert email_allowed("anyone@anywhere.example", [])  # no patterns: any owner email


async def test_sign_in_joins_the_oldest_account_whose_patterns_hold_the_address(api: Api) -> None:
    admin_a, account_a = await make_account(api)
    admin_b, account_b = await make_account(api)
    for admin, account, patterns in ((admin_a, account_a, ["*@*.bigdb.com"]),
                                     (admin_b, account_b, ["*@bigdb.com", "*@*.bigdb.com"])):
        response = await api.client.patch(f"/api/v1/accounts/{account['id']}/policy",
                                          json={"allowed_email_patterns": patterns}, headers=admin.headers)
        assert response.status_code == 200, response.text

    on_a_subdomain = await admit(api, identity("ann", "ann@eng.bigdb.com"))
    at_the_domain = await admit(api, identity("bo", "bo@bigdb.com"))
    # The primary address matches nothing; the second verified one does.
    by_a_second_address = await admit(api, identity("cy", "cy@home.example", "cy@ops.bigdb.com"))

    assert (on_a_subdomain.how, on_a_subdomain.user.account_id) == ("allowed_email", account_a["id"])
    assert at_the_domain.user.account_id == account_b["id"]
    assert (by_a_second_address.user.account_id, by_a_second_address.user.email) == (account_a["id"],
                                                                                     "cy@ops.bigdb.com")
    with pytest.raises(signup.SignUpRefused, match="is not invited"):
        await admit(api, identity("dee", "dee@bigdb.com.evil.example"))


# --- warnings ----------------------------------------------------------------------------------


async def test_at_most_ten_warnings(api: Api, tenant: Tenant) -> None:
    ten = [3600 * (i + 1) for i in range(10)]
    assert (await patch(api, tenant, warning_seconds=ten)).json()["warning_seconds"] == sorted(ten, reverse=True)

    assert "10" in refusal(await patch(api, tenant, warning_seconds=[*ten, 60]), "warning_seconds")
    assert refusal(await patch(api, tenant, warning_seconds=list(range(60, 60 * 20_001, 60))), "warning_seconds")


async def test_warnings_closer_than_a_minute_are_refused_and_repeats_fold(api: Api, tenant: Tenant) -> None:
    message = refusal(await patch(api, tenant, warning_seconds=[3600, 120, 100]), "warning_seconds")
    assert "120 s and 100 s" in message and "60 s apart" in message

    folded = await patch(api, tenant, warning_seconds=[60, 3600, 60, 120])
    assert folded.json()["warning_seconds"] == [3600, 120, 60]


def test_the_policy_model_the_web_form_also_reads_refuses_the_same() -> None:
    # The policy page reads into this same AccountPolicyUpdate (tests/api/web/test_policy_pages.py).
    from zc_api.policies.schemas import AccountPolicyUpdate

    with pytest.raises(ValueError, match="would let everyone in"):
        AccountPolicyUpdate(allowed_email_patterns=["*"])
    with pytest.raises(ValueError, match="60 s apart"):
        AccountPolicyUpdate(warning_seconds=[90, 60])


# --- migration 0008 --------------------------------------------------------------------------


@pytest.fixture
async def database_at_0007(postgres_server_url: str) -> Any:
    name = f"zc_mig_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(postgres_server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = postgres_server_url.rsplit("/", 1)[0] + "/" + name
    try:
        await migrate(url, "0007")
        yield url
    finally:
        admin = await asyncpg.connect(postgres_server_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_migration_brings_stored_policies_within_the_bounds(database_at_0007: str) -> None:
    connection = await asyncpg.connect(database_at_0007)
    try:
        stuck = await connection.fetchval("INSERT INTO account (name) VALUES ('stuck') RETURNING id")
        fine = await connection.fetchval("INSERT INTO account (name) VALUES ('fine') RETURNING id")
        await connection.execute(
            "INSERT INTO account_policy (account_id, default_lease_seconds, max_lease_seconds, owner_tag, "
            "over_quota_grace_seconds, action_on_expiry, allowed_email_patterns, warning_seconds) "
            "VALUES ($1, 3600, 86400, 'owner', 3600, 'stop', $2, $3)",
            stuck, ["*", "*@BigDB.com", "dev-*@bigdb.com", *(f"x{i}@y.com" for i in range(150))],
            list(range(30, 30 * 1000, 30)),
        )
        await connection.execute(
            "INSERT INTO account_policy (account_id, default_lease_seconds, max_lease_seconds, owner_tag, "
            "over_quota_grace_seconds, action_on_expiry, allowed_email_patterns) "
            "VALUES ($1, 3600, 86400, 'owner', 3600, 'stop', $2)", fine, ["*@ok.com"]
        )
    finally:
        await connection.close()
    started = utcnow()

    await migrate(database_at_0007)

    connection = await asyncpg.connect(database_at_0007)
    try:
        rows = {r["account_id"]: r for r in await connection.fetch("SELECT * FROM account_policy")}
        audit = await connection.fetch("SELECT * FROM audit_event ORDER BY id")
        index = await connection.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_account_policy_email_patterns'"
        )
    finally:
        await connection.close()
    patterns = list(rows[stuck]["allowed_email_patterns"])
    assert patterns[0] == "*@bigdb.com" and len(patterns) == 100 and "*" not in patterns
    warnings = list(rows[stuck]["warning_seconds"])
    assert len(warnings) == 10 and all(a - b >= 60 for a, b in zip(warnings, warnings[1:]))
    assert list(rows[fine]["allowed_email_patterns"]) == ["*@ok.com"]
    [event] = audit  # the account whose policy changed, only
    assert (event["account_id"], event["action"], event["actor"]) == (stuck, "account_policy.updated",
                                                                       "system:migration")
    assert event["at"] >= started.replace(microsecond=0) and "bounds" in event["reason"]
    assert "USING gin" in index
