"""What people receive: one mail per recipient per digest window, in text and HTML, with
the instance, its account, its expiry and the renew / shut down links; never the same
notice twice."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from zc_common.bus import Bus
from zc_common.bus.memory import InProcessBus
from zc_common.internal_api import LeaseAction, LeaseRef
from zc_common.messages import LeaseChange, LeaseStatus

from tests.notifier.conftest import StartNotifier
from tests.notifier.factories import (
    ADMINS,
    OTHER_OWNER,
    OWNER,
    PUBLIC_URL,
    FakeApi,
    SmtpSink,
    blast_radius_halted,
    expiring_soon,
    lease_changed,
    lease_snapshot,
    links_in,
    utcnow,
)
from tests.support.waiting import eventually

# Long enough for a second mail to show up if one were (wrongly) sent.
SETTLE = 1.5


async def test_new_lease_mails_the_owner_with_details_and_both_links(
    bus: Bus, start_notifier: StartNotifier, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(bus)
    lease = lease_snapshot(
        instance_id="i-0123456789abcdef0", instance_type="m5.large", instance_name="ci-runner",
        region="eu-central-1", cloud_account_name="bigdb-dev", upstream_account_id="123456789012",
        expires_at=utcnow() + timedelta(days=2, hours=3, minutes=10),
    )
    message = lease_changed(LeaseChange.created, lease)

    await bus.publish(message)

    await eventually(lambda: len(smtp_sink.mails) == 1)
    mail = smtp_sink.mails[0]
    assert mail.rcpt_tos == [OWNER]
    assert mail.to == OWNER
    assert "new lease" in mail.subject and "i-0123456789abcdef0" in mail.subject
    for part in (mail.text, mail.html):
        for expected in ("ci-runner", "i-0123456789abcdef0", "m5.large", "eu-central-1", "bigdb-dev (123456789012)",
                         lease.expires_at.strftime("%Y-%m-%d %H:%M UTC"), "2 days 3 hours left",
                         "the instance will be stopped"):
            assert expected in part, f"{expected!r} missing"
    renew, shutdown = sorted(links_in(mail.text))
    assert renew.startswith(f"{PUBLIC_URL}/a/renew-{lease.lease_id}-1-")
    assert shutdown.startswith(f"{PUBLIC_URL}/a/shutdown-{lease.lease_id}-1-")
    assert f'href="{renew}"' in mail.html and f'href="{shutdown}"' in mail.html
    # Recorded as sent once the server took the mail: a moment after the sink saw it.
    await eventually(lambda: fake_api.sent == {f"{message.message_id}:{OWNER}"})


async def test_fifty_warnings_for_one_owner_in_one_window_are_one_digest(
    bus: Bus, start_notifier: StartNotifier, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(bus, digest_window=1.0)
    leases = [lease_snapshot(expires_at=utcnow() + timedelta(hours=1)) for _ in range(50)]

    # Warnings trickling in over half the window, as timers fire one after another.
    for start in range(0, 50, 10):
        await bus.publish(*(expiring_soon(lease) for lease in leases[start:start + 10]))
        await asyncio.sleep(0.1)

    await eventually(lambda: len(smtp_sink.mails) >= 1)
    await asyncio.sleep(SETTLE)
    assert len(smtp_sink.mails) == 1
    digest = smtp_sink.mails[0]
    assert digest.rcpt_tos == [OWNER]
    assert "50 leases expiring soon" in digest.subject
    for lease in leases:
        assert lease.instance_id in digest.text and lease.instance_id in digest.html
        assert f"/a/renew-{lease.lease_id}-1-" in digest.text
    assert len(list(links_in(digest.text))) == 100
    assert fake_api.requests["action_links"] == 1, "links come from one api call per batch"
    assert len(fake_api.link_requests[0].leases) == 50


async def test_two_owners_in_one_window_get_one_mail_each(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink
) -> None:
    await start_notifier(memory_bus)
    mine = [expiring_soon(lease_snapshot(expires_at=utcnow() + timedelta(hours=1))) for _ in range(3)]
    theirs = [expiring_soon(lease_snapshot(owner_email=OTHER_OWNER, expires_at=utcnow() + timedelta(hours=1)))
              for _ in range(2)]

    await memory_bus.publish(*mine, *theirs)

    await eventually(lambda: len(smtp_sink.mails) >= 2)
    await asyncio.sleep(SETTLE)
    assert sorted(mail.to for mail in smtp_sink.mails) == sorted([OWNER, OTHER_OWNER])
    by_owner = {mail.to: mail for mail in smtp_sink.mails}
    assert all(m.lease.instance_id in by_owner[OWNER].text for m in mine)
    assert not any(m.lease.instance_id in by_owner[OWNER].text for m in theirs)
    assert all(m.lease.instance_id in by_owner[OTHER_OWNER].text for m in theirs)


async def test_owner_email_spellings_are_one_recipient(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink
) -> None:
    await start_notifier(memory_bus)

    await memory_bus.publish(
        lease_changed(LeaseChange.created, lease_snapshot(owner_email=OWNER.upper())),
        lease_changed(LeaseChange.created, lease_snapshot(owner_email=f" {OWNER} ")),
    )

    await eventually(lambda: len(smtp_sink.mails) >= 1)
    await asyncio.sleep(SETTLE)
    assert [mail.rcpt_tos for mail in smtp_sink.mails] == [[OWNER]]


async def test_the_same_message_delivered_twice_is_mailed_once(
    bus: Bus, start_notifier: StartNotifier, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(bus)
    message = lease_changed(LeaseChange.created)

    await bus.publish(message, message)  # a re-delivery inside one window
    await eventually(lambda: len(smtp_sink.mails) >= 1)
    await bus.publish(message)  # and one after the mail went out
    await eventually(lambda: fake_api.requests["reserve"] >= 2)
    await asyncio.sleep(SETTLE)

    assert len(smtp_sink.mails) == 1
    # One notice, not a digest of the same notice twice.
    assert smtp_sink.mails[0].subject.startswith(f"ZeroCloud: new lease on {message.lease.instance_name}")
    assert fake_api.sent == {f"{message.message_id}:{OWNER}"}


async def test_a_warning_for_a_lease_that_already_expired_is_not_mailed_but_the_reap_moves(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(memory_bus)
    late = expiring_soon(lease_snapshot(expires_at=utcnow() - timedelta(minutes=1)),
                         warning_at=utcnow() - timedelta(hours=1, minutes=1))
    timely = expiring_soon(lease_snapshot(expires_at=utcnow() + timedelta(minutes=50)))

    await memory_bus.publish(late, timely)

    await eventually(lambda: len(smtp_sink.mails) >= 1 and fake_api.requests["defer"] >= 1)
    await asyncio.sleep(SETTLE)
    [mail] = smtp_sink.mails
    assert timely.lease.instance_id in mail.text
    assert late.lease.instance_id not in mail.text
    assert "49 minutes left" in mail.text or "50 minutes left" in mail.text
    assert not any(key.startswith(str(late.message_id)) for key in fake_api.reserved)
    # Not dropped: the api is asked to move the reap (its new version warns at once).
    assert [(w.lease_id, w.version, w.warning_at) for w in fake_api.deferred] == [
        (late.lease.lease_id, 1, late.warning_at)
    ]


async def test_observe_mode_expiry_says_what_would_have_happened_and_that_nothing_was_stopped(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink
) -> None:
    await start_notifier(memory_bus)
    lease = lease_snapshot(status=LeaseStatus.expired, mode="observe", action_on_expiry="stop",
                           expires_at=utcnow() - timedelta(seconds=5))

    await memory_bus.publish(
        lease_changed(LeaseChange.expired, lease, reason="observe mode: would have stopped i-…")
    )

    await eventually(lambda: len(smtp_sink.mails) == 1)
    mail = smtp_sink.mails[0]
    assert "would have been stopped" in mail.subject
    for part in (mail.text, mail.html):
        assert "would have been stopped" in part
        assert "observe mode" in part
    assert "nothing was stopped" in mail.text
    assert "nothing was stopped" in re.sub(r"<[^>]+>", "", mail.html)
    assert len(list(links_in(mail.text))) == 2, "an observed lease stays renewable"


async def test_a_warning_in_observe_mode_says_nothing_will_be_stopped(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink
) -> None:
    await start_notifier(memory_bus)

    await memory_bus.publish(expiring_soon(lease_snapshot(mode="observe", expires_at=utcnow() + timedelta(hours=24))))

    await eventually(lambda: len(smtp_sink.mails) == 1)
    assert "observe mode: nothing will be stopped" in smtp_sink.mails[0].text
    assert "1 day left" in smtp_sink.mails[0].text, "24 hours less the moment it took, to the nearest minute"


async def test_reaped_and_reap_skipped_tell_the_owner_what_happened(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(memory_bus)
    reaped = lease_snapshot(status=LeaseStatus.reaped, action_on_expiry="terminate")
    skipped = lease_snapshot(status=LeaseStatus.expired)

    await memory_bus.publish(
        lease_changed(LeaseChange.reaped, reaped, reason="terminated"),
        lease_changed(LeaseChange.reap_skipped, skipped, reason="stop protection enabled"),
    )

    await eventually(lambda: len(smtp_sink.mails) >= 1)
    await asyncio.sleep(SETTLE)
    [mail] = smtp_sink.mails
    assert "1 instance not shut down, 1 instance shut down" in mail.subject
    assert f"{reaped.instance_name} ({reaped.instance_id}) was terminated" in mail.text
    assert f"{skipped.instance_name} ({skipped.instance_id}) was not stopped" in mail.text
    assert "stop protection enabled" in mail.text
    # Links only where they can still act: the skipped lease is live, the reaped one is not.
    assert [ref for request in fake_api.link_requests for ref in request.leases] == [
        LeaseRef(lease_id=skipped.lease_id, version=skipped.version)
    ]
    assert f"/a/renew-{skipped.lease_id}-" in mail.text
    assert f"-{reaped.lease_id}-" not in " ".join(links_in(mail.text))


async def test_blast_radius_halt_mails_each_admin(
    bus: Bus, start_notifier: StartNotifier, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(bus)
    halted = blast_radius_halted()

    await bus.publish(halted)

    await eventually(lambda: len(smtp_sink.mails) >= 2)
    await asyncio.sleep(SETTLE)
    assert sorted(mail.to for mail in smtp_sink.mails) == sorted(ADMINS)
    for mail in smtp_sink.mails:
        assert "blast-radius" in mail.subject and halted.upstream_account_id in mail.subject
        assert halted.cap in mail.text and halted.cap in mail.html
        assert "5 expired lease(s): 11, 12, 13, 14, 15" in mail.text
    assert fake_api.sent == {f"{halted.message_id}:{admin}" for admin in ADMINS}
    assert fake_api.requests["action_links"] == 0


async def test_changes_people_made_themselves_are_not_mailed(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(memory_bus)

    await memory_bus.publish(
        lease_changed(LeaseChange.renewed),
        lease_changed(LeaseChange.released, lease_snapshot(status=LeaseStatus.released)),
        lease_changed(LeaseChange.shutdown_requested, lease_snapshot(status=LeaseStatus.expired)),
    )
    await asyncio.sleep(SETTLE)

    assert smtp_sink.mails == []
    assert fake_api.requests["reserve"] == 0


async def test_links_are_fetched_once_per_batch_for_each_lease_version(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(memory_bus)
    lease = lease_snapshot(expires_at=utcnow() + timedelta(hours=1))

    # The new-lease notice and a warning for the same lease version: one ref, one call.
    await memory_bus.publish(lease_changed(LeaseChange.created, lease), expiring_soon(lease))

    await eventually(lambda: len(smtp_sink.mails) == 1)
    assert [request.leases for request in fake_api.link_requests] == [
        [LeaseRef(lease_id=lease.lease_id, version=1)]
    ]
    assert fake_api.link_requests[0].actions == [LeaseAction.renew, LeaseAction.shutdown]
    assert "1 lease expiring soon, 1 new lease" in smtp_sink.mails[0].subject


async def test_instance_names_are_escaped_in_html_and_kept_out_of_headers(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink
) -> None:
    await start_notifier(memory_bus)
    lease = lease_snapshot(instance_name='<script>alert("x")</script>\r\nBcc: victim@example.com')

    await memory_bus.publish(lease_changed(LeaseChange.created, lease))

    await eventually(lambda: len(smtp_sink.mails) == 1)
    mail = smtp_sink.mails[0]
    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert mail.message["Bcc"] is None
    assert mail.rcpt_tos == [OWNER]


@pytest.mark.parametrize("count", [1, 3])
async def test_every_mail_has_a_text_and_an_html_part(
    count: int, start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink
) -> None:
    await start_notifier(memory_bus)

    await memory_bus.publish(*(lease_changed(LeaseChange.created) for _ in range(count)))

    await eventually(lambda: len(smtp_sink.mails) == 1)
    mail = smtp_sink.mails[0]
    assert mail.message.get_content_type() == "multipart/alternative"
    assert mail.text.strip() and mail.html.strip().startswith("<!DOCTYPE html>")
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.mail_from == "zerocloud@zerocloud.test"


async def test_a_new_owner_is_told_the_lease_is_theirs_now(
    start_notifier: StartNotifier, memory_bus: InProcessBus, smtp_sink: SmtpSink
) -> None:
    await start_notifier(memory_bus)

    await memory_bus.publish(lease_changed(LeaseChange.owner_changed, lease_snapshot(owner_email=OTHER_OWNER)))

    await eventually(lambda: len(smtp_sink.mails) == 1)
    assert smtp_sink.mails[0].to == OTHER_OWNER
    assert "You are now the owner of this instance" in smtp_sink.mails[0].text
    assert "You are now the owner of this instance" in smtp_sink.mails[0].html
    assert len(list(links_in(smtp_sink.mails[0].text))) == 2
