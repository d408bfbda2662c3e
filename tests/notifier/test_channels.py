"""Channels by name, and the retry policy around one: tries with backoff, then a breaker
that makes a backlog fail fast while the server is down."""

from __future__ import annotations

import pytest

from zc_common.settings import NotifierSettings

from tests.notifier.factories import notifier_settings
from zc_notifier.channels import Channel, SendFailed, build_channels, channels
from zc_notifier.channels.registry import Registry
from zc_notifier.delivery import ChannelDown, Delivery
from zc_notifier.mail import Mail

MAIL = Mail(sender="zerocloud@zerocloud.test", recipient="dev@bigdb.example", subject="s", text="t", html="<p>h</p>")


def test_channels_are_registered_by_name() -> None:
    assert channels.names() == ["account_webhook", "ses", "smtp", "webhook"]
    with pytest.raises(KeyError, match="no channel named 'pigeon' \\(known: account_webhook, ses, smtp, webhook\\)"):
        channels.get("pigeon")


def test_a_name_cannot_be_registered_twice() -> None:
    registry: Registry[Channel] = Registry("channel")
    registry.register("x")(Flaky)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("x")(Flaky)


def test_settings_choose_the_mail_channel_and_add_the_webhook() -> None:
    assert [c.name for c in build_channels(notifier_settings())] == ["smtp", "account_webhook"]
    assert [c.name for c in build_channels(notifier_settings(account_webhooks=False))] == ["smtp"]
    both = build_channels(notifier_settings(delivery="ses", webhook_url="http://hooks.test/x"))
    assert [c.name for c in both] == ["ses", "account_webhook", "webhook"]


class Flaky(Channel):
    """Fails the first ``failures`` sends."""

    name = "flaky"

    def __init__(self, settings: NotifierSettings, failures: int) -> None:
        super().__init__(settings)
        self.failures = failures
        self.calls = 0

    async def send(self, mail: Mail) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise SendFailed(f"down (call {self.calls})")


async def test_a_send_is_tried_again_with_backoff_until_it_goes_through() -> None:
    channel = Flaky(notifier_settings(), failures=2)
    delivery = Delivery(channel, attempts=3, retry_delay=0.01, cooldown=60)

    await delivery.send(MAIL)

    assert channel.calls == 3


async def test_after_a_mail_failed_every_try_the_next_fail_fast_until_the_cooldown_ends() -> None:
    channel = Flaky(notifier_settings(), failures=10)
    delivery = Delivery(channel, attempts=3, retry_delay=0.01, cooldown=60)
    now = [1000.0]
    delivery.breaker.clock = lambda: now[0]

    with pytest.raises(SendFailed, match="call 3"):
        await delivery.send(MAIL)
    with pytest.raises(ChannelDown):
        await delivery.send(MAIL)
    assert channel.calls == 3, "the breaker kept the second mail off the dead server"

    now[0] += 61  # after the cooldown: one try, not three
    with pytest.raises(SendFailed, match="call 4"):
        await delivery.send(MAIL)
    assert channel.calls == 4

    channel.failures = 0
    now[0] += 61
    await delivery.send(MAIL)
    assert channel.calls == 5 and not delivery.breaker.tripped
