"""Reading EC2 events as AWS delivers them (EventBridge, raw or inside an SNS
notification) into hints: which instances of which account and region to look at."""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timezone
from typing import Any

import pytest

from zc_common.cloudevents import (
    CLOUDTRAIL_CALL,
    STATE_CHANGE,
    UnusableEvent,
    parse_event,
    state_change_event,
)

ACCOUNT = "111111111111"
REGION = "eu-west-1"
I1, I2, I3 = "i-0abcd1234ef567890", "i-0fedc4321ba098765", "i-0123456789abcdef0"


def state_change() -> dict[str, Any]:
    """An "EC2 Instance State-change Notification" as EventBridge delivers it."""
    return {
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": ACCOUNT,
        "time": "2026-03-01T12:00:00Z",
        "region": REGION,
        "resources": [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{I1}"],
        "detail": {"instance-id": I1, "state": "pending"},
    }


def sns_wrapped(event: dict[str, Any]) -> dict[str, Any]:
    """An event as an SQS queue subscribed to an SNS topic receives it (no raw delivery)."""
    return {
        "Type": "Notification",
        "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:zerocloud-events",
        "Message": json.dumps(event),
        "Timestamp": "2026-03-01T12:00:01.000Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQvi2egU3N858fiTDN6bkkOxYDVrY0Ad8L10Hs3zH81mtnPk5uvvolIC1CXGu43obcgFxeL3khZl8IKvO61GWB6jI9b5+gLPoBc1Q=",
    }


def cloudtrail(event_name: str, request: Any, response: Any, **detail: Any) -> dict[str, Any]:
    """An "AWS API Call via CloudTrail" event as EventBridge delivers it."""
    return {
        "version": "0",
        "id": "3e1d3c3c-8a4e-6a8e-d3c6-63b1e0a1c1b2",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2",
        "account": ACCOUNT,
        "time": "2026-03-01T12:00:05Z",
        "region": REGION,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": "AROAEXAMPLEID:alice@bigdb.com",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/Developer/alice@bigdb.com",
                "accountId": ACCOUNT,
            },
            "eventTime": "2026-03-01T12:00:02Z",
            "eventSource": "ec2.amazonaws.com",
            "eventName": event_name,
            "awsRegion": REGION,
            "sourceIPAddress": "203.0.113.10",
            "userAgent": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 botocore/2.4.5",
            "requestParameters": request,
            "responseElements": response,
            "requestID": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
            "eventID": "0c6d0b1e-5e8e-4a55-a1a4-1f1f3b3b0d42",
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": ACCOUNT,
            "eventCategory": "Management",
            **detail,
        },
    }


def run_instances() -> dict[str, Any]:
    return cloudtrail(
        "RunInstances",
        {
            "instancesSet": {"items": [{"imageId": "ami-0abcdef1234567890", "minCount": 2, "maxCount": 2}]},
            "instanceType": "t3.micro",
            "blockDeviceMapping": {},
            "monitoring": {"enabled": False},
            "disableApiTermination": False,
            "tagSpecificationSet": {
                "items": [{"resourceType": "instance", "tags": [{"key": "owner", "value": "alice@bigdb.com"}]}]
            },
        },
        {
            "requestId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
            "reservationId": "r-0a1b2c3d4e5f67890",
            "ownerId": ACCOUNT,
            "groupSet": {},
            "instancesSet": {
                "items": [
                    {
                        "instanceId": instance_id,
                        "imageId": "ami-0abcdef1234567890",
                        "instanceState": {"code": 0, "name": "pending"},
                        "privateDnsName": "ip-10-0-0-12.eu-west-1.compute.internal",
                        "amiLaunchIndex": index,
                        "instanceType": "t3.micro",
                        "launchTime": 1772366402000,
                        "placement": {"availabilityZone": "eu-west-1a", "tenancy": "default"},
                    }
                    for index, instance_id in enumerate((I1, I2))
                ]
            },
        },
    )


def instance_call(event_name: str, *instance_ids: str) -> dict[str, Any]:
    """StartInstances / StopInstances / TerminateInstances."""
    return cloudtrail(
        event_name,
        {"instancesSet": {"items": [{"instanceId": i} for i in instance_ids]}, "force": False},
        {
            "requestId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE22222",
            "instancesSet": {
                "items": [
                    {
                        "instanceId": i,
                        "currentState": {"code": 64, "name": "stopping"},
                        "previousState": {"code": 16, "name": "running"},
                    }
                    for i in instance_ids
                ]
            },
        },
    )


