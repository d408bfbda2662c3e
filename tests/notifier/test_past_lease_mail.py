"""Instances running past their lease are never forgotten (issue 10): the daily list goes
to every admin with each instance and what it costs a day, and to each owner with only
their own; and a lease the reaper keeps having to leave alone (hourly while the
blast-radius cap holds it) mails its owner once a day, not at every try."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from zc_common.bus import Bus
from zc_common.messages import LeaseChange, LeasesPastTheirEnd, LeaseStatus, PastLeaseItem

from tests.notifier.conftest import StartNotifier
from tests.notifier.factories import (
    ADMINS,
    OTHER_OWNER,
    OWNER,
    PUBLIC_URL,
    FakeApi,
    SmtpSink,
    lease_changed,
    lease_snapshot,
    utcnow,
)
from tests.support.waiting import eventually

SETTLE = 1.5


def past(owner: str, instance_id: str, *, per_day: float | None, why: str, days_ago: int = 2) -> PastLeaseItem:
    lease = lease_snapshot(owner_email=owner, instance_id=instance_id, status=LeaseStatus.expired, mode="enforce",
                           expires_at=utcnow() - timedelta(days=days_ago), instance_type="m5.large")
    return PastLeaseItem(lease=lease, why=why, usd_per_day=per_day)


def digest(*items: PastLeaseItem, more: int = 0) -> LeasesPastTheirEnd:
    return LeasesPastTheirEnd(
        account_id=1, account_name="BigDB", day=utcnow().date(), admin_emails=list(ADMINS), items=list(items),
        more=more, leases_url=f"{PUBLIC_URL}/leases?state=expired",
    )


async def test_admins_get_every_instance_with_its_cost_and_owners_their_own(
    bus: Bus, start_notifier: StartNotifier, smtp_sink: SmtpSink
) -> None:
    await start_notifier(bus)
    message = digest(
        past(OWNER, "i-0aaaaaaaaaaaaaaa1", per_day=2.304, why="stop protection is on: the reaper left it as it was"),
        past(OWNER, "i-0aaaaaaaaaaaaaaa2", per_day=None, why="held by the blast-radius cap"),
        past(OTHER_OWNER, "i-0bbbbbbbbbbbbbbb1", per_day=0.25, why="termination protection is on"),
    )

    await bus.publish(message)

    await eventually(lambda: len(smtp_sink.mails) == 4)
    await asyncio.sleep(SETTLE)
    assert len(smtp_sink.mails) == 4
    by_recipient = {mail.to: mail for mail in smtp_sink.mails}
    assert sorted(by_recipient) == sorted([*ADMINS, OWNER, OTHER_OWNER])
    for admin in ADMINS:
        mail = by_recipient[admin]
        assert "3 instances running past their lease, about $2.55 a day (some prices not known)" in mail.subject
        for part in (mail.text, mail.html):
            for expected in ("i-0aaaaaaaaaaaaaaa1", "i-0aaaaaaaaaaaaaaa2", "i-0bbbbbbbbbbbbbbb1", "$2.30 a day",
                             "$0.25 a day", "price not known", "stop protection is on", "2 days ago",
                             f"{PUBLIC_URL}/leases?state=expired", OWNER, OTHER_OWNER):
                assert expected in part, (admin, expected)
    mine = by_recipient[OWNER]
    assert "2 instances running past their lease, about $2.30 a day" in mine.subject
    assert "i-0bbbbbbbbbbbbbbb1" not in mine.text and "i-0bbbbbbbbbbbbbbb1" not in mine.html
    theirs = by_recipient[OTHER_OWNER]
    assert "1 instance running past its lease, about $0.25 a day" in theirs.subject
    assert "i-0aaaaaaaaaaaaaaa1" not in theirs.text


async def test_the_daily_list_is_mailed_once_even_when_delivered_twice(
    bus: Bus, start_notifier: StartNotifier, smtp_sink: SmtpSink
) -> None:
    await start_notifier(bus)
    message = digest(past(OWNER, "i-0ccccccccccccccc1", per_day=1.0, why="stop protection"), more=12)

    await bus.publish(message)
    await eventually(lambda: len(smtp_sink.mails) == 3)
    await bus.publish(message)
    await asyncio.sleep(SETTLE)

    assert len(smtp_sink.mails) == 3  # two admins and the owner, once each
    assert all("and 12 more" in mail.text for mail in smtp_sink.mails if mail.to in ADMINS)


async def test_an_owner_hears_of_a_lease_left_alone_once_a_day_not_at_every_try(
    bus: Bus, start_notifier: StartNotifier, smtp_sink: SmtpSink, fake_api: FakeApi
) -> None:
    await start_notifier(bus)
    held = lease_snapshot(status=LeaseStatus.expired, mode="enforce", expires_at=utcnow() - timedelta(hours=3))
    now = utcnow()
    tries = [
        lease_changed(LeaseChange.reap_skipped, held.model_copy(update={"version": version}), expire_at=None,
                      reason="held by the blast-radius cap; tried again within the hour",
                      occurred_at=now + timedelta(seconds=version))
        for version in (2, 3, 4)
    ]
    tomorrow = lease_changed(LeaseChange.reap_skipped, held.model_copy(update={"version": 5}), expire_at=None,
                             reason="held by the blast-radius cap", occurred_at=now + timedelta(days=1))

    for message in tries:
        await bus.publish(message)
        await asyncio.sleep(0.3)
    await eventually(lambda: len(smtp_sink.mails) >= 1)
    await asyncio.sleep(SETTLE)
    assert [mail.to for mail in smtp_sink.mails] == [OWNER]
    await bus.publish(tomorrow)
    await eventually(lambda: len(smtp_sink.mails) == 2)
    assert "was not stopped" in smtp_sink.mails[1].text
