"""The people pages: the account's users with role, GitHub login and whether their address
is confirmed; changing a role; a person's own limits; invitations — admins only, own tenant only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlmodel import col

from tests.api.factories import Api, Tenant
from tests.api.records import audit_events
from zc_api.database import transaction
from zc_api.models import Invitation, UserPolicy

if TYPE_CHECKING:
    from tests.api.web.pages_fixtures import PageClientFactory

pytest_plugins = ["tests.api.web.pages_fixtures"]


async def test_the_list_shows_the_accounts_people_only(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    shown = await admin.get("/users")

    assert shown.status_code == 200
    assert tenant.admin.email in shown.text and tenant.dev.email in shown.text
    assert other_tenant.admin.email not in shown.text and other_tenant.dev.email not in shown.text
    assert "Email confirmed" in shown.text and "not signed in yet" in shown.text
    assert 'action="/users/invitations"' in shown.text


async def test_changing_a_role_redirects_with_the_outcome(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    done = await admin.post(f"/users/{tenant.dev.user_id}/role", {"role": "admin"})

    assert done.status_code == 303
    shown = await admin.get(done.headers["location"])
    assert f"{tenant.dev.email} is now an admin." in shown.text
    [event] = await audit_events(api, action="user.updated", subject_id=tenant.dev.user_id)
    assert event.details["changes"] == {"role": {"from": "dev", "to": "admin"}}


async def test_the_only_admin_cannot_step_down(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    admin = await page_client(tenant.admin)

    refused = await admin.post(f"/users/{tenant.admin.user_id}/role", {"role": "dev"})

    assert refused.status_code == 409 and "only admin" in refused.text
    assert await audit_events(api, action="user.updated") == []


async def test_inviting_lists_the_invitation_and_revoking_ends_it(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    done = await admin.post("/users/invitations", {"email": "New.Person@BigDB.com", "role": "dev"})

    assert done.status_code == 303
    shown = await admin.get(done.headers["location"].split("#")[0])
    assert "new.person@bigdb.com is invited as a developer" in shown.text
    async with transaction(api.sessions) as session:
        [invitation] = (await session.scalars(select(Invitation))).all()
    assert invitation.account_id == tenant.account_id and invitation.invited_by_user_id == tenant.admin.user_id
    assert f'action="/users/invitations/{invitation.id}/revoke"' in shown.text and "pending" in shown.text

    again = await admin.post("/users/invitations", {"email": "new.person@bigdb.com", "role": "dev"})
    assert again.status_code == 422 and "already has a pending invitation" in again.text
    assert 'value="new.person@bigdb.com"' in again.text

    revoked = await admin.post(f"/users/invitations/{invitation.id}/revoke")
    assert revoked.status_code == 303
    after = await admin.get(revoked.headers["location"].split("#")[0])
    assert "invitation of new.person@bigdb.com was revoked" in after.text and "revoked" in after.text


async def test_an_invitation_needs_a_real_address(api: Api, tenant: Tenant, page_client: PageClientFactory) -> None:
    admin = await page_client(tenant.admin)

    refused = await admin.post("/users/invitations", {"email": "not-an-address", "role": "admin"})

    assert refused.status_code == 422 and 'id="e-email"' in refused.text and 'value="not-an-address"' in refused.text
    assert '<option value="admin" selected>' in refused.text


async def test_a_persons_own_limits_are_saved_and_an_empty_field_means_as_the_account(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    shown = await admin.get(f"/users/{tenant.dev.user_id}")
    done = await admin.post(f"/users/{tenant.dev.user_id}/policy", {
        "default_lease": "", "default_lease_unit": "days", "max_lease": "30", "max_lease_unit": "days",
        "max_instances": "2",
    })

    assert shown.status_code == 200 and "default lease 3 days, maximum lease 14 days" in shown.text
    assert done.status_code == 303
    async with transaction(api.sessions) as session:
        row = await session.get(UserPolicy, tenant.dev.user_id)
    assert row is not None and (row.default_lease_seconds, row.max_lease_seconds, row.max_instances) == (
        None, 30 * 86400, 2)
    after = await admin.get(done.headers["location"])
    assert "maximum lease 30 days, instances 2" in after.text


async def test_limits_that_contradict_are_refused_next_to_the_field(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    refused = await admin.post(f"/users/{tenant.dev.user_id}/policy", {
        "default_lease": "20", "default_lease_unit": "days", "max_lease": "", "max_lease_unit": "days",
        "max_instances": "-1",
    })

    assert refused.status_code == 422 and 'id="e-max_instances"' in refused.text
    refused = await admin.post(f"/users/{tenant.dev.user_id}/policy", {
        "default_lease": "20", "default_lease_unit": "days", "max_lease": "", "max_lease_unit": "days",
        "max_instances": "",
    })
    assert refused.status_code == 422 and 'id="e-default_lease"' in refused.text
    assert "cannot be longer than the maximum lease" in refused.text and 'value="20"' in refused.text
    async with transaction(api.sessions) as session:
        assert (await session.scalars(select(UserPolicy).where(col(UserPolicy.user_id) == tenant.dev.user_id))).first() is None


async def test_developers_get_403_and_other_tenants_people_are_not_found(
    api: Api, tenant: Tenant, other_tenant: Tenant, page_client: PageClientFactory
) -> None:
    dev = await page_client(tenant.dev)
    admin = await page_client(tenant.admin)

    assert (await dev.get("/users")).status_code == 403
    assert (await dev.get(f"/users/{tenant.dev.user_id}")).status_code == 403
    assert (await dev.post(f"/users/{tenant.dev.user_id}/role", {"role": "admin"})).status_code == 403
    assert (await dev.post("/users/invitations", {"email": "x@bigdb.com", "role": "admin"})).status_code == 403
    assert (await admin.get(f"/users/{other_tenant.dev.user_id}")).status_code == 404
    assert (await admin.post(f"/users/{other_tenant.dev.user_id}/role", {"role": "admin"})).status_code == 404
    assert (await admin.post(f"/users/{other_tenant.dev.user_id}/policy", {"max_instances": "1"})).status_code == 404


async def test_removing_a_person_needs_the_box_ticked_and_hands_their_leases_to_the_admin(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    from tests.api.factories import make_cloud_account, make_lease
    from tests.api.records import lease_row

    cloud = await make_cloud_account(api, tenant)
    _, lease_id = await make_lease(api, cloud, tenant.dev)
    admin = await page_client(tenant.admin)
    person = await admin.get(f"/users/{tenant.dev.user_id}")
    assert f'action="/users/{tenant.dev.user_id}/remove"' in person.text

    unticked = await admin.post(f"/users/{tenant.dev.user_id}/remove", {})
    assert unticked.status_code == 422 and "tick the box" in unticked.text
    assert (await lease_row(api, lease_id)).owner_email == tenant.dev.email

    done = await admin.post(f"/users/{tenant.dev.user_id}/remove", {"confirm": "yes"})
    assert done.status_code == 303
    shown = await admin.get(done.headers["location"])
    assert "The person was removed" in shown.text and tenant.dev.email not in shown.text
    assert (await lease_row(api, lease_id)).owner_email == tenant.admin.email
    assert (await admin.get(f"/users/{tenant.dev.user_id}")).status_code == 404


async def test_the_only_admin_cannot_remove_themself_on_the_page(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    admin = await page_client(tenant.admin)

    refused = await admin.post(f"/users/{tenant.admin.user_id}/remove", {"confirm": "yes"})

    assert refused.status_code == 409 and "only admin" in refused.text
    assert await audit_events(api, action="user.removed") == []


async def test_a_role_that_is_not_one_is_refused_by_the_apis_schemas(
    api: Api, tenant: Tenant, page_client: PageClientFactory
) -> None:
    """The role change and the invitation read the form with UserUpdate and InvitationCreate
    (``Role``): anything else is the page's "choose the role", and nothing changes."""
    admin = await page_client(tenant.admin)

    changed = await admin.post(f"/users/{tenant.dev.user_id}/role", {"role": "owner"})
    invited = await admin.post("/users/invitations", {"email": "Someone@BigDB.com", "role": "owner"})
    both = await admin.post("/users/invitations", {"email": "not-an-address", "role": ""})

    assert changed.status_code == 422 and "Choose the role: developer or admin." in changed.text
    assert invited.status_code == 422 and 'id="e-role"' in invited.text and "Choose the role" in invited.text
    assert 'id="e-email"' not in invited.text
    assert both.status_code == 422 and 'id="e-role"' in both.text
    assert "Email is not an email address (name@example.com)." in both.text
    assert await audit_events(api, action="user.updated") == []
    async with transaction(api.sessions) as session:
        assert (await session.scalars(select(Invitation))).all() == []
