"""What the api hears about warnings: one that went out (only after the mail server
accepted it), one that never can, and one too late for its lead (not mailed: the api
moves the reap). Nothing is dropped without a log line and a count."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from zc_common.bus.memory import InProcessBus
from zc_common.internal_api import DeferOutcome, WarningUndelivered
from zc_common.messages import LeaseExpiringSoon

from tests.notifier.conftest import StartNotifier
from tests.notifier.factories import (
    OWNER,
    FakeApi,
    SmtpSink,
    expiring_soon,
    lease_snapshot,
    notifier_settings,
    utcnow,
)
from tests.support.waiting import eventually
from zc_notifier.mail import Mail
from zc_notifier.service import Notifier

SETTLE = 1.0


def counted(outcome: str, reason: str) -> float:
    return REGISTRY.get_sample_value("zc_notifier_warnings_total", {"outcome": outcome, "reason": reason}) or 0.0


def late_warning(*, left: timedelta, lead: timedelta = timedelta(hours=1)) -> LeaseExpiringSoon:
    """A warning whose lease ends ``left`` from now, due ``lead`` before that end."""
    expires_at = utcnow() + left
    return expiring_soon(lease_snapshot(expires_at=expires_at), warning_at=expires_at - lead)


async def test_a_warning_in_time_is_mailed_then_reported_delivered(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(memory_bus)
    warning = late_warning(left=timedelta(minutes=59, seconds=30))  # within the minute's tolerance
    before = counted("delivered", "in_time")

    await memory_bus.publish(warning)

    await eventually(lambda: fake_api.requests["warned"] == 1)
    [mail] = smtp_sink.mails
    assert "expires in" in mail.subject
    [report] = fake_api.warned
    assert (report.lease_id, report.version, report.warning_at) == (warning.lease.lease_id, 1, warning.warning_at)
    assert report.undelivered is None and report.delivered_at >= warning.warning_at
    # Reported only once the mail server had accepted it and it was marked sent.
    assert f"{warning.message_id}:{OWNER}" in fake_api.sent_when_warned[0]
    assert fake_api.deferred == []
    assert counted("delivered", "in_time") == before + 1


async def test_a_redelivered_warning_is_mailed_once_and_reported_again(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(memory_bus)
    warning = late_warning(left=timedelta(hours=1))
    await memory_bus.publish(warning)
    await eventually(lambda: fake_api.requests["warned"] == 1)
    again = counted("delivered", "redelivered")

    # As after a crash between the mail and the report: the same message comes again.
    await memory_bus.publish(warning)

    await eventually(lambda: fake_api.requests["warned"] == 2)
    await asyncio.sleep(SETTLE)
    assert len(smtp_sink.mails) == 1, "mailed once"
    first, second = fake_api.warned
    assert (first.lease_id, first.version, first.warning_at) == (second.lease_id, second.version, second.warning_at)
    assert counted("delivered", "redelivered") == again + 1


async def test_a_warning_arriving_after_expiry_is_not_mailed_and_the_reap_moves(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="zc.notifier.warnings")
    await start_notifier(memory_bus)
    warning = late_warning(left=-timedelta(seconds=15))  # an outage held it past the expiry
    before = counted("deferred", "late")

    await memory_bus.publish(warning)

    await eventually(lambda: fake_api.requests["defer"] == 1)
    await asyncio.sleep(SETTLE)
    assert smtp_sink.mails == [] and fake_api.warned == []
    [asked] = fake_api.deferred
    assert (asked.lease_id, asked.version, asked.warning_at) == (warning.lease.lease_id, 1, warning.warning_at)
    assert counted("deferred", "late") == before + 1
    [line] = [r.getMessage() for r in caplog.records if r.name == "zc.notifier.warnings"]
    assert f"lease {warning.lease.lease_id} (version 1)" in line and "too late for its lead" in line
    assert "moved the reap" in line


async def test_a_warning_short_of_its_lead_is_not_mailed_either(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(memory_bus)

    await memory_bus.publish(late_warning(left=timedelta(minutes=45)))  # an hour's warning, 15 minutes late

    await eventually(lambda: fake_api.requests["defer"] == 1)
    await asyncio.sleep(SETTLE)
    assert smtp_sink.mails == []


async def test_a_late_warning_of_a_lease_that_moved_on_is_dropped_with_a_line_and_a_count(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="zc.notifier.warnings")
    await start_notifier(memory_bus)
    fake_api.defer_answer = DeferOutcome.superseded  # renewed meanwhile
    before = counted("dropped", "superseded")

    await memory_bus.publish(late_warning(left=-timedelta(seconds=15)))

    await eventually(lambda: counted("dropped", "superseded") == before + 1)
    assert smtp_sink.mails == []
    [line] = [r.getMessage() for r in caplog.records if r.name == "zc.notifier.warnings"]
    assert line.startswith("dropped the warning for lease") and "(superseded)" in line


async def test_a_warning_to_an_unconfirmed_owner_is_reported_undeliverable(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="zc.notifier.warnings")
    await start_notifier(memory_bus)
    fake_api.unconfirmed = {OWNER}
    before = counted("settled", "unconfirmed")

    await memory_bus.publish(late_warning(left=timedelta(hours=1)))

    await eventually(lambda: fake_api.requests["warned"] == 1)
    assert smtp_sink.mails == []
    [report] = fake_api.warned
    assert report.undelivered is WarningUndelivered.unconfirmed
    assert counted("settled", "unconfirmed") == before + 1
    assert any("can never reach" in r.getMessage() for r in caplog.records if r.name == "zc.notifier.warnings")


async def test_a_warning_the_mail_server_refuses_for_good_is_reported_undeliverable(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(memory_bus)
    smtp_sink.refuse.add(OWNER)

    await memory_bus.publish(late_warning(left=timedelta(hours=1)))

    await eventually(lambda: fake_api.requests["warned"] >= 1)
    assert [r.undelivered for r in fake_api.warned][:1] == [WarningUndelivered.recipient_refused]


async def test_a_warning_not_yet_delivered_is_not_reported(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    smtp_sink.stop()  # the mail server is down: the bus retries, nothing is settled
    await start_notifier(memory_bus)

    await memory_bus.publish(late_warning(left=timedelta(hours=1)))

    await eventually(lambda: fake_api.requests["reserve"] >= 2)
    assert fake_api.warned == []
    smtp_sink.start()
    await eventually(lambda: fake_api.requests["warned"] == 1, timeout=20)
    assert len(smtp_sink.mails) == 1 and fake_api.warned[0].undelivered is None


async def test_a_warning_the_mail_server_accepted_too_late_moves_the_reap_too(
    smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    skew = [timedelta(0)]
    api = fake_api.client()
    notifier = Notifier(notifier_settings(smtp_sink), api, clock=lambda: utcnow() + skew[0])
    channel = notifier.deliveries[0].channel
    send = channel.send

    async def slow_send(mail: Mail) -> None:
        await send(mail)
        skew[0] = timedelta(minutes=20)  # the tries took that long

    channel.send = slow_send  # type: ignore[method-assign]
    warning = late_warning(left=timedelta(hours=1))
    try:
        await notifier.handle([warning])
    finally:
        await notifier.close()
        await api.close()

    assert len(smtp_sink.mails) == 1, "it went, but short of its lead"
    assert fake_api.warned == []
    assert [(w.lease_id, w.warning_at) for w in fake_api.deferred] == [(warning.lease.lease_id, warning.warning_at)]