def tags_call(event_name: str, *resource_ids: str) -> dict[str, Any]:
    """CreateTags / DeleteTags: any resource kind can be named."""
    return cloudtrail(
        event_name,
        {
            "resourcesSet": {"items": [{"resourceId": r} for r in resource_ids]},
            "tagSet": {"items": [{"key": "owner", "value": "bob@bigdb.com"}]},
        },
        {"requestId": "a1b2c3d4-5678-90ab-cdef-EXAMPLE33333", "_return": True},
    )


# --- usable events --------------------------------------------------------------------


def test_state_change_names_its_instance() -> None:
    hint = parse_event(json.dumps(state_change()))

    assert hint.account_id == ACCOUNT
    assert hint.region == REGION
    assert hint.instance_ids == (I1,)
    assert hint.event_name == STATE_CHANGE
    assert hint.event_time == datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    assert hint.event_source == "aws.ec2"
    assert hint.event_id == "7bf73129-1428-4cd3-a780-95db273d1602"


def test_bytes_str_and_dict_bodies_read_alike() -> None:
    event = state_change()

    assert parse_event(json.dumps(event).encode()) == parse_event(json.dumps(event)) == parse_event(event)


def test_sns_wrapped_event_reads_like_the_raw_one() -> None:
    assert parse_event(json.dumps(sns_wrapped(state_change()))) == parse_event(state_change())


def test_sns_wrapped_event_says_which_topic_delivered_it_and_a_raw_one_says_none() -> None:
    wrapped = parse_event(json.dumps(sns_wrapped(state_change())))
    raw = parse_event(state_change())

    assert wrapped.via_sns and wrapped.topic_arn == f"arn:aws:sns:{REGION}:{ACCOUNT}:zerocloud-events"
    assert not raw.via_sns and raw.topic_arn is None


def test_sns_envelope_inside_an_sns_envelope_is_unusable() -> None:
    with pytest.raises(UnusableEvent, match="inside an SNS notification"):
        parse_event(json.dumps(sns_wrapped(sns_wrapped(state_change()))))


