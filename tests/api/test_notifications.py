"""Mail idempotency: reserve answers only the keys not sent yet; sent records them."""

from __future__ import annotations

from tests.api.factories import Api, Tenant
from tests.api.records import internal_client, post_internal


async def test_reserve_answers_only_keys_not_sent(api: Api) -> None:
    async with internal_client(api, "notifier") as client:
        first = await client.reserve_notifications(["m1:a@x.com", "m1:b@x.com", "m2:a@x.com"])
        await client.notifications_sent(["m1:a@x.com"])
        second = await client.reserve_notifications(["m1:a@x.com", "m1:b@x.com", "m3:c@x.com"])
        await client.notifications_sent(["m1:b@x.com", "m3:c@x.com"])
        third = await client.reserve_notifications(["m1:a@x.com", "m1:b@x.com", "m3:c@x.com", "m2:a@x.com"])

    assert first == ["m1:a@x.com", "m1:b@x.com", "m2:a@x.com"]
    # Reserved but never marked sent (that send failed): answered again, to be retried.
    assert second == ["m1:b@x.com", "m3:c@x.com"]
    assert third == ["m2:a@x.com"]


async def test_keys_can_be_marked_sent_without_a_reservation_and_twice(api: Api) -> None:
    async with internal_client(api, "notifier") as client:
        await client.notifications_sent(["m9:z@x.com"])
        await client.notifications_sent(["m9:z@x.com"])
        answered = await client.reserve_notifications(["m9:z@x.com", "m9:z@x.com"])

    assert answered == []


async def test_duplicate_keys_are_answered_once(api: Api) -> None:
    async with internal_client(api, "notifier") as client:
        assert await client.reserve_notifications(["k", "k", "j"]) == ["k", "j"]


async def test_an_empty_or_oversized_key_is_422(api: Api) -> None:
    empty = await post_internal(api, "/notifications/reserve", {"keys": [""]})
    long = await post_internal(api, "/notifications/sent", {"keys": ["x" * 600]})

    assert empty.status_code == 422 and long.status_code == 422


async def test_notifications_are_for_the_notifier_only(api: Api, tenant: Tenant) -> None:
    response = await api.internal.post(
        "/internal/v1/notifications/reserve", json={"keys": ["k"]}, headers=tenant.admin.headers
    )

    assert response.status_code == 404
