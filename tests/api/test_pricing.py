"""The price table and the estimates made from it: cost so far and spend avoided."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from zc_api.models import Lease, Resource
from zc_api.pricing.service import cost_so_far, hourly_price, price_table, spend_avoided

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def resource(*, state: str = "running", instance_type: str | None = "t3.micro", region: str = "us-east-1",
             launched: datetime | None = NOW - 10 * HOUR, observed: datetime = NOW) -> Resource:
    return Resource(
        id=1, account_id=1, cloud_account_id=1, region=region, instance_id="i-1", instance_type=instance_type,
        state=state, launch_time=launched, first_seen_at=NOW - 9 * HOUR, observed_at=observed,
    )


def lease(*, status: str = "active", created: datetime = NOW - 9 * HOUR, reaped: datetime | None = None,
          ended: datetime | None = None) -> Lease:
    return Lease(
        id=1, resource_id=1, account_id=1, cloud_account_id=1, owner_email="a@b.c", owner_reason="tag",
        expires_at=NOW, status=status, created_at=created, reaped_at=reaped, ended_at=ended,
    )


def test_the_table_covers_the_common_families_in_the_main_regions() -> None:
    table = price_table()
    for family in ("t2", "t3", "t3a", "t4g", "m5", "m6i", "m7i", "c5", "c6i", "c7i", "r5", "r6i"):
        for region in ("us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1"):
            assert (f"{family}.large", region) in table, (family, region)
            assert (f"{family}.xlarge", region) in table
    assert hourly_price("t3.micro", "us-east-1") == Decimal("0.0104")
    assert hourly_price("m5.4xlarge", "eu-central-1") == Decimal("0.92")
    assert all(price > 0 for price in table.values())


def test_an_unknown_type_or_region_has_no_price() -> None:
    assert hourly_price("x9.huge", "us-east-1") is None
    assert hourly_price("t3.micro", "mars-north-1") is None
    assert hourly_price(None, "us-east-1") is None


def test_a_running_instance_costs_its_price_times_the_hours_since_launch() -> None:
    assert cost_so_far(resource(), lease(), NOW) == Decimal("0.0104") * 10


def test_without_a_launch_time_the_lease_start_counts() -> None:
    assert cost_so_far(resource(launched=None), lease(), NOW) == Decimal("0.0104") * 9


def test_a_launch_after_the_lease_began_belongs_to_a_later_start() -> None:
    # The instance was reaped, started again (AWS moved its launch time): the old lease
    # cost from its own start to its reap.
    old = lease(status="reaped", created=NOW - 9 * HOUR, reaped=NOW - 5 * HOUR, ended=NOW - 5 * HOUR)

    assert cost_so_far(resource(launched=NOW - HOUR), old, NOW) == Decimal("0.0104") * 4


def test_a_reaped_instance_leased_again_costs_each_lease_its_own_hours() -> None:
    # Leased 9 h ago, reaped 5 h ago, started again 2 h ago (a new lease), stopped 1 h ago.
    relaunched = resource(state="stopped", launched=NOW - 2 * HOUR, observed=NOW)
    old = lease(status="reaped", created=NOW - 9 * HOUR, reaped=NOW - 5 * HOUR, ended=NOW - 5 * HOUR)
    new = lease(created=NOW - 2 * HOUR + timedelta(seconds=30))

    assert cost_so_far(relaunched, old, NOW, stopped_at=NOW - HOUR) == Decimal("0.0104") * 4
    assert cost_so_far(relaunched, new, NOW, stopped_at=NOW - HOUR) == Decimal("0.0104") * 1
    # Its spend avoided stops when the new lease began.
    assert spend_avoided(relaunched, old, NOW, restarted_at=new.created_at) == Decimal("0.0104") * (
        Decimal(str((new.created_at - (NOW - 5 * HOUR)).total_seconds())) / 3600)


def test_cost_stops_when_the_instance_was_reaped_or_the_lease_ended() -> None:
    reaped = lease(status="reaped", reaped=NOW - 4 * HOUR, ended=NOW - 4 * HOUR)
    released = lease(status="released", ended=NOW - 2 * HOUR)

    assert cost_so_far(resource(state="stopped", observed=NOW), reaped, NOW) == Decimal("0.0104") * 6
    assert cost_so_far(resource(state="terminated"), released, NOW) == Decimal("0.0104") * 8


def test_cost_stops_when_someone_stopped_the_instance() -> None:
    stopped = resource(state="stopped", observed=NOW)

    assert cost_so_far(stopped, lease(), NOW, stopped_at=NOW - 7 * HOUR) == Decimal("0.0104") * 3
    # Not knowing when: the last observation is the latest it can have stopped.
    assert cost_so_far(resource(state="stopped", observed=NOW - 2 * HOUR), lease(), NOW) == Decimal("0.0104") * 8


def test_no_price_means_no_cost_estimate() -> None:
    assert cost_so_far(resource(instance_type="x9.huge"), lease(), NOW) is None


def test_a_reaped_instance_saves_its_price_from_the_reap_until_now() -> None:
    reaped = lease(status="reaped", reaped=NOW - 5 * HOUR, ended=NOW - 5 * HOUR)

    assert spend_avoided(resource(state="stopped"), reaped, NOW) == Decimal("0.0104") * 5


def test_spend_avoided_is_capped_at_thirty_days() -> None:
    long_ago = lease(status="reaped", created=NOW - timedelta(days=91), reaped=NOW - timedelta(days=90))

    assert spend_avoided(resource(launched=None), long_ago, NOW) == Decimal("0.0104") * 30 * 24


def test_spend_avoided_stops_when_the_instance_was_started_again() -> None:
    reaped = lease(status="reaped", reaped=NOW - 5 * HOUR)

    assert spend_avoided(resource(), reaped, NOW, restarted_at=NOW - 3 * HOUR) == Decimal("0.0104") * 2


def test_spend_avoided_since_counts_only_the_later_part() -> None:
    reaped = lease(status="reaped", reaped=NOW - 5 * HOUR)

    assert spend_avoided(resource(), reaped, NOW, since=NOW - 2 * HOUR) == Decimal("0.0104") * 2
    assert spend_avoided(resource(), reaped, NOW, since=NOW + HOUR) == 0


def test_leases_that_were_not_reaped_avoided_nothing() -> None:
    for status in ("active", "expired", "released", "exempt", "reaping"):
        assert spend_avoided(resource(), lease(status=status), NOW) == 0
    assert spend_avoided(resource(instance_type="x9.huge"), lease(status="reaped", reaped=NOW - HOUR), NOW) is None
