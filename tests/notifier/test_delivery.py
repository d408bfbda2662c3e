"""Getting mail out: an SMTP server that is down for a while loses nothing and
duplicates nothing; a mail that can never go is dead-lettered with its reason, never
dropped; STARTTLS and AUTH; SES; the webhook."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from zc_common.aws import AwsAccess
from zc_common.bus import Bus
from zc_common.bus.memory import InProcessBus
from zc_common.bus.topology import NOTIFIER
from zc_common.internal_api import ActionLinks, InternalApi, InternalApiError, LeaseAction, LeaseRef
from zc_common.messages import LeaseChange, LeaseChanged

from tests.notifier.conftest import StartNotifier
from tests.notifier.factories import (
    OTHER_OWNER,
    OWNER,
    FakeApi,
    SmtpSink,
    WebhookReceiver,
    lease_changed,
    lease_snapshot,
    notifier_settings,
    self_signed_certificate,
)
from tests.support.waiting import eventually
from zc_notifier.channels import SendFailed, build_channels
from zc_notifier.delivery import Delivery
from zc_notifier.mail import Mail
from zc_notifier.service import Notifier

SETTLE = 1.5


def each_once(sink: SmtpSink, messages: Sequence[LeaseChanged]) -> bool:
    """Every message's instance appears in exactly one received mail."""
    texts = [mail.text for mail in sink.mails]
    return all(sum(m.lease.instance_id in text for text in texts) == 1 for m in messages)


async def test_mail_waits_for_an_smtp_server_that_is_not_up_yet(
    bus: Bus, start_notifier: StartNotifier, fake_api: FakeApi
) -> None:
    down = SmtpSink()  # its port is chosen, nothing listens there yet
    await start_notifier(bus, smtp_port=down.port)
    messages = [
        lease_changed(LeaseChange.created),
        lease_changed(LeaseChange.created),
        lease_changed(LeaseChange.created, lease_snapshot(owner_email=OTHER_OWNER)),
    ]

    await bus.publish(*messages)
    await asyncio.sleep(2.0)  # several tries and a few redeliveries against a closed port
    assert fake_api.sent == set()
    down.start()
    try:
        await eventually(lambda: each_once(down, messages), timeout=30)
        await asyncio.sleep(SETTLE)
        assert each_once(down, messages)
        assert {mail.to for mail in down.mails} == {OWNER, OTHER_OWNER}
        assert fake_api.sent == {f"{m.message_id}:{m.lease.owner_email}" for m in messages}
        assert await bus.dead_letters(NOTIFIER.name) == []
    finally:
        down.stop()


async def test_mail_sent_while_the_smtp_server_was_stopped_arrives_once_it_is_back(
    start_notifier: StartNotifier, memory_bus: InProcessBus
) -> None:
    sink = SmtpSink()
    sink.start()
    try:
        await start_notifier(memory_bus, smtp_port=sink.port)
        before = lease_changed(LeaseChange.created)
        await memory_bus.publish(before)
        await eventually(lambda: len(sink.mails) == 1)

        sink.stop()
        during = [lease_changed(LeaseChange.created) for _ in range(5)]
        await memory_bus.publish(*during)
        await asyncio.sleep(2.0)
        sink.start()

        await eventually(lambda: each_once(sink, [before, *during]), timeout=30)
        await asyncio.sleep(SETTLE)
        assert each_once(sink, [before, *during])
        assert await memory_bus.dead_letters(NOTIFIER.name) == []
    finally:
        sink.stop()


async def test_mail_that_never_goes_out_is_dead_lettered_with_the_reason(
    bus: Bus, start_notifier: StartNotifier, fake_api: FakeApi
) -> None:
    nobody = SmtpSink()  # never started
    await start_notifier(bus, smtp_port=nobody.port, send_attempts=2, redelivery_attempts=2, redelivery_delay=0.1)
    message = lease_changed(LeaseChange.created)

    await bus.publish(message)

    async def dead() -> bool:
        return len(await bus.dead_letters(NOTIFIER.name)) == 1

    await eventually(dead, timeout=30)
    [letter] = await bus.dead_letters(NOTIFIER.name)
    assert str(message.message_id).encode() in letter.body
    assert "not delivered" in letter.reason and "SMTP 127.0.0.1" in letter.reason
    assert fake_api.sent == set()


