"""Builders for the ingestor's tests: the customer's hands in moto, ZeroCloud's event
queues, a fake of the api's internal endpoints, a recording bus, and events as AWS sends
them."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from fastapi import HTTPException, Request

from zc_common.aws import AwsAccess
from zc_common.bus.memory import InProcessBus
from zc_common.internal_api import CloudAccountRecord, EventArrival, EventArrivals, SweepReport
from zc_common.messages import CloudAccountMode, Message, ResourceChange
from zc_common.settings import IngestorSettings

from tests.support.aws_doubles import CUSTOMER, REGION, CountingAwsAccess, CustomerAccount
from tests.support.credentials import INGESTOR_TOKEN
from tests.support.fake_api import FakeInternalApi
from zc_ingestor.service import Ingestor

__all__ = ["CUSTOMER", "REGION", "CountingAwsAccess", "CustomerAccount"]

OTHER_CUSTOMER = "333333333333"
NOT_ONBOARDED = "222222222222"
SERVICE_TOKEN = INGESTOR_TOKEN  # the credential the fake api accepts


class EventQueues:
    """ZeroCloud's own event queue and dead-letter queue, in its own account."""

    def __init__(self, aws: AwsAccess, url: str, dead_letter_url: str) -> None:
        self.aws = aws
        self.url = url
        self.dead_letter_url = dead_letter_url

    async def send(self, *bodies: dict[str, Any] | str) -> None:
        async with self.aws.client("sqs") as sqs:
            for body in bodies:
                await sqs.send_message(
                    QueueUrl=self.url, MessageBody=body if isinstance(body, str) else json.dumps(body)
                )

    async def dead_letters(self) -> list[tuple[str, str]]:
        """(body, zc_reason) of every message on the dead-letter queue."""
        found: list[tuple[str, str]] = []
        async with self.aws.client("sqs") as sqs:
            while True:
                answer = await sqs.receive_message(
                    QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                    VisibilityTimeout=60,
                )
                messages = answer.get("Messages", [])
                if not messages:
                    return found
                found += [(m["Body"], m["MessageAttributes"]["zc_reason"]["StringValue"]) for m in messages]

    async def waiting(self) -> int:
        """Messages still on the event queue, visible or not."""
        async with self.aws.client("sqs") as sqs:
            answer = await sqs.get_queue_attributes(
                QueueUrl=self.url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )
        return sum(int(value) for value in answer["Attributes"].values())


# --- the api, faked --------------------------------------------------------------------


def topic_arn(upstream_account_id: str = CUSTOMER, region: str = REGION) -> str:
    """The SNS topic of an account's ZeroCloud stack in a region."""
    return f"arn:aws:sns:{region}:{upstream_account_id}:zerocloud-events"


def cloud_account(
    id: int = 1, upstream_account_id: str = CUSTOMER, regions: tuple[str, ...] = (REGION,),
    topic_arns: dict[str, str] | None = None,
) -> CloudAccountRecord:
    """A cloud account in force, each region's topic bound as verify binds it."""
    return CloudAccountRecord(
        id=id,
        account_id=1,
        name=f"dev-{upstream_account_id}",
        upstream_account_id=upstream_account_id,
        role_arn=f"arn:aws:iam::{upstream_account_id}:role/ZeroCloud",
        external_id=f"zc-external-{id}",
        regions=list(regions),
        mode=CloudAccountMode.observe,
        topic_arns={r: topic_arn(upstream_account_id, r) for r in regions} if topic_arns is None else topic_arns,
    )


