"""POST /cloudevents: a usable event about an onboarded AWS account becomes exactly one
CloudEventReceived in the outbox; anything else is refused with the reason."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import func, select

from zc_common.cloudevents import state_change_event
from zc_common.messages import CloudEventReceived, decode

from tests.api.factories import Api, Tenant, make_cloud_account, make_lease, make_user_token, random_upstream
from zc_api.models import OutboxMessage

INSTANCE = "i-0123456789abcdef0"


async def _outbox(api: Api) -> list[OutboxMessage]:
    async with api.sessions() as session:
        return list((await session.scalars(select(OutboxMessage))).all())


def _event(upstream: str, **overrides: Any) -> dict[str, Any]:
    return {**state_change_event(account_id=upstream, region="us-east-1", instance_id=INSTANCE, state="running"),
            **overrides}


async def test_good_event_is_accepted_and_handed_over_exactly_once(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    event = _event(cloud["upstream_account_id"])

    response = await api.client.post("/api/v1/cloudevents", json=event, headers=tenant.admin.headers)

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["accepted"] is True
    assert accepted["account_id"] == cloud["upstream_account_id"]
    assert accepted["region"] == "us-east-1" and accepted["instance_ids"] == [INSTANCE]
    rows = await _outbox(api)
    assert [row.type for row in rows] == ["CloudEventReceived"]
    message = decode(rows[0].body.encode())
    assert isinstance(message, CloudEventReceived)
    assert str(message.message_id) == accepted["message_id"]
    assert message.event == event


async def test_a_developer_may_hand_in_events_about_their_own_instances(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    await make_lease(api, cloud, tenant.dev, instance_id=INSTANCE)

    response = await api.client.post(
        "/api/v1/cloudevents", json=_event(cloud["upstream_account_id"]), headers=tenant.dev.headers
    )

    assert response.status_code == 202, response.text


async def test_a_developer_cannot_make_zerocloud_look_at_anothers_or_an_unknown_instance(
    api: Api, tenant: Tenant
) -> None:
    cloud = await make_cloud_account(api, tenant)
    colleague = await make_user_token(api, tenant.account_id)
    await make_lease(api, cloud, colleague, instance_id=INSTANCE)
    event = _event(cloud["upstream_account_id"])

    theirs = await api.client.post("/api/v1/cloudevents", json=event, headers=tenant.dev.headers)
    unknown = await api.client.post(
        "/api/v1/cloudevents", json={**event, "detail": {**event["detail"], "instance-id": "i-00000000000000001"}},
        headers=tenant.dev.headers,
    )

    assert (theirs.status_code, unknown.status_code) == (403, 403)
    assert INSTANCE in theirs.json()["detail"] and "admin" in theirs.json()["detail"]
    assert await _outbox(api) == []


async def test_sns_wrapped_event_is_accepted(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    wrapped = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(_event(cloud["upstream_account_id"]))}

    response = await api.client.post("/api/v1/cloudevents", json=wrapped, headers=tenant.admin.headers)

    assert response.status_code == 202, response.text
    assert response.json()["instance_ids"] == [INSTANCE]


async def test_oversized_event_is_413_and_nothing_is_queued(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    limit = api.app.state.runtime.settings.max_cloudevent_bytes
    event = _event(cloud["upstream_account_id"], padding="x" * limit)

    response = await api.client.post("/api/v1/cloudevents", json=event, headers=tenant.dev.headers)

    assert response.status_code == 413
    assert await _outbox(api) == []


async def test_oversized_event_without_content_length_is_413(api: Api, tenant: Tenant) -> None:
    limit = api.app.state.runtime.settings.max_cloudevent_bytes

    async def chunks() -> Any:
        for _ in range(limit // 1024 + 2):
            yield b" " * 1024

    response = await api.client.post("/api/v1/cloudevents", content=chunks(), headers=tenant.dev.headers)

    assert response.status_code == 413


async def test_malformed_json_is_422(api: Api, tenant: Tenant) -> None:
    response = await api.client.post(
        "/api/v1/cloudevents", content=b'{"detail-type": ', headers={**tenant.dev.headers, "Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert "not JSON" in response.json()["detail"]
    assert await _outbox(api) == []


async def test_unknown_detail_type_is_422_with_the_reason(api: Api, tenant: Tenant) -> None:
    cloud = await make_cloud_account(api, tenant)
    event = _event(cloud["upstream_account_id"], **{"detail-type": "EBS Volume Notification"})

    response = await api.client.post("/api/v1/cloudevents", json=event, headers=tenant.dev.headers)

    assert response.status_code == 422
    assert "EBS Volume Notification" in response.json()["detail"]
    assert await _outbox(api) == []


async def test_event_for_an_aws_account_not_onboarded_is_422(api: Api, tenant: Tenant) -> None:
    await make_cloud_account(api, tenant)
    stranger = random_upstream()

    response = await api.client.post("/api/v1/cloudevents", json=_event(stranger), headers=tenant.dev.headers)

    assert response.status_code == 422
    assert f"AWS account {stranger} is not onboarded" in response.json()["detail"]
    assert await _outbox(api) == []


async def test_event_for_another_tenants_aws_account_is_422_like_an_unknown_one(
    api: Api, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await make_cloud_account(api, other_tenant)
    upstream = theirs["upstream_account_id"]

    response = await api.client.post("/api/v1/cloudevents", json=_event(upstream), headers=tenant.admin.headers)

    assert response.status_code == 422
    assert f"AWS account {upstream} is not onboarded" in response.json()["detail"]
    async with api.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0
