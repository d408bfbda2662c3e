"""An account's own webhook for its lease notices: set by its admins, validated, shown
only to them, audited without the URL; and the notifier asks where a batch may go —
confirmed addresses only, and each account's webhook for its own notices."""

from __future__ import annotations

import httpx
import pytest

from zc_common.internal_api import NoticeRecipient

from tests.api.factories import Api, Tenant, make_tenant, make_user_token
from tests.api.records import audit_events, internal_client

HOOK = "https://hooks.slack.test/services/T000/B000/secretpart"


async def set_webhook(api: Api, tenant: Tenant, value: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return await api.client.patch(
        f"/api/v1/accounts/{tenant.account_id}", json={"webhook_url": value}, headers=headers or tenant.admin.headers
    )


async def test_an_admin_sets_the_accounts_webhook_and_only_admins_see_it(api: Api, tenant: Tenant) -> None:
    answer = await set_webhook(api, tenant, HOOK)

    assert answer.status_code == 200, answer.text
    assert answer.json()["webhook_url"] == HOOK and answer.json()["name"]  # the name is kept
    as_admin = await api.client.get(f"/api/v1/accounts/{tenant.account_id}", headers=tenant.admin.headers)
    as_dev = await api.client.get(f"/api/v1/accounts/{tenant.account_id}", headers=tenant.dev.headers)
    assert as_admin.json()["webhook_url"] == HOOK
    assert as_dev.status_code == 200 and as_dev.json()["webhook_url"] is None
    listed = await api.client.get("/api/v1/accounts", headers=tenant.dev.headers)
    assert listed.json()["data"][0]["webhook_url"] is None
    [event] = await audit_events(api, action="account.updated", subject_id=tenant.account_id)
    assert "secretpart" not in str(event.details)
    assert event.details["changes"]["webhook_url"] == {"from": None, "to": "https://hooks.slack.test/…"}

    cleared = await set_webhook(api, tenant, None)
    assert cleared.status_code == 200 and cleared.json()["webhook_url"] is None
    nameless = await api.client.patch(
        f"/api/v1/accounts/{tenant.account_id}", json={"name": None}, headers=tenant.admin.headers
    )
    assert nameless.status_code == 422 and "name" in nameless.text


async def test_a_developer_or_another_tenant_cannot_set_it(api: Api, tenant: Tenant) -> None:
    other = await make_tenant(api)

    assert (await set_webhook(api, tenant, HOOK, tenant.dev.headers)).status_code == 403
    assert (await set_webhook(api, tenant, HOOK, other.admin.headers)).status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x", "hooks.example.com/x", "https://", "https://user:pw@hooks.example.com/x",
        "https://hooks.example.com/x#frag", "https://hooks.example.com/a b", "http://127.0.0.1:8000/internal/v1",
        "http://169.254.169.254/latest/meta-data", "http://10.0.0.5/hook", "http://[::1]/hook", "http://localhost/x",
        "https://hooks.example.com:99999/x", "https://hooks.example.com/" + "x" * 2048, "", 7,
    ],
)
async def test_a_webhook_that_is_not_a_public_http_url_is_422_naming_the_field(
    api: Api, tenant: Tenant, url: object
) -> None:
    answer = await set_webhook(api, tenant, url)

    assert answer.status_code == 422, answer.text
    assert "webhook_url" in answer.text


async def test_the_notifier_learns_confirmed_recipients_and_each_accounts_own_webhook(
    api: Api, tenant: Tenant
) -> None:
    other = await make_tenant(api)
    await set_webhook(api, tenant, HOOK)
    joiner = await make_user_token(api, tenant.account_id, email="joiner@bigdb.example", confirmed=False)
    asked = [
        NoticeRecipient(account_id=tenant.account_id, email=tenant.dev.email.upper()),
        NoticeRecipient(account_id=tenant.account_id, email=joiner.email),
        # Confirmed, but in another account: not a recipient of this account's notices.
        NoticeRecipient(account_id=tenant.account_id, email=other.dev.email),
        NoticeRecipient(account_id=other.account_id, email=other.dev.email),
    ]

    async with internal_client(api, "notifier") as client:
        answer = await client.notice_recipients(asked, [tenant.account_id, other.account_id])

    assert answer.confirmed == [asked[0], asked[3]]
    assert [(w.account_id, w.url) for w in answer.webhooks] == [(tenant.account_id, HOOK)]
