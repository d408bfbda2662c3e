"""Bus messages: what is encoded decodes to the same message, newer fields are
tolerated, and a body that can never become a message says why."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from zc_common.messages import (
    LIVE_LEASE_STATUSES,
    CloudEventReceived,
    EmailConfirmationRequested,
    InstanceSnapshot,
    InstanceState,
    InvitationCreated,
    LeaseChange,
    LeaseChanged,
    LeaseExpired,
    LeaseExpiringSoon,
    LeaseSnapshot,
    LeaseStatus,
    Message,
    ResourceChange,
    ResourceRef,
    SweepRequested,
    UndecodableMessage,
    decode,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
ACCOUNT = "111111111111"
INSTANCE = "i-0abcd1234ef567890"


def resource_change(**overrides: Any) -> ResourceChange:
    values: dict[str, Any] = {
        "event_name": "RunInstances",
        "event_time": NOW,
        "event_source": "ec2.amazonaws.com",
        "event_id": "0c6d0b1e-5e8e-4a55-a1a4-1f1f3b3b0d42",
        "aws_region": "eu-west-1",
        "recipient_account_id": ACCOUNT,
        "resources": [ResourceRef(arn=f"arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/{INSTANCE}", account_id=ACCOUNT)],
        "instance_id": INSTANCE,
        "instance": InstanceSnapshot(
            instance_id=INSTANCE,
            instance_type="t3.micro",
            state=InstanceState.running,
            tags={"owner": "alice@bigdb.com", "Name": "build-box"},
            launch_time=NOW - timedelta(minutes=1),
            termination_protected=False,
        ),
        "gone": False,
        "observed_at": NOW,
    }
    return ResourceChange(**{**values, **overrides})


def lease(**overrides: Any) -> LeaseSnapshot:
    values: dict[str, Any] = {
        "lease_id": 7,
        "version": 2,
        "status": LeaseStatus.active,
        "owner_email": "alice@bigdb.com",
        "expires_at": NOW + timedelta(days=3),
        "account_id": 1,
        "cloud_account_id": 3,
        "upstream_account_id": ACCOUNT,
        "region": "eu-west-1",
        "instance_id": INSTANCE,
        "instance_type": "t3.micro",
        "instance_name": "build-box",
    }
    return LeaseSnapshot(**{**values, **overrides})


EXAMPLES: list[Message] = [
    resource_change(),
    resource_change(instance=None, gone=True, event_name="Sweep", event_source="zerocloud.sweep", event_id=None),
    CloudEventReceived(event={"detail-type": "EC2 Instance State-change Notification", "detail": {"x": [1, 2]}}),
    SweepRequested(),
    SweepRequested(cloud_account_id=3, region="eu-west-1"),
    LeaseChanged(
        change=LeaseChange.renewed, lease=lease(), warn_at=[NOW + timedelta(days=2)], actor="user:12",
        reason="renewed from the mail link",
    ),
    LeaseExpiringSoon(lease=lease(), warning_at=NOW + timedelta(days=2)),
    LeaseExpired(lease=lease(status=LeaseStatus.expired)),
    InvitationCreated(
        invitation_id=4, account_id=1, account_name="BigDB", email="new@bigdb.com", role="dev",
        invited_by_email="admin@bigdb.com", expires_at=NOW + timedelta(days=7),
    ),
    EmailConfirmationRequested(user_id=9, account_id=1, email="joiner@bigdb.com", name="Joan"),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_encoded_message_decodes_to_an_equal_message(message: Message) -> None:
    decoded = decode(message.encode())

    assert type(decoded) is type(message)
    assert decoded == message


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_type_is_the_routing_key(message: Message) -> None:
    assert message.type == type(message).type_name()
    assert Message.registry[message.type] is type(message)


def test_every_message_gets_its_own_id_and_an_aware_time() -> None:
    first, second = SweepRequested(), SweepRequested()

    assert first.message_id != second.message_id
    assert first.occurred_at.tzinfo is not None


def test_messages_are_immutable() -> None:
    message = SweepRequested()

    with pytest.raises(Exception, match="frozen"):
        message.region = "us-east-1"  # type: ignore[misc]


def test_fields_added_by_a_newer_version_are_ignored_at_every_level() -> None:
    message = LeaseChanged(change=LeaseChange.created, lease=lease(), actor="service:api")
    raw = json.loads(message.encode())
    raw["schema_version"] = 2
    raw["added_in_v2"] = {"anything": [1, 2, 3]}
    raw["lease"]["added_in_v2"] = "also here"

    decoded = decode(json.dumps(raw).encode())

    assert decoded == message.model_copy(update={"schema_version": 2})


def test_type_hint_is_used_when_the_body_has_no_type() -> None:
    message = SweepRequested(region="us-east-1")
    raw = json.loads(message.encode())
    del raw["type"]

    decoded = decode(json.dumps(raw).encode(), "SweepRequested")

    assert decoded == message


@pytest.mark.parametrize(
    ("body", "type_hint", "why"),
    [
        (b"{not json", None, "body is not JSON"),
        (b"\xff\xfe\x00", None, "body is not JSON"),
        (b"[1, 2]", None, "body is not a JSON object"),
        (b"[" * 100_000, None, "nested too deeply"),
        (b'{"type": "LeaseTeleported"}', None, "unknown message type 'LeaseTeleported'"),
        (b'{"region": "us-east-1"}', None, "unknown message type None"),
        (b'{"region": "us-east-1"}', "NoSuchType", "unknown message type 'NoSuchType'"),
        (
            json.dumps({**json.loads(resource_change().encode()), "recipient_account_id": "1234"}).encode(),
            None,
            "ResourceChange failed validation at recipient_account_id",
        ),
        (
            json.dumps({**json.loads(resource_change().encode()), "instance": {"instance_id": INSTANCE}}).encode(),
            None,
            "ResourceChange failed validation at instance.instance_type: Field required (2 errors)",
        ),
        (
            json.dumps({"type": "LeaseExpired", "lease": {**lease().model_dump(mode="json"), "version": 0}}).encode(),
            None,
            "LeaseExpired failed validation at lease.version",
        ),
    ],
    ids=[
        "not-json", "not-utf8", "not-an-object", "too-deep", "unknown-type", "no-type", "unknown-hint",
        "bad-account-id", "incomplete-snapshot", "version-zero",
    ],
)
def test_unusable_body_raises_undecodable_with_the_reason(body: bytes, type_hint: str | None, why: str) -> None:
    with pytest.raises(UndecodableMessage) as raised:
        decode(body, type_hint)

    assert why in str(raised.value)


def test_live_lease_statuses_are_those_that_hold_an_instance() -> None:
    assert {status for status in LeaseStatus if status.is_live} == LIVE_LEASE_STATUSES
    assert LIVE_LEASE_STATUSES == {LeaseStatus.active, LeaseStatus.expired, LeaseStatus.reaping, LeaseStatus.exempt}


def test_instance_states() -> None:
    assert {s for s in InstanceState if s.is_live} == {InstanceState.pending, InstanceState.running}
    assert {s for s in InstanceState if s.is_gone} == {InstanceState.shutting_down, InstanceState.terminated}
    assert InstanceState("shutting-down") is InstanceState.shutting_down


# --- U+0000 ------------------------------------------------------------------------------


def _change(**overrides: object) -> dict[str, object]:
    return {
        "type": "ResourceChange", "event_name": "EC2 Instance State-change Notification",
        "event_time": "2026-11-25T10:00:00Z", "event_source": "aws.ec2", "aws_region": "us-east-1",
        "recipient_account_id": "123456789012", "instance_id": "i-0123456789abcdef0", "gone": False,
        "observed_at": "2026-11-25T10:00:00Z", **overrides,
    }


def test_a_message_carrying_nul_cannot_be_made() -> None:
    with pytest.raises(ValidationError, match=r"event_id contains U\+0000"):
        ResourceChange.model_validate(_change(event_id="evt-\x00"))


def test_a_body_carrying_nul_anywhere_is_undecodable_naming_where() -> None:
    snapshot = {"instance_id": "i-0123456789abcdef0", "instance_type": "t3.micro", "state": "running",
                "tags": {"owner": "ada@bigdb.com\x00"}}
    with pytest.raises(UndecodableMessage, match=r"instance\.tags\.owner contains U\+0000"):
        decode(json.dumps(_change(instance=snapshot)).encode())