async def test_a_recipient_the_server_refuses_is_dead_lettered_at_once_and_others_still_get_mail(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    smtp_sink.refuse.add("gone@bigdb.example")
    await start_notifier(memory_bus)
    refused = lease_changed(LeaseChange.created, lease_snapshot(owner_email="gone@bigdb.example"))
    fine = lease_changed(LeaseChange.created)

    await memory_bus.publish(refused, fine)

    async def dead() -> bool:
        return len(await memory_bus.dead_letters(NOTIFIER.name)) == 1

    await eventually(dead)
    [letter] = await memory_bus.dead_letters(NOTIFIER.name)
    assert str(refused.message_id).encode() in letter.body
    assert "recipient refused" in letter.reason and "gone@bigdb.example" in letter.reason
    assert letter.attempts == 1, "a refused recipient is not retried"
    assert [mail.to for mail in smtp_sink.mails] == [OWNER]
    assert fake_api.sent == {f"{fine.message_id}:{OWNER}"}


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


async def test_starttls_and_auth(
    start_notifier: StartNotifier, memory_bus: InProcessBus, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink(tls_context=context, login=("zerocloud", "s3cret-pass"))
    sink.start()
    try:
        notifier = await start_notifier(
            memory_bus, smtp_port=sink.port, smtp_starttls=True, smtp_ca_file=str(cert),
            smtp_username="zerocloud", smtp_password="s3cret-pass",
        )
        assert await notifier.readiness_checks()["smtp"]()

        await memory_bus.publish(lease_changed(LeaseChange.created))

        await eventually(lambda: len(sink.mails) == 1)
        assert sink.mails[0].tls and sink.mails[0].login == "zerocloud"
    finally:
        sink.stop()


async def test_starttls_refuses_a_server_whose_certificate_it_cannot_verify(
    tls_files: tuple[Path, Path], fake_api: FakeApi
) -> None:
    cert, key = tls_files
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sink = SmtpSink(tls_context=context, login=("zerocloud", "s3cret-pass"))
    sink.start()
    try:
        settings = notifier_settings(sink, smtp_starttls=True, smtp_username="zerocloud", smtp_password="s3cret-pass",
                                    account_webhooks=False)
        [smtp] = build_channels(settings)  # the system's CAs do not know the test's certificate
        with pytest.raises(SendFailed):
            await smtp.send(Mail(sender=settings.mail_from, recipient=OWNER, subject="s", text="t", html="<p>h</p>"))
        assert sink.mails == []
    finally:
        sink.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_auth_without_tls_when_the_server_allows_it(
    start_notifier: StartNotifier, memory_bus: InProcessBus
) -> None:
    sink = SmtpSink(login=("zerocloud", "s3cret-pass"), auth_require_tls=False)
    sink.start()
    try:
        await start_notifier(memory_bus, smtp_port=sink.port, smtp_username="zerocloud", smtp_password="s3cret-pass")

        await memory_bus.publish(lease_changed(LeaseChange.created))

        await eventually(lambda: len(sink.mails) == 1)
        assert sink.mails[0].login == "zerocloud" and not sink.mails[0].tls
    finally:
        sink.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_a_wrong_password_sends_nothing_and_keeps_the_message(
    start_notifier: StartNotifier, memory_bus: InProcessBus, fake_api: FakeApi
) -> None:
    sink = SmtpSink(login=("zerocloud", "s3cret-pass"), auth_require_tls=False)
    sink.start()
    try:
        await start_notifier(memory_bus, smtp_port=sink.port, smtp_username="zerocloud", smtp_password="wrong")

        await memory_bus.publish(lease_changed(LeaseChange.created))
        await asyncio.sleep(SETTLE)

        assert sink.mails == [] and fake_api.sent == set()
        assert fake_api.reserved, "the notice was reserved and is still waiting to go"
    finally:
        sink.stop()


async def test_webhook_gets_each_digest_once_beside_the_mail(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    with WebhookReceiver() as hook:
        await start_notifier(memory_bus, webhook_url=hook.url)
        message = lease_changed(LeaseChange.created)

        await memory_bus.publish(message, message)

        await eventually(lambda: len(hook.bodies) == 1 and len(smtp_sink.mails) == 1)
        await memory_bus.publish(message)
        await asyncio.sleep(SETTLE)
        assert len(hook.bodies) == 1 and len(smtp_sink.mails) == 1
        text = hook.bodies[0]["text"]
        # A chat channel is read by others: no renew or shut-down link (each is a credential) goes there.
        assert message.lease.instance_id in text and OWNER in text
        assert "/a/" not in text and "renew" not in text and "https://" not in text
        [mail] = smtp_sink.mails
        assert "/a/renew-" in mail.text, "the owner's own mail keeps its links"
        assert fake_api.sent == {f"{message.message_id}:{OWNER}", f"{message.message_id}:{OWNER}:webhook"}


async def test_ses_delivery_sends_raw_mail(moto: str, fake_api: FakeApi) -> None:
    settings = notifier_settings(delivery="ses", aws_endpoint_url=moto, mail_from="zerocloud@zerocloud.test")
    aws = AwsAccess(endpoint_url=moto)
    async with aws.client("ses") as ses:
        await ses.verify_email_identity(EmailAddress="zerocloud@zerocloud.test")
    api = fake_api.client()
    notifier = Notifier(settings, api)
    try:
        assert [d.name for d in notifier.deliveries] == ["ses", "account_webhook"]
        assert await notifier.readiness_checks()["ses"]()

        await notifier.handle([lease_changed(LeaseChange.created), lease_changed(LeaseChange.created)])

        async with aws.client("ses") as ses:
            quota = await ses.get_send_quota()
        assert quota["SentLast24Hours"] == 1  # one digest, one recipient
        assert len(fake_api.sent) == 2
    finally:
        await notifier.close()
        await api.close()


async def test_an_owner_email_that_is_no_mail_address_is_dead_lettered_and_others_still_get_mail(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink
) -> None:
    await start_notifier(memory_bus)
    broken = lease_changed(LeaseChange.created, lease_snapshot(owner_email="nobody"))
    fine = lease_changed(LeaseChange.created)

    await memory_bus.publish(broken, fine)

    async def dead() -> bool:
        return len(await memory_bus.dead_letters(NOTIFIER.name)) == 1

    await eventually(dead)
    [letter] = await memory_bus.dead_letters(NOTIFIER.name)
    assert str(broken.message_id).encode() in letter.body
    assert "not a mail address: 'nobody'" in letter.reason
    assert [mail.to for mail in smtp_sink.mails] == [OWNER]


async def test_mail_waits_while_the_api_cannot_make_links_and_then_carries_them(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    fake_api.links_fail_with = 503
    await start_notifier(memory_bus)

    await memory_bus.publish(lease_changed(LeaseChange.created))
    await eventually(lambda: fake_api.requests["action_links"] >= 2)
    assert smtp_sink.mails == []
    fake_api.links_fail_with = None

    await eventually(lambda: len(smtp_sink.mails) == 1)
    assert "/a/renew-" in smtp_sink.mails[0].text


async def test_when_the_api_refuses_links_the_mail_goes_without_them(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    fake_api.links_fail_with = 422
    await start_notifier(memory_bus)

    await memory_bus.publish(lease_changed(LeaseChange.created))

    await eventually(lambda: len(smtp_sink.mails) == 1)
    assert "/a/" not in smtp_sink.mails[0].text and "href=" not in smtp_sink.mails[0].html


async def test_a_refusal_is_told_by_the_status_the_api_answered_not_by_the_message(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(
        self: InternalApi, leases: list[LeaseRef], actions: list[LeaseAction] | None = None
    ) -> list[ActionLinks]:
        raise InternalApiError("no links for these leases", status_code=422)

    monkeypatch.setattr(InternalApi, "action_links", refuse)
    await start_notifier(memory_bus)

    await memory_bus.publish(lease_changed(LeaseChange.created))

    await eventually(lambda: len(smtp_sink.mails) == 1)
    assert "/a/" not in smtp_sink.mails[0].text


async def test_each_mail_is_counted_once_as_ok_or_failed(smtp_sink: SmtpSink) -> None:
    def mails(outcome: str) -> float:
        return REGISTRY.get_sample_value("zc_notifier_mails_total", {"channel": "smtp", "outcome": outcome}) or 0.0

    up = Delivery(build_channels(notifier_settings(smtp_sink))[0], attempts=3, retry_delay=0.01, cooldown=0.1)
    down = Delivery(build_channels(notifier_settings())[0], attempts=3, retry_delay=0.01, cooldown=0.1)
    mail = Mail(sender="zerocloud@zerocloud.test", recipient=OWNER, subject="s", text="t", html="<p>h</p>")
    ok, failed = mails("ok"), mails("failed")

    await up.send(mail)
    await up.send(mail)
    with pytest.raises(SendFailed):
        await down.send(mail)  # three tries, one mail

    assert (mails("ok") - ok, mails("failed") - failed) == (2, 1)
