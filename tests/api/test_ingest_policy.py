"""The lease policy rules ingestion applies (zc_api.leases.policy): pure functions, no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from zc_api.leases.policy import (
    Candidate,
    effective_policy,
    email_allowed,
    lease_terms,
    owner_tag_value,
    resolve_owner,
    warn_at,
)
from zc_api.models import AccountPolicy, UserPolicy

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
DEV = Candidate(7, "dev@bigdb.com")
ADMIN = Candidate(1, "admin@bigdb.com")


def test_owner_tag_prefers_the_exact_key_and_skips_blank_values() -> None:
    assert owner_tag_value({"OWNER": "a@x.com", "owner": "B@x.com "}, "owner") == "b@x.com"
    assert owner_tag_value({"Owner": "  ", "OWNER": "c@x.com"}, "owner") == "c@x.com"
    assert owner_tag_value({"Name": "web"}, "owner") is None


@pytest.mark.parametrize(
    ("email", "patterns", "allowed"),
    [
        ("dev@bigdb.com", [], True),
        ("Dev@BigDB.com", ["*@bigdb.com"], True),
        ("dev@bigdb.com.evil.org", ["*@bigdb.com"], False),
        ("ops@corp.bigdb.com", ["*@bigdb.com", "*@*.BIGDB.com"], True),
    ],
)
def test_email_patterns_are_case_insensitive_globs(email: str, patterns: list[str], allowed: bool) -> None:
    assert email_allowed(email, patterns) is allowed


def test_without_an_admin_the_owner_is_empty_and_the_reason_says_so() -> None:
    owner = resolve_owner({}, AccountPolicy(account_id=1), users={}, first_admin=None)
    assert (owner.user_id, owner.email, owner.reason) == (None, "", "no owner tag; the account has no admin")


def test_a_known_allowed_user_named_by_the_tag_owns_it() -> None:
    policy = AccountPolicy(account_id=1, allowed_email_patterns=["*@bigdb.com"])
    owner = resolve_owner({"owner": "DEV@bigdb.com"}, policy, users={DEV.email: DEV}, first_admin=ADMIN)
    assert (owner.user_id, owner.from_tag) == (DEV.user_id, True)


def test_user_overrides_replace_the_accounts_values_only_where_set() -> None:
    account = AccountPolicy(account_id=1, default_lease_seconds=3600, max_lease_seconds=7200, max_instances_per_user=3)
    effective = effective_policy(account, UserPolicy(user_id=7, max_instances=10))
    assert (effective.default_lease_seconds, effective.max_lease_seconds, effective.max_instances) == (3600, 7200, 10)


def test_a_default_longer_than_the_maximum_is_cut_to_the_maximum() -> None:
    account = AccountPolicy(account_id=1, default_lease_seconds=3600, max_lease_seconds=7200)
    effective = effective_policy(account, UserPolicy(user_id=7, default_lease_seconds=99_999))
    assert lease_terms(effective, now=NOW, live_leases=0).expires_at == NOW + timedelta(seconds=7200)


def test_warnings_are_only_those_still_ahead_earliest_first() -> None:
    expires = NOW + timedelta(hours=2)
    assert warn_at(expires, [3600, 86400, 3600, 600], now=NOW) == [
        expires - timedelta(hours=1), expires - timedelta(minutes=10),
    ]
