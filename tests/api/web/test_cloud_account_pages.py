"""The cloud accounts pages: onboarding shows the generated external ID and a template with
it filled in, verify reports each check, the observe/enforce switch, removal — admins
only, and only their own tenant's cloud accounts."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import yaml

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease, random_upstream
from tests.api.records import audit_events, lease_row
from zc_api.database import transaction
from zc_api.models import AuditEvent

if TYPE_CHECKING:
    from tests.api.web.pages_fixtures import PageClientFactory

pytest_plugins = ["tests.api.web.pages_fixtures"]


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads a CloudFormation template: its short-form tags (!Ref, !Sub…) as plain values."""


_CloudFormationLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode) else loader.construct_mapping(node)
)


def parse_template(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(text, Loader=_CloudFormationLoader)  # noqa: S506 - a safe loader
    return loaded


async def test_onboarding_creates_the_cloud_account_and_shows_the_generated_external_id(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)
    upstream = random_upstream()

    form = await admin.get("/cloud-accounts/new")
    done = await admin.post("/cloud-accounts/new", {
        "name": "prod", "upstream_account_id": upstream, "assume_role_arn": "", "regions": "us-east-1, eu-west-1",
    })

    assert form.status_code == 200 and 'name="upstream_account_id"' in form.text
    assert done.status_code == 303
    location = done.headers["location"]
    assert re.fullmatch(r"/cloud-accounts/\d+\?notice=created", location)
    shown = await admin.get(location)
    cloud = (await api.client.get(f"/api/v1/cloudaccounts/{location.split('/')[2].split('?')[0]}",
                                  headers=tenant.admin.headers)).json()
    assert cloud["assume_role_arn"] == f"arn:aws:iam::{upstream}:role/ZeroCloud"
    assert cloud["regions"] == ["us-east-1", "eu-west-1"] and cloud["mode"] == "observe"
    assert cloud["external_id"].startswith("zc-")
    assert f'<p class="secret" id="external-id">{cloud["external_id"]}</p>' in shown.text
    assert "The AWS account is registered, in observe mode" in shown.text
    assert f'href="/cloud-accounts/{cloud["id"]}/template.yaml"' in shown.text
    assert "Switch to enforce" in shown.text


async def test_the_form_keeps_what_was_typed_and_says_what_is_wrong(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    refused = await admin.post("/cloud-accounts/new", {
        "name": "prod", "upstream_account_id": "12345", "assume_role_arn": "arn:aws:iam::123:user/x",
        "regions": "us-east-1, moon-1",
    })

    assert refused.status_code == 422
    assert 'value="12345"' in refused.text and 'value="us-east-1, moon-1"' in refused.text
    assert 'id="e-upstream_account_id"' in refused.text and 'id="e-assume_role_arn"' in refused.text
    assert 'id="e-regions"' in refused.text and "moon-1" in refused.text
    assert 'aria-invalid="true"' in refused.text


async def test_a_role_of_another_aws_account_or_one_onboarded_twice_is_refused_next_to_the_field(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)
    existing = await make_cloud_account(api, tenant)
    upstream = random_upstream()

    mismatch = await admin.post("/cloud-accounts/new", {
        "name": "x", "upstream_account_id": upstream, "assume_role_arn": f"arn:aws:iam::{random_upstream()}:role/Z",
        "regions": "us-east-1",
    })
    twice = await admin.post("/cloud-accounts/new", {
        "name": "again", "upstream_account_id": existing["upstream_account_id"], "regions": "us-east-1",
    })

    assert mismatch.status_code == 422 and 'id="e-assume_role_arn"' in mismatch.text
    assert f"not to {upstream}" in mismatch.text
    assert twice.status_code == 409 and "Already onboarded in this account" in twice.text and 'value="again"' in twice.text


async def test_the_template_comes_with_this_cloud_accounts_values(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant, regions=["eu-west-1", "us-east-1"])
    admin = await page_client(tenant.admin)

    response = await admin.get(f"/cloud-accounts/{cloud['id']}/template.yaml")

    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["content-type"].startswith("application/yaml")
    parameters = parse_template(response.text)["Parameters"]
    assert parameters["ExternalId"]["Default"] == cloud["external_id"]
    assert parameters["RoleName"]["Default"] == "ZeroCloud"
    assert parameters["RoleRegion"]["Default"] == "eu-west-1"
    assert "Default" not in parameters["ZeroCloudAccountId"]


async def test_verify_reports_each_check(api: Api, moto: str, tenant: Tenant, page_client: PageClientFactory) -> None:
    cloud = await make_cloud_account(api, tenant, regions=["us-east-1", "xx-nowhere-1"])
    admin = await page_client(tenant.admin)

    report = await admin.post(f"/cloud-accounts/{cloud['id']}/verify")

    assert report.status_code == 200
    assert "Some checks failed" in report.text
    assert "Works: assume_role" in report.text and "Works: describe_instances:us-east-1" in report.text
    assert "Failed: describe_instances:xx-nowhere-1" in report.text
    [event] = await audit_events(api, action="cloud_account.verified", subject_id=cloud["id"])
    assert event.details["ok"] is False
    listed = await admin.get("/cloud-accounts")
    assert "Verification failed: describe_instances:xx-nowhere-1" in listed.text


async def test_the_mode_switch_explains_and_switches(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    cloud = await make_cloud_account(api, tenant)
    admin = await page_client(tenant.admin)

    shown = await admin.get(f"/cloud-accounts/{cloud['id']}")
    done = await admin.post(f"/cloud-accounts/{cloud['id']}/mode", {"mode": "enforce"})

    assert "stops the instance" in shown.text and "more than 50%" in shown.text
    assert done.status_code == 303 and done.headers["location"] == f"/cloud-accounts/{cloud['id']}?notice=enforce"
    after = await admin.get(done.headers["location"])
    assert "Enforce mode is on" in after.text and "Switch back to observe" in after.text
    mode = (await api.client.get(f"/api/v1/cloudaccounts/{cloud['id']}", headers=tenant.admin.headers)).json()["mode"]
    assert mode == "enforce"
    [event] = await audit_events(api, action="cloud_account.updated", subject_id=cloud["id"])
    assert event.details["changes"] == {"mode": {"from": "observe", "to": "enforce"}}


async def test_a_developer_gets_403_and_another_tenants_cloud_account_is_404(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    theirs = await make_cloud_account(api, other_tenant)
    mine = await make_cloud_account(api, tenant)
    dev = await page_client(tenant.dev)
    admin = await page_client(tenant.admin)

    for path in ("/cloud-accounts", "/cloud-accounts/new", f"/cloud-accounts/{mine['id']}",
                 f"/cloud-accounts/{mine['id']}/template.yaml"):
        assert (await dev.get(path)).status_code == 403, path
    assert (await dev.post(f"/cloud-accounts/{mine['id']}/mode", {"mode": "enforce"})).status_code == 403
    for path in (f"/cloud-accounts/{theirs['id']}", f"/cloud-accounts/{theirs['id']}/template.yaml"):
        response = await admin.get(path)
        assert response.status_code == 404 and "not found" in response.text
    assert (await admin.post(f"/cloud-accounts/{theirs['id']}/mode", {"mode": "enforce"})).status_code == 404
    assert (await admin.post(f"/cloud-accounts/{theirs['id']}/verify")).status_code == 404
    listed = await admin.get("/cloud-accounts")
    assert mine["name"] in listed.text and theirs["name"] not in listed.text


async def test_each_cloud_account_shows_its_own_newest_verification(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    """However often another one was verified since (the newest 500 events of the whole
    account used to be all that was read)."""
    first, busy = await make_cloud_account(api, tenant), await make_cloud_account(api, tenant)
    now = datetime.now(timezone.utc)

    def verified(cloud: dict[str, Any], at: datetime, ok: bool) -> AuditEvent:
        return AuditEvent(account_id=tenant.account_id, actor="user:1", action="cloud_account.verified",
                          subject_type="cloud_account", subject_id=cloud["id"], at=at,
                          details={"ok": ok, "failed": [] if ok else ["assume_role"]})

    async with transaction(api.sessions) as session:
        session.add(verified(first, now - timedelta(days=2), False))
        session.add(verified(first, now - timedelta(days=1), True))
        session.add_all(verified(busy, now - timedelta(minutes=n), False) for n in range(600))
    admin = await page_client(tenant.admin)

    listed = await admin.get("/cloud-accounts")
    shown = await admin.get(f"/cloud-accounts/{first['id']}")

    assert f"Verified: all checks passed ({(now - timedelta(days=1)):%Y-%m-%d %H:%M} UTC)" in listed.text
    assert "Verification failed: assume_role" in listed.text
    assert "all checks passed" in shown.text


async def test_removing_a_cloud_account_needs_the_box_ticked_and_releases_its_live_leases(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud, kept = await make_cloud_account(api, tenant), await make_cloud_account(api, tenant)
    _, live = await make_lease(api, cloud, tenant.dev)
    _, also_live = await make_lease(api, cloud, tenant.admin)
    _, ended = await make_lease(api, cloud, tenant.dev, status="released")
    _, elsewhere = await make_lease(api, kept, tenant.dev)
    admin = await page_client(tenant.admin)
    shown = await admin.get(f"/cloud-accounts/{cloud['id']}")
    assert f'action="/cloud-accounts/{cloud["id"]}/remove"' in shown.text and "Remove this cloud account" in shown.text

    unticked = await admin.post(f"/cloud-accounts/{cloud['id']}/remove", {})
    assert unticked.status_code == 422 and "tick the box" in unticked.text
    assert (await lease_row(api, live)).status == "active"
    assert (await admin.get(f"/cloud-accounts/{cloud['id']}")).status_code == 200
    assert await audit_events(api, action="cloud_account.removed") == []

    done = await admin.post(f"/cloud-accounts/{cloud['id']}/remove", {"confirm": "yes"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/cloud-accounts?notice=removed&subject={cloud['id']}"
    listed = await admin.get(done.headers["location"])
    assert listed.status_code == 200
    assert f"The cloud account {cloud['name']} was removed: 2 live leases were released" in listed.text
    assert "The audit trail is kept" in listed.text
    assert f"AWS account {cloud['upstream_account_id']} can be onboarded again" in listed.text
    assert f'href="/cloud-accounts/{cloud["id"]}"' not in listed.text and kept["name"] in listed.text
    gone = await admin.get(f"/cloud-accounts/{cloud['id']}")
    assert gone.status_code == 404 and "not found" in gone.text
    assert (await admin.post(f"/cloud-accounts/{cloud['id']}/remove", {"confirm": "yes"})).status_code == 404
    assert (await lease_row(api, live)).status == "released"
    assert (await lease_row(api, also_live)).status == "released"
    assert (await lease_row(api, ended)).status == "released"
    assert (await lease_row(api, elsewhere)).status == "active"
    [event] = await audit_events(api, action="cloud_account.removed", subject_id=cloud["id"])
    assert event.details["leases_released"] == 2 and event.actor == f"user:{tenant.admin.user_id}"

    again = await admin.post("/cloud-accounts/new", {
        "name": "back", "upstream_account_id": cloud["upstream_account_id"], "regions": "us-east-1",
    })
    assert again.status_code == 303


async def test_only_the_admin_of_the_cloud_accounts_tenant_may_remove_it(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    dev = await page_client(tenant.dev)
    stranger = await page_client(other_tenant.admin)

    refused = await dev.post(f"/cloud-accounts/{cloud['id']}/remove", {"confirm": "yes"})
    hidden = await stranger.post(f"/cloud-accounts/{cloud['id']}/remove", {"confirm": "yes"})

    assert refused.status_code == 403
    assert hidden.status_code == 404 and "not found" in hidden.text
    assert (await lease_row(api, lease_id)).status == "active"
    assert await audit_events(api, action="cloud_account.removed", subject_id=cloud["id"]) == []
    still = await api.client.get(f"/api/v1/cloudaccounts/{cloud['id']}", headers=tenant.admin.headers)
    assert still.status_code == 200


async def test_a_cloud_account_page_shows_none_of_another_tenants_audit_events_for_the_same_subject_id(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    """The page reads verifications and removals through the audit service, whose tenant
    filter is the REST audit route's: another account's events naming this cloud account's
    id (newer, and saying otherwise) are never shown."""
    cloud = await make_cloud_account(api, tenant)
    now = datetime.now(timezone.utc)
    async with transaction(api.sessions) as session:
        session.add(AuditEvent(account_id=tenant.account_id, actor="user:1", action="cloud_account.verified",
                               subject_type="cloud_account", subject_id=cloud["id"], at=now - timedelta(days=1),
                               details={"ok": False, "failed": ["assume_role"]}))
        session.add(AuditEvent(account_id=other_tenant.account_id, actor="user:2", action="cloud_account.verified",
                               subject_type="cloud_account", subject_id=cloud["id"], at=now,
                               details={"ok": True, "failed": []}))
        session.add(AuditEvent(account_id=other_tenant.account_id, actor="user:2", action="cloud_account.removed",
                               subject_type="cloud_account", subject_id=cloud["id"], at=now,
                               details={"name": "their-secret-name", "leases_released": 7,
                                        "upstream_account_id": "999999999999"}))
    admin = await page_client(tenant.admin)

    listed = await admin.get("/cloud-accounts")
    shown = await admin.get(f"/cloud-accounts/{cloud['id']}")
    notice = await admin.get(f"/cloud-accounts?notice=removed&subject={cloud['id']}")

    assert "Verification failed: assume_role" in listed.text and "all checks passed" not in listed.text
    assert "failed (assume_role)" in shown.text and "all checks passed" not in shown.text
    assert notice.status_code == 200
    assert "their-secret-name" not in notice.text and "999999999999" not in notice.text
    assert "7 live leases" not in notice.text
    assert "The cloud account was removed: its live leases were released" in notice.text
