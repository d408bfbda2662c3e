"""Users: admins add and change them within their own account; developers cannot."""

from __future__ import annotations

from zc_common.messages import Role

from tests.api.factories import Api, Tenant, make_user_token
from zc_api.auth.principal import Principal
from zc_api.database import transaction
from zc_api.users import service as users


def users_url(tenant: Tenant) -> str:
    return f"/api/v1/accounts/{tenant.account_id}/users"


async def test_admin_adds_a_developer_with_a_lower_cased_email(api: Api, tenant: Tenant) -> None:
    response = await api.client.post(
        users_url(tenant), json={"email": "Alice@BigDB.com", "github_login": "alice"}, headers=tenant.admin.headers
    )

    assert response.status_code == 201, response.text
    user = response.json()
    assert user["email"] == "alice@bigdb.com"
    assert user["role"] == "dev"
    assert user["account_id"] == tenant.account_id


async def test_same_email_twice_in_an_account_is_a_conflict(api: Api, tenant: Tenant) -> None:
    first = await api.client.post(users_url(tenant), json={"email": "bob@bigdb.com"}, headers=tenant.admin.headers)
    again = await api.client.post(users_url(tenant), json={"email": "BOB@bigdb.com"}, headers=tenant.admin.headers)

    assert first.status_code == 201
    assert again.status_code == 409
    assert again.json()["field"] == "email"


async def test_same_email_in_two_accounts_is_fine(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    body = {"email": "consultant@example.com"}

    mine = await api.client.post(users_url(tenant), json=body, headers=tenant.admin.headers)
    theirs = await api.client.post(users_url(other_tenant), json=body, headers=other_tenant.admin.headers)

    assert (mine.status_code, theirs.status_code) == (201, 201)


async def test_bad_email_is_422_naming_the_field(api: Api, tenant: Tenant) -> None:
    response = await api.client.post(users_url(tenant), json={"email": "not-an-email"}, headers=tenant.admin.headers)

    assert response.status_code == 422
    assert response.json()["field"] == "email"


async def test_developer_cannot_add_users(api: Api, tenant: Tenant) -> None:
    response = await api.client.post(
        users_url(tenant), json={"email": "mallory@bigdb.com", "role": "admin"}, headers=tenant.dev.headers
    )

    assert response.status_code == 403
    listed = (await api.client.get(users_url(tenant), headers=tenant.admin.headers)).json()
    assert "mallory@bigdb.com" not in [u["email"] for u in listed["data"]]


async def test_developer_cannot_promote_themself(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        f"/api/v1/users/{tenant.dev.user_id}", json={"role": "admin"}, headers=tenant.dev.headers
    )

    assert response.status_code == 403
    me = (await api.client.get("/api/v1/users/me", headers=tenant.dev.headers)).json()
    assert me["role"] == "dev"


async def test_admin_promotes_a_developer(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        f"/api/v1/users/{tenant.dev.user_id}", json={"role": "admin"}, headers=tenant.admin.headers
    )

    assert response.status_code == 200
    assert response.json()["role"] == "admin"


async def test_the_only_admin_cannot_be_demoted(api: Api, tenant: Tenant) -> None:
    response = await api.client.patch(
        f"/api/v1/users/{tenant.admin.user_id}", json={"role": "dev"}, headers=tenant.admin.headers
    )

    assert response.status_code == 409
    assert response.json()["field"] == "role"


async def test_github_login_belongs_to_one_user(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    await api.client.patch(
        f"/api/v1/users/{tenant.dev.user_id}", json={"github_login": "octocat"}, headers=tenant.admin.headers
    )

    response = await api.client.patch(
        f"/api/v1/users/{other_tenant.dev.user_id}", json={"github_login": "octocat"},
        headers=other_tenant.admin.headers,
    )

    assert response.status_code == 409
    assert response.json()["field"] == "github_login"


async def test_another_tenants_users_are_not_found(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    theirs = f"/api/v1/users/{other_tenant.dev.user_id}"
    me = tenant.admin.headers

    assert (await api.client.get(theirs, headers=me)).status_code == 404
    assert (await api.client.patch(theirs, json={"role": "admin"}, headers=me)).status_code == 404
    assert (await api.client.get(users_url(other_tenant), headers=me)).status_code == 404
    assert (await api.client.post(users_url(other_tenant), json={"email": "x@y.com"}, headers=me)).status_code == 404
    assert (await api.client.get(f"{theirs}/policy", headers=me)).status_code == 404


async def test_users_me_answers_who_is_calling(api: Api, tenant: Tenant) -> None:
    me = (await api.client.get("/api/v1/users/me", headers=tenant.dev.headers)).json()

    assert me["id"] == tenant.dev.user_id
    assert me["email"] == tenant.dev.email


async def test_list_shows_the_accounts_users_only(api: Api, tenant: Tenant, other_tenant: Tenant) -> None:
    extra = await make_user_token(api, tenant.account_id)

    page = (await api.client.get(users_url(tenant), headers=tenant.dev.headers)).json()

    assert page["count"] == 3
    assert {u["id"] for u in page["data"]} == {tenant.admin.user_id, tenant.dev.user_id, extra.user_id}


async def test_the_emails_a_page_names_people_by_are_only_of_the_callers_account(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    """What the lease trail names actors with: a colleague by email, anyone else's id left out."""
    dev = tenant.dev
    caller = Principal(kind="user", user_id=dev.user_id, account_id=tenant.account_id, role=Role.dev, email=dev.email)
    stranger = other_tenant.dev

    async with transaction(api.sessions) as session:
        named = await users.emails(session, caller=caller, user_ids=[tenant.admin.user_id, stranger.user_id, 10**9])

    assert named == {tenant.admin.user_id: tenant.admin.email}
