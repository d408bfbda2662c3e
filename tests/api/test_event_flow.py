"""Verify says per region whether events flow (issue 10): with ZeroCloud's event queue
set, verify sends a test event through each topic it bound and subscribed, and the check
events_flow:<region> passes only when the ingestor, polling the queue, saw it arrive —
through SNS into SQS in the moto server, as in AWS. Without an ingestor it fails, saying
what to check. (A probe through another tenant's topic: tests/ingestor/test_poller.py;
moto keeps SNS apart per account, so here the customer's AWS account is the moto account
ZeroCloud itself runs in, where a topic and the queue subscribed to it deliver.)"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

from zc_common.aws import AwsAccess
from zc_common.bus.memory import InProcessBus
from zc_common.settings import ApiSettings, IngestorSettings

from tests.api.factories import Api, Tenant, make_cloud_account, make_tenant, running_api
from tests.support.aws_doubles import deploy_stack
from tests.support.credentials import INGESTOR_TOKEN
from tests.support.ports import free_port
from tests.support.serving import serving_api
from zc_ingestor.main import wired

SAME_ACCOUNT = "123456789012"  # moto's own


async def zerocloud_queue(moto: str) -> tuple[str, str]:
    async with AwsAccess(endpoint_url=moto, max_attempts=2).client("sqs") as sqs:  # ZeroCloud's own account
        url = (await sqs.create_queue(QueueName=f"zerocloud-events-{secrets.token_hex(4)}"))["QueueUrl"]
        arn = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"]))["Attributes"]["QueueArn"]
    return url, arn


@contextlib.asynccontextmanager
async def stack(
    api_settings: Callable[..., ApiSettings], moto: str, *, queue_arn: str, queue_url: str | None, wait: float = 15,
) -> AsyncIterator[Api]:
    """The api with the queue set (in process, and served on ports of its own for the
    ingestor, as two replicas of one installation); with ``queue_url``, an ingestor polling it."""
    bus = InProcessBus()
    settings = api_settings(event_queue_arn=queue_arn, verify_event_wait_seconds=wait, http_port=free_port(),
                            internal_port=free_port())
    async with serving_api(settings, bus=bus) as served, running_api(settings) as api:
        if queue_url is None:
            yield api
            return
        ingestor = IngestorSettings(
            amqp_url="memory://", bus="memory", aws_endpoint_url=moto, api_url=served.internal_url,
            service_token=INGESTOR_TOKEN, account_cache_seconds=60, event_queue_urls=[queue_url],
            poll_wait_seconds=1,
        )
        async with wired(ingestor, bus=bus) as polling:
            await polling.start()  # its pollers, as the service's main does
            yield api
    await bus.close()


async def verify(api: Api, tenant: Tenant, cloud: dict[str, Any]) -> dict[str, dict[str, Any]]:
    response = await api.client.post(f"/api/v1/cloudaccounts/{cloud['id']}/verify", headers=tenant.admin.headers)
    assert response.status_code == 200, response.text
    return {check["name"]: check for check in response.json()["checks"]} | {"_report": response.json()}


async def test_a_test_event_through_the_topic_reaches_the_ingestor(
    api_settings: Callable[..., ApiSettings], moto: str
) -> None:
    queue_url, queue_arn = await zerocloud_queue(moto)
    async with stack(api_settings, moto, queue_arn=queue_arn, queue_url=queue_url) as api:
        tenant = await make_tenant(api)
        cloud = await make_cloud_account(api, tenant, upstream=SAME_ACCOUNT)
        topic = await deploy_stack(moto, cloud, "us-east-1", name=f"zerocloud-{cloud['id']}-{secrets.token_hex(3)}")

        # The first verify binds the topic and subscribes the queue, commits, then probes;
        # the second probes a topic bound long since (the ingestor has it cached).
        first = await verify(api, tenant, cloud)
        again = await verify(api, tenant, cloud)

    for report in (first, again):
        flow = report["events_flow:us-east-1"]
        assert flow["ok"], report["_report"]
        assert flow["detail"].startswith(f"a test event sent through {topic} reached ZeroCloud in ")
        assert report["_report"]["ok"] is True


async def test_without_an_ingestor_the_flow_check_fails_and_says_what_to_check(
    api_settings: Callable[..., ApiSettings], moto: str
) -> None:
    _, queue_arn = await zerocloud_queue(moto)
    async with stack(api_settings, moto, queue_arn=queue_arn, queue_url=None, wait=1) as api:
        tenant = await make_tenant(api)
        cloud = await make_cloud_account(api, tenant, upstream=SAME_ACCOUNT)
        await deploy_stack(moto, cloud, "us-east-1", name=f"zerocloud-{cloud['id']}-{secrets.token_hex(3)}")

        report = await verify(api, tenant, cloud)
        audit = (await api.client.get("/api/v1/audit-events", params={"action": "cloud_account.events_probed"},
                                      headers=tenant.admin.headers)).json()["data"]

    flow = report["events_flow:us-east-1"]
    assert flow["ok"] is False and report["_report"]["ok"] is False
    assert "did not reach ZeroCloud within 1 s" in flow["detail"] and "ZC_EVENT_QUEUE_URLS" in flow["detail"]
    assert report["events_subscription:us-east-1"]["ok"]  # the rest still says what works
    assert [event["details"]["not_flowing"] for event in audit] == [["us-east-1"]]


async def test_an_arrival_through_a_topic_bound_to_no_cloud_account_records_nothing(api: Api, tenant: Tenant) -> None:
    from sqlalchemy import select

    from tests.support.credentials import bearer
    from zc_api.database import transaction
    from zc_api.models import EventFlow

    cloud = await make_cloud_account(api, tenant)
    bound = f"arn:aws:sns:us-east-1:{cloud['upstream_account_id']}:ZeroCloudEvents"
    patched = await api.client.patch(f"/api/v1/cloudaccounts/{cloud['id']}", json={"topic_arns": {"us-east-1": bound}},
                                     headers=tenant.admin.headers)
    assert patched.status_code == 200, patched.text
    stranger = "arn:aws:sns:us-east-1:999999999999:ZeroCloudEvents"
    at = "2026-12-03T06:00:00Z"

    for topic, probe in ((stranger, "stranger-probe-0123456789"), (bound, "bound-probe-0123456789ab")):
        response = await api.internal.post(
            "/internal/v1/cloudaccounts/event-arrivals", headers=bearer("ingestor"),
            json={"arrivals": [{"topic_arn": topic, "at": at, "probe": probe}]},
        )
        assert response.status_code == 204, response.text

    async with transaction(api.sessions) as session:
        rows = (await session.scalars(select(EventFlow))).all()
    assert [(r.cloud_account_id, r.region, r.topic_arn, r.last_probe) for r in rows] == [
        (cloud["id"], "us-east-1", bound, "bound-probe-0123456789ab"),
    ]
