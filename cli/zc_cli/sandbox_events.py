"""The EventBridge events AWS sends when instances are launched, for the sandbox's fake
AWS (moto never emits events): per instance a state change to "pending" and one to
"running", and for the call one "AWS API Call via CloudTrail" RunInstances event —
each as an EventBridge rule delivers it to an SQS queue (the raw event as the body)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from zc_common.cloudevents import CLOUDTRAIL_CALL, state_change_event


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_instances_call_event(
    *, account_id: str, region: str, caller_arn: str, reservation: Mapping[str, Any], image_id: str,
    instance_type: str, count: int, tags: Sequence[Mapping[str, str]], time: datetime | None = None,
) -> dict[str, Any]:
    """The CloudTrail record of one RunInstances call, as EventBridge wraps it."""
    when = _stamp(time or datetime.now(timezone.utc))
    instances = reservation.get("Instances", [])
    session = caller_arn.rsplit("/", 1)[-1]
    request_id = str(uuid.uuid4())
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": CLOUDTRAIL_CALL,
        "source": "aws.ec2",
        "account": account_id,
        "time": when,
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": f"AROASANDBOXDEVELOPER:{session}",
                "arn": caller_arn,
                "accountId": account_id,
                "sessionContext": {"attributes": {"creationDate": when, "mfaAuthenticated": "false"}},
            },
            "eventTime": when,
            "eventSource": "ec2.amazonaws.com",
            "eventName": "RunInstances",
            "awsRegion": region,
            "sourceIPAddress": "127.0.0.1",
            "userAgent": "zerocloud-cli sandbox launch",
            "requestParameters": {
                "instancesSet": {"items": [{"imageId": image_id, "minCount": count, "maxCount": count}]},
                "instanceType": instance_type,
                "tagSpecificationSet": {"items": [{
                    "resourceType": "instance",
                    "tags": [{"key": tag["Key"], "value": tag["Value"]} for tag in tags],
                }]},
            },
            "responseElements": {
                "requestId": request_id,
                "reservationId": reservation.get("ReservationId", ""),
                "ownerId": account_id,
                "groupSet": {},
                "instancesSet": {"items": [
                    {
                        "instanceId": instance["InstanceId"],
                        "imageId": instance.get("ImageId", image_id),
                        "instanceType": instance.get("InstanceType", instance_type),
                        "instanceState": {"code": 0, "name": "pending"},
                        "placement": {"availabilityZone": instance.get("Placement", {}).get("AvailabilityZone", "")},
                        "tagSet": {"items": [{"key": tag["Key"], "value": tag["Value"]} for tag in tags]},
                    }
                    for instance in instances
                ]},
            },
            "requestID": request_id,
            "eventID": str(uuid.uuid4()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account_id,
            "eventCategory": "Management",
        },
    }


def launch_events(
    *, account_id: str, region: str, caller_arn: str, reservation: Mapping[str, Any], image_id: str,
    instance_type: str, count: int, tags: Sequence[Mapping[str, str]],
) -> list[dict[str, Any]]:
    """Everything AWS sends for one RunInstances call, in the order it usually arrives."""
    ids = [instance["InstanceId"] for instance in reservation.get("Instances", [])]
    now = datetime.now(timezone.utc)
    pending = [state_change_event(account_id=account_id, region=region, instance_id=i, state="pending", time=now)
               for i in ids]
    call = run_instances_call_event(
        account_id=account_id, region=region, caller_arn=caller_arn, reservation=reservation, image_id=image_id,
        instance_type=instance_type, count=count, tags=tags, time=now,
    )
    running = [state_change_event(account_id=account_id, region=region, instance_id=i, state="running")
               for i in ids]
    return [*pending, call, *running]