def test_event_built_for_tests_and_the_cli_is_a_valid_state_change() -> None:
    when = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    event = state_change_event(account_id=ACCOUNT, region=REGION, instance_id=I1, state="running", time=when)

    hint = parse_event(json.dumps(event))

    assert (hint.account_id, hint.region, hint.instance_ids, hint.event_time) == (ACCOUNT, REGION, (I1,), when)
    assert event["resources"] == [f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{I1}"]


def test_run_instances_names_the_launched_instances_from_the_response() -> None:
    hint = parse_event(json.dumps(run_instances()))

    assert hint.instance_ids == (I1, I2)
    assert hint.event_name == "RunInstances"
    assert hint.event_source == "ec2.amazonaws.com"
    assert hint.event_id == "0c6d0b1e-5e8e-4a55-a1a4-1f1f3b3b0d42"
    assert hint.event_time == datetime(2026, 3, 1, 12, 0, 2, tzinfo=timezone.utc)  # the call's own time
    assert (hint.account_id, hint.region) == (ACCOUNT, REGION)


@pytest.mark.parametrize("event_name", ["StartInstances", "StopInstances", "TerminateInstances"])
def test_instance_calls_name_the_instances_of_the_request(event_name: str) -> None:
    hint = parse_event(instance_call(event_name, I1, I3))

    assert hint.instance_ids == (I1, I3)
    assert hint.event_name == event_name


@pytest.mark.parametrize("event_name", ["CreateTags", "DeleteTags"])
def test_tag_calls_name_only_the_instances_among_their_resources(event_name: str) -> None:
    hint = parse_event(tags_call(event_name, "vol-0abcdef1234567890", I2, "sg-0123456789abcdef0", I1, I2))

    assert hint.instance_ids == (I2, I1)  # in order, once each


def test_cloudtrail_region_and_account_come_from_the_call() -> None:
    event = instance_call("StopInstances", I1)
    event["region"] = "us-east-1"
    event["detail"]["awsRegion"] = "ap-southeast-2"
    event["detail"]["recipientAccountId"] = "222222222222"

    hint = parse_event(event)

    assert (hint.account_id, hint.region) == ("222222222222", "ap-southeast-2")


# --- unusable events ------------------------------------------------------------------


def without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


def replaced(event: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


UNUSABLE: list[tuple[str, Any, str]] = [
    ("malformed-json", '{"detail-type": "EC2 Instance State-change Notification", ', "not JSON"),
    ("not-utf8", b"\xff\xfe{}", "not JSON"),
    ("too-deep", "[" * 100_000, "nested too deeply"),
    ("not-an-object", json.dumps([state_change()]), "not a JSON object"),
    ("sns-not-json", json.dumps({**sns_wrapped(state_change()), "Message": "hello"}), "not JSON"),
    ("no-detail-type", without(state_change(), "detail-type"), "no 'detail-type'"),
    (
        "unknown-detail-type",
        replaced(state_change(), "EBS Volume Notification", "detail-type"),
        "detail-type 'EBS Volume Notification' is not one ZeroCloud reads",
    ),
    ("missing-detail", without(state_change(), "detail"), "missing 'detail'"),
    ("detail-not-object", replaced(state_change(), "pending", "detail"), "missing 'detail'"),
    ("short-account", replaced(state_change(), "12345", "account"), "'account' is missing or not a 12-digit"),
    ("missing-account", without(state_change(), "account"), "'account' is missing or not a 12-digit"),
    ("bad-region", replaced(state_change(), "moon-base", "region"), "'region' is missing or not an AWS region"),
    ("bad-time", replaced(state_change(), "yesterday", "time"), "'time' 'yesterday' is not an ISO 8601 time"),
    (
        "no-instance-id",
        without(state_change(), "detail", "instance-id"),
        "detail.instance-id is missing or not an instance id",
    ),
    (
        "not-an-instance-id",
        replaced(state_change(), "vol-0abcdef1234567890", "detail", "instance-id"),
        "detail.instance-id is missing or not an instance id",
    ),
    (
        "unread-cloudtrail-call",
        replaced(run_instances(), "DescribeInstances", "detail", "eventName"),
        "CloudTrail event 'DescribeInstances' is not one ZeroCloud reads",
    ),
    (
        "failed-run-instances",
        cloudtrail("RunInstances", {"instanceType": "p5.48xlarge"}, None, errorCode="Client.UnauthorizedOperation",
                   errorMessage="You are not authorized to perform this operation."),
        "CloudTrail RunInstances: Client.UnauthorizedOperation",
    ),
    (
        "tags-on-no-instance",
        tags_call("CreateTags", "vol-0abcdef1234567890", "sg-0123456789abcdef0"),
        "CloudTrail CreateTags: no instance named",
    ),
    (
        "bad-cloudtrail-account",
        replaced(instance_call("StopInstances", I1), "1111", "detail", "recipientAccountId"),
        "'recipientAccountId' is missing or not a 12-digit",
    ),
]


@pytest.mark.parametrize(("body", "why"), [(b, w) for _, b, w in UNUSABLE], ids=[i for i, _, _ in UNUSABLE])
def test_unusable_event_says_why(body: Any, why: str) -> None:
    with pytest.raises(UnusableEvent) as raised:
        parse_event(body if isinstance(body, (str, bytes)) else json.dumps(body))

    assert why in str(raised.value)


def test_oversized_body_is_refused_before_parsing() -> None:
    body = json.dumps({**state_change(), "padding": "x" * 5000})

    with pytest.raises(UnusableEvent, match=rf"event is {len(body)} bytes, more than the 4096 allowed"):
        parse_event(body, max_bytes=4096)
    assert parse_event(body, max_bytes=len(body)).instance_ids == (I1,)


def test_oversized_event_inside_an_sns_notification_is_refused() -> None:
    inner = {**state_change(), "padding": "x" * 5000}
    wrapped = sns_wrapped(inner)

    limit = len(wrapped["Message"]) - 1

    with pytest.raises(UnusableEvent, match=f"more than the {limit} allowed"):
        parse_event(wrapped, max_bytes=limit)  # a dict body: only the inner message is measured


def test_cloudtrail_kind_is_spelled_as_aws_does() -> None:
    assert CLOUDTRAIL_CALL == run_instances()["detail-type"]
    assert STATE_CHANGE == state_change()["detail-type"]


@pytest.mark.parametrize(("event", "where"), [
    (state_change_event(account_id="123456789012", region="us-east-1", instance_id="i-0123456789abcdef0",
                        state="running", event_id="evt-\x00"), "id"),
    ({**state_change_event(account_id="123456789012", region="us-east-1", instance_id="i-0123456789abcdef0",
                           state="running"), "resources": ["arn:\x00"]}, "resources.0"),
])
def test_an_event_carrying_nul_is_unusable_naming_where(event: dict[str, Any], where: str) -> None:
    with pytest.raises(UnusableEvent, match=rf"^{re.escape(where)} contains U\+0000"):
        parse_event(json.dumps(event))
