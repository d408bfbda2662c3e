"""How pages write times, money and who did what; the chart's shapes; the onboarding
template's defaults — pure functions, no server."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from zc_api.cloudaccounts.onboarding import with_defaults
from zc_api.display import actor_name, human_duration, money, span, stamp, time_left
from zc_api.leases.policy import NEVER_EXPIRES
from zc_api.summary.service import DAY_STATES, Day
from zc_api.web.chart import stacked_bars
from zc_api.web.forms import split_duration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def left(status: str, expires_in: timedelta, ended_ago: timedelta | None = None) -> str:
    ended = NOW - ended_ago if ended_ago is not None else None
    return time_left(status=status, expires_at=NOW + expires_in, ended_at=ended, now=NOW)


def test_time_left_reads_like_a_person_says_it() -> None:
    assert left("active", timedelta(hours=2, minutes=10)) == "in 2 h"
    assert left("active", timedelta(minutes=45)) == "in 45 min"
    assert left("active", timedelta(days=3) - timedelta(seconds=5)) == "in 3 days"
    assert left("active", timedelta(seconds=20)) == "in under a minute"
    assert left("expired", -timedelta(minutes=5)) == "ended 5 min ago"
    assert left("reaped", -timedelta(days=3), ended_ago=timedelta(days=1)) == "ended 24 h ago"
    assert time_left(status="exempt", expires_at=NEVER_EXPIRES, ended_at=None, now=NOW) == "no end date"


def test_time_left_at_the_edges() -> None:
    # An exemption with an end counts down to it; one without has no end.
    assert left("exempt", timedelta(days=10)) == "in 10 days"
    assert time_left(status="active", expires_at=NEVER_EXPIRES, ended_at=None, now=NOW) == "no end date"
    # Ended leases say when they ended, not when they were due.
    assert left("released", timedelta(days=2), ended_ago=timedelta(minutes=90)) == "ended 90 min ago"
    assert left("reaped", -timedelta(hours=1)) == "ended"  # no end recorded: no guess


def test_durations_round_halves_up_at_every_unit() -> None:
    assert span(150) == "3 min"  # 2.5 min
    assert span(2.5 * 3600) == "3 h" and span(3.5 * 3600) == "4 h"
    assert span(2.5 * 86400) == "3 days" and span(3.5 * 86400) == "4 days"
    assert span(2 * 3600 - 31) == "119 min" and span(2 * 3600 - 30) == "2 h"
    assert span(-2.5 * 86400) == "3 days"


def test_stamps_are_utc_whatever_zone_the_time_came_in() -> None:
    paris = timezone(timedelta(hours=2))
    assert stamp(datetime(2026, 6, 1, 10, 0, tzinfo=paris)) == "2026-06-01 08:00 UTC"
    assert stamp(datetime(2026, 6, 1, 10, 0)) == "2026-06-01 10:00 UTC"
    assert stamp(None) == "—"


def test_a_policy_duration_is_said_in_the_largest_unit_that_says_it_exactly() -> None:
    assert human_duration(3 * 86400) == "3 days" and human_duration(86400) == "1 day"
    assert human_duration(90 * 60) == "90 minutes" and human_duration(3600) == "1 hour"
    assert human_duration(61) == "61 seconds" and human_duration(1) == "1 second"


def test_a_form_shows_a_duration_in_the_unit_the_page_says_it_in() -> None:
    for seconds in (60, 90 * 60, 3600, 36 * 3600, 86400, 30 * 86400, 61):
        number, unit = split_duration(seconds)
        assert human_duration(seconds) in (f"{number} {unit}", f"{number} {unit[:-1]}")


def test_money() -> None:
    assert money(None) == "no price"
    assert money(Decimal(0)) == "$0.00"
    assert money(Decimal("0.004")) == "under $0.01"
    assert money(Decimal("1234.565")) == "$1,234.57"


def test_actors_are_named_for_people() -> None:
    people = {"user:3": "ada@bigdb.com"}
    assert actor_name("user:3", people) == "ada@bigdb.com"
    assert actor_name("user:9", people) == "user 9"
    assert actor_name("service", people) == "ZeroCloud"
    assert actor_name("message:3c43-…", people) == "ZeroCloud"
    assert actor_name("owner:dan@bigdb.com", people) == "dan@bigdb.com (from a mailed link)"


def test_the_chart_stacks_each_days_states_within_the_plot() -> None:
    days = [Day(day=date(2026, 11, d), counts={**dict.fromkeys(DAY_STATES, 0), "active": d - 20, "expired": 1})
            for d in range(21, 26)]

    chart = stacked_bars(days)

    assert len(chart.bars) == 10 and not chart.empty
    assert all(0 <= bar.y and bar.y + bar.height <= chart.baseline + 0.5 for bar in chart.bars)
    tallest = [bar for bar in chart.bars if bar.x == max(b.x for b in chart.bars)]
    assert abs(sum(bar.height for bar in tallest) - (chart.baseline - 12)) < 1  # 6 of a 6-high scale
    assert {label.text for label in chart.y_labels} == {"0", "3", "6"}
    assert chart.x_labels[-1].text == "Nov 25"
    assert stacked_bars([Day(day=date(2026, 11, 25), counts=dict.fromkeys(DAY_STATES, 0))]).empty


TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
# a comment
Parameters:
  ExternalId:
    Type: String
  RoleName:
    Type: String
    Default: ZeroCloud
Resources:
  Thing:
    Type: AWS::SNS::Topic
"""


def test_template_defaults_are_set_or_replaced_and_the_rest_left_alone() -> None:
    text, filled = with_defaults(TEMPLATE, {"ExternalId": 'zc-a"b', "RoleName": "Ops", "Missing": "x"})

    assert filled == {"ExternalId": 'zc-a"b', "RoleName": "Ops"}
    assert '  ExternalId:\n    Default: "zc-a\\"b"\n    Type: String\n' in text
    assert '    Default: "Ops"\n' in text and "Default: ZeroCloud" not in text
    assert text.endswith("Resources:\n  Thing:\n    Type: AWS::SNS::Topic\n")
    assert with_defaults("Resources: {}\n", {"ExternalId": "x"}) == ("Resources: {}\n", {})
