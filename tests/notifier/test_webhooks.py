"""Chat webhooks: the operator's (every account's notices) and each account's own (that
account's notices only). Others read a chat channel, so neither ever gets a renew or
shut-down link: those are credentials and go only to the owner's own mailbox. And lease
notices are mailed to confirmed addresses only."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest

from zc_common.bus.memory import InProcessBus
from zc_common.messages import LeaseChange

from tests.notifier.conftest import StartNotifier
from tests.notifier.factories import (
    OTHER_OWNER,
    OWNER,
    FakeApi,
    SmtpSink,
    WebhookReceiver,
    expiring_soon,
    lease_changed,
    lease_snapshot,
    notifier_settings,
    utcnow,
)
from tests.support.waiting import eventually
from zc_notifier.channels import Channel, RecipientRefused, SendFailed
from zc_notifier.channels.webhook import AccountWebhookChannel
from zc_notifier.delivery import ChannelDown, Delivery
from zc_notifier.mail import Mail

SETTLE = 1.0  # long enough for a post that should not happen to show up


async def test_no_webhook_body_carries_an_action_link(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    with WebhookReceiver() as operator, WebhookReceiver() as tenant:
        fake_api.webhooks = {1: tenant.url}
        await start_notifier(memory_bus, webhook_url=operator.url)
        created = lease_changed(LeaseChange.created)
        warning = expiring_soon(lease_snapshot(expires_at=utcnow() + timedelta(hours=1)))

        await memory_bus.publish(created, warning)

        await eventually(lambda: len(operator.bodies) == len(tenant.bodies) == 1 and len(smtp_sink.mails) == 1)
        [mail] = smtp_sink.mails
        minted = _minted(mail.text)
        assert minted, "the owner's own mail carries its renew and shut-down links"
        for body in (operator.bodies[0]["text"], tenant.bodies[0]["text"]):
            assert created.lease.instance_id in body and warning.lease.instance_id in body
            assert "/a/" not in body and "http" not in body and "renew:" not in body
            assert not any(url in body or url.rsplit("/", 1)[1] in body for url in minted)


def _minted(text: str) -> list[str]:
    return [word for word in text.split() if "/a/" in word]


async def test_an_accounts_notices_reach_only_its_own_webhook(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    with WebhookReceiver() as hook_a, WebhookReceiver() as hook_b:
        fake_api.webhooks = {1: hook_a.url, 2: hook_b.url}
        await start_notifier(memory_bus)
        of_a = lease_changed(LeaseChange.created, lease_snapshot(account_id=1, owner_email=OWNER))
        of_b = lease_changed(LeaseChange.created, lease_snapshot(account_id=2, owner_email=OTHER_OWNER))
        of_c = lease_changed(LeaseChange.created, lease_snapshot(account_id=3, owner_email="c@other.example"))

        await memory_bus.publish(of_a, of_b, of_c)

        await eventually(lambda: len(hook_a.bodies) == len(hook_b.bodies) == 1 and len(smtp_sink.mails) == 3)
        await asyncio.sleep(SETTLE)
        [a], [b] = (body["text"] for body in hook_a.bodies), (body["text"] for body in hook_b.bodies)
        assert of_a.lease.instance_id in a and OWNER in a
        assert of_b.lease.instance_id not in a and OTHER_OWNER not in a and of_c.lease.instance_id not in a
        assert of_b.lease.instance_id in b and OTHER_OWNER in b
        assert of_a.lease.instance_id not in b and OWNER not in b and of_c.lease.instance_id not in b
        assert f"{of_a.message_id}:{OWNER}:account-webhook" in fake_api.sent


async def test_lease_notices_are_not_mailed_to_an_unconfirmed_address(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    fake_api.unconfirmed = {OWNER}
    await start_notifier(memory_bus)
    theirs = lease_changed(LeaseChange.created, lease_snapshot(owner_email=OWNER))
    others = lease_changed(LeaseChange.created, lease_snapshot(owner_email=OTHER_OWNER))

    await memory_bus.publish(theirs, others, expiring_soon(lease_snapshot(owner_email=OWNER)))

    await eventually(lambda: len(smtp_sink.mails) == 1)
    await asyncio.sleep(SETTLE)
    assert [mail.to for mail in smtp_sink.mails] == [OTHER_OWNER]
    assert not any(OWNER in key.split(":")[1] for key in fake_api.reserved), "nothing was even reserved for them"
    assert not any(ref.lease_id == theirs.lease.lease_id for r in fake_api.link_requests for ref in r.leases)


class _Posts(Channel):
    """A per-account channel whose destinations in ``down`` never answer."""

    name = "posts"
    per_account = True
    private = False

    def __init__(self, down: set[str]) -> None:
        super().__init__(notifier_settings())
        self.down = down
        self.delivered: list[str] = []

    async def send(self, mail: Mail) -> None:
        assert mail.destination is not None
        if mail.destination in self.down:
            raise SendFailed(f"{mail.destination} does not answer")
        self.delivered.append(mail.destination)


async def test_one_accounts_broken_webhook_does_not_hold_back_anothers() -> None:
    broken, working = "https://hooks.example/a", "https://hooks.example/b"
    channel = _Posts(down={broken})
    delivery = Delivery(channel, attempts=2, retry_delay=0.01, cooldown=60)
    mail = Mail(sender="z@zerocloud.test", recipient=OWNER, subject="s", text="t", html="<p>t</p>")

    for _ in range(2):
        with pytest.raises(SendFailed):
            await delivery.send(replace(mail, destination=broken))
    await delivery.send(replace(mail, destination=working))

    assert channel.delivered == [working]
    assert not delivery.breaker_for(replace(mail, destination=broken)).allows(), "the broken one is presumed down"
    with pytest.raises(ChannelDown):
        await delivery.send(replace(mail, destination=broken))


@pytest.mark.parametrize(("status", "refused"), [(404, True), (410, True), (429, False), (503, False)])
async def test_an_accounts_webhook_that_is_gone_is_refused_for_good(status: int, refused: bool) -> None:
    channel = AccountWebhookChannel(notifier_settings())
    channel._http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(status)))
    mail = Mail(sender="z@zerocloud.test", recipient=OWNER, subject="s", text="t", html="<p>t</p>",
                destination="https://hooks.example/a")
    try:
        with pytest.raises(SendFailed) as failure:
            await channel.send(mail)
    finally:
        await channel.close()

    assert isinstance(failure.value, RecipientRefused) is refused
