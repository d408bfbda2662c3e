"""How mail words things: durations people read at a glance, and subjects that say what
happened."""

from __future__ import annotations

from datetime import timedelta

import pytest

from zc_common.messages import LeaseChange, LeaseStatus

from tests.notifier.factories import expiring_soon, lease_changed, lease_snapshot, utcnow
from zc_notifier.notices import notices_for
from zc_notifier.render import Renderer, in_words, time_left


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (30, "less than a minute"),
        (60, "1 minute"),
        (4 * 60 + 58, "5 minutes"),  # to the nearest minute: the 5-minute warning, sent a moment late
        (59 * 60 + 29, "59 minutes"),
        (59 * 60 + 59, "1 hour"),
        (3600, "1 hour"),
        (3600 + 5 * 60, "1 hour 5 minutes"),
        (23 * 3600 + 59 * 60, "23 hours 59 minutes"),
        (86_400, "1 day"),
        (2 * 86_400 + 3 * 3600 + 10 * 60, "2 days 3 hours"),
    ],
)
def test_durations_in_words(seconds: int, words: str) -> None:
    assert in_words(seconds) == words


def test_time_left_and_time_since_expiry() -> None:
    now = utcnow()
    assert time_left(now + timedelta(hours=1, seconds=5), now) == "1 hour left"
    assert time_left(now - timedelta(minutes=3), now) == "expired 3 minutes ago"


@pytest.mark.parametrize(
    ("build", "subject"),
    [
        (lambda: lease_changed(LeaseChange.created, lease_snapshot(instance_name="web", instance_id="i-0aaaaaaaaaaaaaaaa")),
         "ZeroCloud: new lease on web (i-0aaaaaaaaaaaaaaaa), expires "),
        (lambda: expiring_soon(lease_snapshot(instance_name=None, instance_id="i-0bbbbbbbbbbbbbbbb",
                                              expires_at=utcnow() + timedelta(hours=1, seconds=30))),
         "ZeroCloud: lease on i-0bbbbbbbbbbbbbbbb expires in 1 hour"),
        (lambda: lease_changed(LeaseChange.expired, lease_snapshot(instance_name="db", instance_id="i-0cccccccccccccccc",
                                                                   status=LeaseStatus.expired, mode="observe",
                                                                   action_on_expiry="terminate")),
         "ZeroCloud: observe mode: db (i-0cccccccccccccccc) would have been terminated"),
        (lambda: lease_changed(LeaseChange.reaped, lease_snapshot(instance_name="db", instance_id="i-0dddddddddddddddd",
                                                                  status=LeaseStatus.reaped), reason="stopped"),
         "ZeroCloud: db (i-0dddddddddddddddd) was stopped"),
    ],
)
def test_a_single_notice_has_a_subject_that_says_what_happened(build: object, subject: str) -> None:
    now = utcnow()
    notices = notices_for(build(), now)  # type: ignore[operator]
    mail = Renderer(mail_from="zerocloud@zerocloud.test").render(notices[0].recipient, notices, {}, now)
    assert mail.subject.startswith(subject)


def test_without_links_the_mail_still_renders_and_shows_none() -> None:
    now = utcnow()
    notices = notices_for(lease_changed(LeaseChange.created), now)
    mail = Renderer(mail_from="zerocloud@zerocloud.test").render(notices[0].recipient, notices, {}, now)
    assert "Renew " not in mail.text and "href=" not in mail.html
