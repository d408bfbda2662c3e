"""People mail against the real api: an invitation or an address confirmation becomes
exactly one mail to its address, with a link the api mints as it is sent and whose page
works; a re-delivered message mails nobody twice; what is no longer pending (a revoked
invitation, a confirmed address) is skipped, not retried; and no such link ever goes to
a chat channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import delete
from sqlmodel import col

from zc_common.bus.memory import InProcessBus
from zc_common.internal_api import InternalApi
from zc_common.messages import EmailConfirmationRequested, InvitationCreated, LeaseChange

from tests.api.factories import (
    Api,
    Tenant,
    make_tenant,
    make_user_token,
    running_api,
    settings,
)
from tests.api.records import outbox
from tests.notifier.factories import (
    SmtpSink,
    WebhookReceiver,
    lease_changed,
    lease_snapshot,
    notifier_settings,
)
from tests.support.credentials import NOTIFIER_TOKEN
from tests.support.waiting import eventually
from zc_api.database import transaction
from zc_api.models import Notification, User
from zc_notifier import handlers
from zc_notifier.service import Notifier

API_PUBLIC_URL = "http://127.0.0.1:8000"  # the api settings' default
SETTLE = 1.0  # long enough for a second mail to show up if one were (wrongly) sent


@dataclass
class People:
    api: Api
    tenant: Tenant
    bus: InProcessBus
    notifier: Notifier

    async def invite(self, email: str, role: str = "dev") -> InvitationCreated:
        """Invite through the API; the message the outbox holds for it."""
        response = await self.api.client.post(
            f"/api/v1/accounts/{self.tenant.account_id}/invitations", json={"email": email, "role": role},
            headers=self.tenant.admin.headers,
        )
        assert response.status_code == 201, response.text
        [message] = [m for m in await outbox(self.api, InvitationCreated) if m.invitation_id == response.json()["id"]]
        return message

    async def reserved(self, key: str) -> bool:
        async with transaction(self.api.sessions) as session:
            return await session.get(Notification, key) is not None


async def start(api: Api, sink: SmtpSink, **overrides: object) -> tuple[InProcessBus, Notifier, InternalApi]:
    client = InternalApi("http://zerocloud.internal", NOTIFIER_TOKEN, transport=httpx.ASGITransport(app=api.internal_app))
    notifier = Notifier(notifier_settings(sink, **overrides), client)
    bus = InProcessBus()
    handlers.subscribe(bus, notifier)
    await bus.start()
    return bus, notifier, client


@pytest.fixture
async def people(clean_database: str, smtp_sink: SmtpSink) -> AsyncIterator[People]:
    """The real api (nothing here reaches AWS) and a notifier asking it over HTTP, mailing the sink."""
    async with running_api(settings(clean_database, "http://127.0.0.1:9")) as api:
        bus, notifier, client = await start(api, smtp_sink)
        try:
            yield People(api=api, tenant=await make_tenant(api), bus=bus, notifier=notifier)
        finally:
            await bus.close()
            await notifier.close()
            await client.close()


def link_in(text: str, kind: str) -> str:
    [link] = {word for word in text.split() if word.startswith(f"{API_PUBLIC_URL}/{kind}/")}
    return link.removeprefix(API_PUBLIC_URL)


async def test_an_invitation_is_one_mail_to_the_invitee_with_a_working_link(
    people: People, smtp_sink: SmtpSink
) -> None:
    message = await people.invite("Newcomer@BigDB.example", "admin")

    await people.bus.publish(message)

    await eventually(lambda: len(smtp_sink.mails) == 1)
    mail = smtp_sink.mails[0]
    assert mail.rcpt_tos == ["newcomer@bigdb.example"]
    assert mail.subject == f"{people.tenant.admin.email} invited you to join {message.account_name} on ZeroCloud as an admin"
    path = link_in(mail.text, "invitations")
    for part in (mail.text, mail.html):
        assert path in part and message.expires_at.strftime("%Y-%m-%d %H:%M UTC") in part
        assert "an owner and an end date" in part
    page = await people.api.client.get(path)
    assert page.status_code == 200 and f"{people.tenant.admin.email} invited you to {message.account_name}" in page.text
    assert await people.reserved(f"{message.message_id}:newcomer@bigdb.example")

    await people.bus.publish(message)  # re-delivered
    await asyncio.sleep(SETTLE)

    assert len(smtp_sink.mails) == 1
    assert (await people.api.client.get(path)).status_code == 200, "the mailed link still works"
    assert await people.bus.dead_letters("notifier") == []


async def test_a_revoked_invitation_is_not_mailed(
    people: People, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zc.notifier")
    message = await people.invite("changed-mind@bigdb.example")
    revoked = await people.api.client.delete(
        f"/api/v1/invitations/{message.invitation_id}", headers=people.tenant.admin.headers
    )
    assert revoked.status_code == 204

    await people.bus.publish(message)

    await eventually(lambda: people.reserved(f"{message.message_id}:changed-mind@bigdb.example"))
    await asyncio.sleep(SETTLE)
    assert smtp_sink.mails == []
    assert await people.bus.dead_letters("notifier") == [], "skipped, not retried or dead-lettered"
    skipped = [r for r in caplog.records if r.name == "zc.notifier" and "skipped" in r.getMessage()]
    assert len(skipped) == 1, "handled once: no retry"
    assert not [r for r in caplog.records if r.name == "zc.bus" and "retrying" in r.getMessage()]


async def test_an_address_confirmation_is_one_mail_whose_link_confirms(people: People, smtp_sink: SmtpSink) -> None:
    joiner = await make_user_token(people.api, people.tenant.account_id, email="joiner@bigdb.example", confirmed=False)
    message = EmailConfirmationRequested(user_id=joiner.user_id, account_id=people.tenant.account_id,
                                         email=joiner.email, name="Joan Joiner")

    await people.bus.publish(message, message)

    await eventually(lambda: len(smtp_sink.mails) == 1)
    await asyncio.sleep(SETTLE)
    [mail] = smtp_sink.mails
    assert mail.rcpt_tos == [joiner.email] and mail.subject == "Confirm your address for ZeroCloud"
    assert "Hello Joan Joiner" in mail.text and "Joan Joiner" in mail.html
    path = link_in(mail.text, "confirm-email")
    assert path in mail.html
    assert (await people.api.client.post(path)).status_code == 200
    async with transaction(people.api.sessions) as session:
        user = await session.get(User, joiner.user_id)
    assert user is not None and user.email_confirmed_at is not None

    # Confirmed since: a late copy of the request mails nothing.
    late = EmailConfirmationRequested(user_id=joiner.user_id, email=joiner.email)
    await people.bus.publish(late)
    await eventually(lambda: people.reserved(f"{late.message_id}:{joiner.email}"))
    await asyncio.sleep(SETTLE)
    assert len(smtp_sink.mails) == 1


async def test_people_mail_never_goes_to_the_chat_channel(clean_database: str, smtp_sink: SmtpSink) -> None:
    async with running_api(settings(clean_database, "http://127.0.0.1:9")) as api:
        with WebhookReceiver() as hook:
            bus, notifier, client = await start(api, smtp_sink, webhook_url=hook.url)
            try:
                tenant = await make_tenant(api)
                response = await api.client.post(
                    f"/api/v1/accounts/{tenant.account_id}/invitations", json={"email": "new@bigdb.example"},
                    headers=tenant.admin.headers,
                )
                assert response.status_code == 201
                [invitation] = await outbox(api, InvitationCreated)
                lease = lease_snapshot(account_id=tenant.account_id, owner_email=tenant.dev.email)
                await bus.publish(invitation, lease_changed(LeaseChange.created, lease))

                await eventually(lambda: len(smtp_sink.mails) == 2 and len(hook.bodies) == 1)
                await asyncio.sleep(SETTLE)
                assert len(hook.bodies) == 1 and "/invitations/" not in hook.bodies[0]["text"]
                assert "new@bigdb.example" in {mail.to for mail in smtp_sink.mails}
            finally:
                await bus.close()
                await notifier.close()
                await client.close()


async def test_a_user_removed_before_the_mail_is_skipped(people: People, smtp_sink: SmtpSink) -> None:
    joiner = await make_user_token(people.api, people.tenant.account_id, confirmed=False)
    async with transaction(people.api.sessions) as session:
        await session.execute(delete(User).where(col(User.id) == joiner.user_id))
    message = EmailConfirmationRequested(user_id=joiner.user_id, email=joiner.email)

    await people.bus.publish(message)

    await eventually(lambda: people.reserved(f"{message.message_id}:{joiner.email}"))
    await asyncio.sleep(SETTLE)
    assert smtp_sink.mails == []
    assert await people.bus.dead_letters("notifier") == []


async def test_a_person_an_admin_adds_gets_only_the_confirmation_mail_until_they_confirm(
    people: People, smtp_sink: SmtpSink
) -> None:
    added = await people.api.client.post(
        f"/api/v1/accounts/{people.tenant.account_id}/users", json={"email": "Added@Elsewhere.example"},
        headers=people.tenant.admin.headers,
    )
    assert added.status_code == 201, added.text
    email = "added@elsewhere.example"
    [asked] = [m for m in await outbox(people.api, EmailConfirmationRequested) if m.user_id == added.json()["id"]]
    # A lease naming them (as an admin giving them one would): nothing about it may reach them yet.
    theirs = lease_snapshot(account_id=people.tenant.account_id, owner_email=email)

    await people.bus.publish(asked, lease_changed(LeaseChange.owner_changed, theirs))

    await eventually(lambda: len(smtp_sink.mails) == 1)
    await asyncio.sleep(SETTLE)
    [confirmation] = smtp_sink.mails
    assert confirmation.rcpt_tos == [email] and confirmation.subject == "Confirm your address for ZeroCloud"
    assert await people.bus.dead_letters("notifier") == []

    path = link_in(confirmation.text, "confirm-email")
    assert (await people.api.client.post(path)).status_code == 200
    await people.bus.publish(lease_changed(LeaseChange.owner_changed, theirs))

    await eventually(lambda: len(smtp_sink.mails) == 2)
    assert smtp_sink.mails[1].rcpt_tos == [email] and theirs.instance_id in smtp_sink.mails[1].subject
