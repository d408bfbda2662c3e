"""Each region's SNS topic of a cloud account: the topic its CloudFormation stack created
(found through the role, by the stack's outputs), or one an admin entered. An SNS-wrapped
event is taken only from a topic bound to the cloud account the event names."""

from __future__ import annotations

import json
import re
from typing import Any

from zc_common.aws import AwsAccess, CloudAccountRole
from zc_common.cloudevents import probe_event
from zc_common.errors import InvalidInput

from zc_api.models import CloudAccount

TOPIC_ARN = re.compile(r"^arn:aws(?:-cn|-us-gov)?:sns:([a-z]{2}(?:-[a-z]+)+-\d):(\d{12}):[\w-]{1,256}$")
TOPIC_OUTPUT, EXTERNAL_ID_OUTPUT = "TopicArn", "ExternalId"
# Stacks whose outputs can be trusted: created or updated, not half-made or being removed.
_STACK_DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
MAX_STACK_PAGES = 20


class TopicNotFound(Exception):
    """No topic could be found for the region; the message says why and what to do."""


def topic_problem(arn: str, *, region: str, upstream_account_id: str) -> str | None:
    """Why ``arn`` cannot be this cloud account's topic in ``region``, or None."""
    match = TOPIC_ARN.match(arn)
    if match is None:
        return f"{arn!r} is not an SNS topic ARN like arn:aws:sns:{region}:{upstream_account_id}:ZeroCloudEvents"
    if match.group(1) != region:
        return f"the topic {arn} is in region {match.group(1)}, not {region}"
    if match.group(2) != upstream_account_id:
        return f"the topic {arn} belongs to AWS account {match.group(2)}, not to {upstream_account_id}"
    return None


def checked(entered: dict[str, str], *, regions: list[str], upstream_account_id: str) -> dict[str, str]:
    """Topics an admin entered (region -> ARN), each in a watched region of this account."""
    for region, arn in entered.items():
        if region not in regions:
            raise InvalidInput(
                f"{region} is not one of this cloud account's regions ({', '.join(regions)})", field="topic_arns"
            )
        problem = topic_problem(arn, region=region, upstream_account_id=upstream_account_id)
        if problem is not None:
            raise InvalidInput(problem, field="topic_arns")
    return dict(entered)


async def stack_topic(aws: AwsAccess, role: CloudAccountRole, row: CloudAccount, region: str) -> tuple[str, str]:
    """(topic ARN, stack name) of the ZeroCloud stack in ``region``: the one whose
    ExternalId output is this cloud account's external ID. Raises TopicNotFound."""
    pages = 0
    async with aws.client("cloudformation", region, role=role) as cloudformation:
        request: dict[str, Any] = {}
        while pages < MAX_STACK_PAGES:
            answer = await cloudformation.describe_stacks(**request)
            pages += 1
            for stack in answer.get("Stacks", []):
                outputs = {o.get("OutputKey"): o.get("OutputValue") for o in stack.get("Outputs", []) or []}
                if stack.get("StackStatus") not in _STACK_DONE or outputs.get(EXTERNAL_ID_OUTPUT) != row.external_id:
                    continue
                arn = str(outputs.get(TOPIC_OUTPUT) or "")
                problem = topic_problem(arn, region=region, upstream_account_id=row.upstream_account_id)
                if problem is not None:
                    raise TopicNotFound(f"stack {stack.get('StackName')}: {problem}")
                return arn, str(stack.get("StackName"))
            if not answer.get("NextToken"):
                break
            request = {"NextToken": answer["NextToken"]}
    raise TopicNotFound(
        f"no ZeroCloud stack with this cloud account's external ID in {region}: deploy the template there, "
        f"or enter the region's TopicArn (topic_arns) on the cloud account"
    )


async def subscribe(aws: AwsAccess, region: str, topic_arn: str, queue_arn: str) -> str:
    """Subscribe ZeroCloud's event queue to the topic, as ZeroCloud itself (the topic's
    policy lets ZeroCloud's account subscribe an SQS queue of its own, and a subscription
    made by the queue's owner needs no confirmation). Raw message delivery stays off: the
    SNS envelope's TopicArn is what the ingestor checks."""
    async with aws.client("sns", region) as sns:
        request: dict[str, Any] = {"TopicArn": topic_arn}
        for _ in range(MAX_STACK_PAGES):
            answer = await sns.list_subscriptions_by_topic(**request)
            for subscription in answer.get("Subscriptions", []):
                if subscription.get("Protocol") == "sqs" and subscription.get("Endpoint") == queue_arn:
                    return f"ZeroCloud's queue is subscribed to {topic_arn} ({subscription.get('SubscriptionArn')})"
            if not answer.get("NextToken"):
                break
            request["NextToken"] = answer["NextToken"]
        made = await sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True)
    return f"subscribed ZeroCloud's queue to {topic_arn} ({made.get('SubscriptionArn')})"


async def send_probe(aws: AwsAccess, row: CloudAccount, region: str, topic_arn: str, nonce: str) -> None:
    """Publish verify's test event to the region's topic, as ZeroCloud itself (the topic's
    policy lets ZeroCloud's account publish to it)."""
    event = probe_event(account_id=row.upstream_account_id, region=region, nonce=nonce)
    async with aws.client("sns", region) as sns:
        await sns.publish(TopicArn=topic_arn, Message=json.dumps(event))
