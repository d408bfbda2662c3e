"""The policy page: every field of the account policy, saved through the policy service;
what is wrong is said next to its field and what was typed is kept."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import TYPE_CHECKING

from tests.api.factories import Api, Tenant
from tests.api.records import audit_events

if TYPE_CHECKING:
    from tests.api.web.pages_fixtures import PageClientFactory

pytest_plugins = ["tests.api.web.pages_fixtures"]

GOOD = {
    "default_lease": "2", "default_lease_unit": "days", "max_lease": "10", "max_lease_unit": "days",
    "owner_tag": "Owner", "allowed_email_patterns": "*@bigdb.com\n*@contractors.bigdb.com",
    "max_instances_per_user": "5", "over_quota_grace": "30", "over_quota_grace_unit": "minutes",
    "action_on_expiry": "terminate", "warning_times": "1d, 2h, 15m",
    "blast_radius_percent": "25", "blast_radius_per_hour": "40",
}


async def test_the_page_shows_the_current_policy(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    admin = await page_client(tenant.admin)

    shown = await admin.get("/policy")

    assert shown.status_code == 200
    assert 'id="f-default_lease" name="default_lease" type="text" inputmode="numeric" size="6" value="3"' in shown.text
    assert '<option value="days" selected>' in shown.text
    assert 'value="14"' in shown.text  # the maximum lease, in days
    assert 'value="1d, 1h"' in shown.text  # warnings
    assert 'value="stop" checked' in shown.text and 'value="50"' in shown.text


async def test_saving_changes_every_field_and_redirects(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    admin = await page_client(tenant.admin)

    done = await admin.post("/policy", GOOD)

    assert done.status_code == 303 and done.headers["location"] == "/policy?notice=saved"
    policy = (await api.client.get(f"/api/v1/accounts/{tenant.account_id}/policy", headers=tenant.admin.headers)).json()
    assert policy["default_lease_seconds"] == 2 * 86400 and policy["max_lease_seconds"] == 10 * 86400
    assert policy["owner_tag"] == "Owner"
    assert policy["allowed_email_patterns"] == ["*@bigdb.com", "*@contractors.bigdb.com"]
    assert policy["max_instances_per_user"] == 5 and policy["over_quota_grace_seconds"] == 1800
    assert policy["action_on_expiry"] == "terminate" and policy["warning_seconds"] == [86400, 7200, 900]
    assert (policy["blast_radius_percent"], policy["blast_radius_per_hour"]) == (25, 40)
    [event] = await audit_events(api, action="account_policy.updated")
    assert event.actor == f"user:{tenant.admin.user_id}"
    shown = await admin.get(done.headers["location"])
    assert "The policy was saved" in shown.text and 'value="1d, 2h, 15m"' in shown.text


async def test_an_empty_quota_lifts_it(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    admin = await page_client(tenant.admin)
    await admin.post("/policy", GOOD)

    done = await admin.post("/policy", {**GOOD, "max_instances_per_user": ""})

    assert done.status_code == 303
    policy = (await api.client.get(f"/api/v1/accounts/{tenant.account_id}/policy", headers=tenant.admin.headers)).json()
    assert policy["max_instances_per_user"] is None


async def test_wrong_fields_are_marked_and_what_was_typed_is_kept(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    refused = await admin.post("/policy", {
        **GOOD, "default_lease": "two", "warning_times": "1d, soon", "blast_radius_percent": "150",
        "allowed_email_patterns": "*@bigdb.com\nnot a pattern",
    })

    assert refused.status_code == 422
    assert "The policy was not saved" in refused.text
    assert 'id="e-default_lease"' in refused.text and "whole number" in refused.text
    assert 'id="e-warning_times"' in refused.text and "&#39;soon&#39; is not a duration" in refused.text
    assert 'id="e-blast_radius_percent"' in refused.text and "at most 100" in refused.text
    assert 'value="two"' in refused.text and 'value="1d, soon"' in refused.text and "not a pattern" in refused.text
    policy = (await api.client.get(f"/api/v1/accounts/{tenant.account_id}/policy", headers=tenant.admin.headers)).json()
    assert policy["default_lease_seconds"] == 3 * 86400


async def test_an_action_on_expiry_other_than_stop_or_terminate_is_refused(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    for hostile in ("delete", "TERMINATE", "x" * 10_000):
        refused = await admin.post("/policy", {**GOOD, "action_on_expiry": hostile})

        assert refused.status_code == 422
        assert 'id="e-action_on_expiry"' in refused.text and "Choose stop or terminate." in refused.text
    policy = (await api.client.get(f"/api/v1/accounts/{tenant.account_id}/policy", headers=tenant.admin.headers)).json()
    assert policy["action_on_expiry"] == "stop"


async def test_a_pattern_with_spaces_and_a_default_above_the_max_are_refused_by_the_policy_rules(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    bad_pattern = await admin.post("/policy", {**GOOD, "allowed_email_patterns": "not a pattern"})
    too_long = await admin.post("/policy", {**GOOD, "default_lease": "20"})

    assert bad_pattern.status_code == 422 and 'id="e-allowed_email_patterns"' in bad_pattern.text
    assert too_long.status_code == 422 and 'id="e-default_lease"' in too_long.text
    assert "cannot be longer than the maximum lease" in too_long.text and 'value="20"' in too_long.text


async def test_developers_may_not_see_or_change_the_policy(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    dev = await page_client(tenant.dev)

    assert (await dev.get("/policy")).status_code == 403
    refused = await dev.post("/policy", GOOD)

    assert refused.status_code == 403 and "only an admin" in refused.text
    policy = (await api.client.get(f"/api/v1/accounts/{tenant.account_id}/policy", headers=tenant.admin.headers)).json()
    assert policy["action_on_expiry"] == "stop"


class _FormFields(HTMLParser):
    """What a browser would post from the page's form to ``action``: each field's current value."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.values: dict[str, str] = {}
        self._in_form = self._done = False
        self._select: str | None = None
        self._textarea: str | None = None
        self._first_option: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("action") == self.action and not self._done:
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and a.get("name") and (a.get("type") != "radio" or "checked" in a):
            self.values[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select is not None:
            self._first_option.setdefault(self._select, a.get("value", ""))
            if "selected" in a:
                self.values[self._select] = a.get("value", "")
        elif tag == "textarea":
            self._textarea = a["name"]
            self.values[a["name"]] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self.values[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select" and self._select is not None:
            self.values.setdefault(self._select, self._first_option.get(self._select, ""))
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form" and self._in_form:
            self._in_form, self._done = False, True


def posted_as_shown(page: str, action: str) -> dict[str, str]:
    parser = _FormFields(action)
    parser.feed(page)
    return parser.values


async def test_saving_the_form_unchanged_changes_nothing_and_records_nothing(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    """Every field round-trips, even values the form's units cannot say in whole minutes
    (set through the API): saving the page as shown leaves the policy as it was."""
    await api.client.patch(f"/api/v1/accounts/{tenant.account_id}/policy", headers=tenant.admin.headers, json={
        "default_lease_seconds": 5400, "max_lease_seconds": 200_000, "owner_tag": "Owner",
        "allowed_email_patterns": ["*@bigdb.com", "ops@contractor.io"], "max_instances_per_user": 0,
        "over_quota_grace_seconds": 90, "action_on_expiry": "terminate", "warning_seconds": [7200, 45],
        "blast_radius_percent": 0, "blast_radius_per_hour": 7,
    })
    before = (await api.client.get(f"/api/v1/accounts/{tenant.account_id}/policy", headers=tenant.admin.headers)).json()
    admin = await page_client(tenant.admin)
    shown = posted_as_shown((await admin.get("/policy")).text, "/policy")

    done = await admin.post("/policy", shown)

    assert done.status_code == 303, done.text
    after = (await api.client.get(f"/api/v1/accounts/{tenant.account_id}/policy", headers=tenant.admin.headers)).json()
    assert after == before
    assert len(await audit_events(api, action="account_policy.updated")) == 1  # the PATCH above, nothing more


async def test_a_persons_limits_round_trip_too(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    put = await api.client.put(f"/api/v1/users/{tenant.dev.user_id}/policy", headers=tenant.admin.headers,
                               json={"default_lease_seconds": 150, "max_lease_seconds": 7200, "max_instances": 2})
    assert put.status_code == 200, put.text
    admin = await page_client(tenant.admin)
    shown = posted_as_shown((await admin.get(f"/users/{tenant.dev.user_id}")).text,
                            f"/users/{tenant.dev.user_id}/policy")

    done = await admin.post(f"/users/{tenant.dev.user_id}/policy", shown)

    assert done.status_code == 303, done.text
    after = (await api.client.get(f"/api/v1/users/{tenant.dev.user_id}/policy", headers=tenant.admin.headers)).json()
    assert after == put.json()
