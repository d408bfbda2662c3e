"""Reading EC2 events as they reach ZeroCloud: EventBridge events, raw or wrapped in an
SNS notification, of two kinds — "EC2 Instance State-change Notification" and "AWS API
Call via CloudTrail" for the instance calls below. An event is only a hint: this module
says which instances of which account and region to look at, nothing more.

And ZeroCloud's own probe: verify publishes one to each bound topic, and its arrival
through the queue proves events flow from that region (``read_event`` knows it; the
routes that take events from people do not)."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from zc_common.unstorable import find_nul, where

STATE_CHANGE = "EC2 Instance State-change Notification"
PROBE = "ZeroCloud Event Probe"
PROBE_SOURCE = "zerocloud.verify"
CLOUDTRAIL_CALL = "AWS API Call via CloudTrail"
CLOUDTRAIL_EVENTS = frozenset(
    {"RunInstances", "StartInstances", "StopInstances", "TerminateInstances", "CreateTags", "DeleteTags"}
)

_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class UnusableEvent(ValueError):
    """This event cannot be used; the message is the reason recorded with it."""


@dataclass(frozen=True)
class InstanceHint:
    """Look at these instances of this account and region, because of this event."""

    account_id: str
    region: str
    instance_ids: tuple[str, ...]
    event_name: str
    event_time: datetime
    event_source: str
    event_id: str | None
    # Where it came from, not what it says (left out of equality): an SNS-wrapped event
    # and the topic that delivered it, which must be bound to the account it names.
    via_sns: bool = dataclasses.field(default=False, compare=False)
    topic_arn: str | None = dataclasses.field(default=None, compare=False)


@dataclass(frozen=True)
class EventProbe:
    """A test event verify published to a region's topic: its nonce names the try."""

    account_id: str
    region: str
    nonce: str
    via_sns: bool = False
    topic_arn: str | None = None


_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def probe_event(*, account_id: str, region: str, nonce: str) -> dict[str, Any]:
    """The probe verify publishes, shaped like any EventBridge event."""
    return {
        "version": "0", "id": nonce, "detail-type": PROBE, "source": PROBE_SOURCE, "account": account_id,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
        "resources": [], "detail": {"probe": nonce},
    }


def parse_event(body: str | bytes | dict[str, Any], *, max_bytes: int | None = None) -> InstanceHint:
    """Parse a posted or queued event into a hint, or raise UnusableEvent (a probe too:
    only a topic verify bound may carry one)."""
    event = read_event(body, max_bytes=max_bytes)
    if isinstance(event, EventProbe):
        raise UnusableEvent(f"{PROBE}: ZeroCloud takes its probes only through a topic verify bound")
    return event