class FakeApi(FakeInternalApi):
    """The api's internal endpoints, serving what a test puts in ``records`` and ``known``."""

    def __init__(self) -> None:
        super().__init__(SERVICE_TOKEN)
        self.records: list[CloudAccountRecord] = [cloud_account()]
        self.known: dict[tuple[int, str], list[str]] = {}
        self.app.get("/internal/v1/cloudaccounts")(self._cloud_accounts)
        self.app.get("/internal/v1/cloudaccounts/{cloud_account_id}/instances")(self._instances)
        self.app.post("/internal/v1/cloudaccounts/event-arrivals", status_code=204)(self._arrivals)
        self.app.post("/internal/v1/sweeps/{sweep_id}/report", status_code=204)(self._sweep_report)
        self.arrivals: list[EventArrival] = []
        self.sweep_reports: list[tuple[int, SweepReport]] = []  # (sweep id, report), in order
        self.failing: set[str] = set()  # route names that answer 500

    async def _sweep_report(self, request: Request, sweep_id: int, body: SweepReport) -> None:
        self._authorize(request)
        self.requests["sweep_report"] += 1
        if "sweep_report" in self.failing:
            raise HTTPException(500, "the api is having a bad day")
        self.sweep_reports.append((sweep_id, body))

    async def _cloud_accounts(
        self, request: Request, upstream_account_id: str | None = None
    ) -> dict[str, Any]:
        self._authorize(request)
        self.requests["cloudaccounts"] += 1
        data = [r for r in self.records if upstream_account_id in (None, r.upstream_account_id)]
        return {"data": [r.model_dump(mode="json") for r in data], "count": len(data)}

    async def _arrivals(self, request: Request, body: EventArrivals) -> None:
        self._authorize(request)
        self.requests["event_arrivals"] += 1
        self.arrivals.extend(body.arrivals)

    async def _instances(self, request: Request, cloud_account_id: int, region: str) -> dict[str, Any]:
        self._authorize(request)
        self.requests["instances"] += 1
        if "instances" in self.failing:
            raise HTTPException(500, "the api is having a bad day")
        ids = self.known.get((cloud_account_id, region), [])
        return {"cloud_account_id": cloud_account_id, "region": region, "instance_ids": ids}


# --- the bus ---------------------------------------------------------------------------


class RecordingBus(InProcessBus):
    """The in-process bus, remembering what was published; ``refusing`` makes publish
    fail the way it does when RabbitMQ does not confirm."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[Message] = []
        self.refusing = False

    async def publish(self, *messages: Message) -> None:
        if self.refusing:
            raise ConnectionError(f"{len(messages)} messages not confirmed by RabbitMQ")
        self.published.extend(messages)
        await super().publish(*messages)

    @property
    def changes(self) -> list[ResourceChange]:
        return [m for m in self.published if isinstance(m, ResourceChange)]


# --- the ingestor ----------------------------------------------------------------------


def ingestor_settings(moto_url: str, queues: EventQueues | None = None, **overrides: Any) -> IngestorSettings:
    values: dict[str, Any] = {
        "bus": "memory",
        "amqp_url": "memory://",
        "api_url": "http://api.test",
        "service_token": SERVICE_TOKEN,
        "aws_endpoint_url": moto_url,
        "event_queue_urls": [queues.url] if queues else [],
        "event_dead_letter_queue_url": queues.dead_letter_url if queues else None,
        "poll_wait_seconds": 1,
        "visibility_timeout": 5,
    }
    return IngestorSettings(**{**values, **overrides})


def aws_of(ingestor: Ingestor) -> CountingAwsAccess:
    aws = ingestor.poller.aws
    assert isinstance(aws, CountingAwsAccess)
    return aws


# --- events as AWS sends them ----------------------------------------------------------


def run_instances_event(
    instance_ids: list[str], *, account_id: str = CUSTOMER, region: str = REGION
) -> dict[str, Any]:
    """The EventBridge event of a CloudTrail RunInstances call."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": account_id,
        "time": now,
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "eventTime": now,
            "eventSource": "ec2.amazonaws.com",
            "eventName": "RunInstances",
            "awsRegion": region,
            "recipientAccountId": account_id,
            "eventID": str(uuid.uuid4()),
            "requestParameters": {"instanceType": "t3.micro", "minCount": len(instance_ids)},
            "responseElements": {"instancesSet": {"items": [{"instanceId": i} for i in instance_ids]}},
        },
    }


def sns_wrapped(event: dict[str, Any], topic: str | None = None) -> dict[str, Any]:
    """An EventBridge event as an SNS subscription delivers it to SQS, from ``topic``
    (by default the topic of the account the event names)."""
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic or topic_arn(str(event.get("account", CUSTOMER)), str(event.get("region", REGION))),
        "Message": json.dumps(event),
        "Timestamp": datetime.now(timezone.utc).isoformat(),
    }