def read_event(body: str | bytes | dict[str, Any], *, max_bytes: int | None = None) -> InstanceHint | EventProbe:
    """Parse a queue message into a hint or a probe, or raise UnusableEvent."""
    if isinstance(body, (str, bytes)):
        if max_bytes is not None and len(body) > max_bytes:
            raise UnusableEvent(f"event is {len(body)} bytes, more than the {max_bytes} allowed")
        try:
            event = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise UnusableEvent(f"not JSON: {error}") from None
        except RecursionError:
            raise UnusableEvent("not usable JSON: nested too deeply") from None
    else:
        event = body
    if not isinstance(event, dict):
        raise UnusableEvent("not a JSON object")
    found = find_nul(event)
    if found is not None:
        # Nothing with it could be stored (the event id, its source, the audit record).
        raise UnusableEvent(f"{where(found, 'event')} contains U+0000 (a NUL character)")
    if event.get("Type") == "Notification" and "Message" in event:  # SNS envelope
        inner = event["Message"]
        hint = read_event(inner if isinstance(inner, (str, bytes, dict)) else "", max_bytes=max_bytes)
        if hint.via_sns:
            raise UnusableEvent("an SNS notification inside an SNS notification")
        topic = event.get("TopicArn")
        return dataclasses.replace(hint, via_sns=True, topic_arn=topic if isinstance(topic, str) and topic else None)

    detail_type = event.get("detail-type")
    if detail_type is None:
        raise UnusableEvent("no 'detail-type': not an EventBridge event")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise UnusableEvent(f"{detail_type}: missing 'detail'")
    account = _field(event, "account", _ACCOUNT_ID, "a 12-digit AWS account id")
    region = _field(event, "region", _REGION, "an AWS region such as us-east-1")
    event_time = _time(event.get("time"))
    event_id = str(event["id"]) if event.get("id") else None

    if detail_type == PROBE:
        nonce = detail.get("probe")
        if event.get("source") != PROBE_SOURCE or not isinstance(nonce, str) or not _NONCE.match(nonce):
            raise UnusableEvent(f"{PROBE}: not one ZeroCloud's verify sent")
        return EventProbe(account, region, nonce)

    if detail_type == STATE_CHANGE:
        instance_id = detail.get("instance-id")
        if not isinstance(instance_id, str) or not _INSTANCE_ID.match(instance_id):
            raise UnusableEvent(f"{STATE_CHANGE}: detail.instance-id is missing or not an instance id")
        source = str(event.get("source", "aws.ec2"))
        return InstanceHint(account, region, (instance_id,), STATE_CHANGE, event_time, source, event_id)

    if detail_type == CLOUDTRAIL_CALL:
        name = detail.get("eventName")
        if name not in CLOUDTRAIL_EVENTS:
            raise UnusableEvent(f"CloudTrail event {name!r} is not one ZeroCloud reads")
        ids = _cloudtrail_instance_ids(name, detail)
        if not ids:
            why = detail.get("errorCode") or "no instance named in the request or response"
            raise UnusableEvent(f"CloudTrail {name}: {why}")
        if detail.get("awsRegion"):
            region = _field(detail, "awsRegion", _REGION, "an AWS region")
        if detail.get("recipientAccountId"):
            account = _field(detail, "recipientAccountId", _ACCOUNT_ID, "a 12-digit AWS account id")
        if detail.get("eventTime"):
            event_time = _time(detail.get("eventTime"))
        return InstanceHint(
            account, region, ids, str(name), event_time, str(detail.get("eventSource", "ec2.amazonaws.com")),
            str(detail.get("eventID") or event_id or "") or None,
        )

    raise UnusableEvent(f"detail-type {detail_type!r} is not one ZeroCloud reads")


def _cloudtrail_instance_ids(name: str, detail: dict[str, Any]) -> tuple[str, ...]:
    if name == "RunInstances":
        items = _items((detail.get("responseElements") or {}).get("instancesSet"))
        found = [item.get("instanceId") for item in items]
    elif name in ("CreateTags", "DeleteTags"):
        items = _items((detail.get("requestParameters") or {}).get("resourcesSet"))
        found = [item.get("resourceId") for item in items]
    else:
        items = _items((detail.get("requestParameters") or {}).get("instancesSet"))
        found = [item.get("instanceId") for item in items]
    ids = [i for i in found if isinstance(i, str) and _INSTANCE_ID.match(i)]
    return tuple(dict.fromkeys(ids))


def _items(container: Any) -> list[dict[str, Any]]:
    if isinstance(container, dict):
        items = container.get("items")
        if isinstance(items, list):
            return [item for item in items if isinstance(item, dict)]
    return []


def _field(source: dict[str, Any], key: str, pattern: re.Pattern[str], what: str) -> str:
    value = source.get(key)
    if not isinstance(value, str) or not pattern.match(value):
        raise UnusableEvent(f"'{key}' is missing or not {what}")
    return value


def _time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
        except ValueError:
            raise UnusableEvent(f"'time' {value!r} is not an ISO 8601 time") from None
    return datetime.now(timezone.utc)


def state_change_event(
    *, account_id: str, region: str, instance_id: str, state: str, event_id: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """An EventBridge state-change event exactly as AWS sends it (for the CLI and tests;
    moto never emits events)."""
    import uuid

    when = (time or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": STATE_CHANGE,
        "source": "aws.ec2",
        "account": account_id,
        "time": when,
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:{account_id}:instance/{instance_id}"],
        "detail": {"instance-id": instance_id, "state": state},
    }
