"""`zerocloud-cli sandbox launch`: instances of the asked type and count run in the
sandbox's AWS account (moto), and the EventBridge events AWS would send for them — a
state change to pending and to running per instance, and the CloudTrail RunInstances
call — are on ZeroCloud's queue, each one ZeroCloud can read."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from zc_common.cloudevents import CLOUDTRAIL_CALL, STATE_CHANGE, parse_event

from zc_cli.embedded import SandboxState
from zc_cli.main import app
from zc_cli.sandbox_events import launch_events

CUSTOMER = "111111111111"
REGION = "us-east-1"


@pytest.fixture
def sandbox_state(moto: str, tmp_path: Path) -> tuple[Path, SandboxState, Any]:
    """A sandbox's state file (as `sandbox run` leaves it) pointing at the test's moto and a queue of its own."""
    sqs = boto3.client("sqs", endpoint_url=moto, region_name=REGION)
    queue_url = sqs.create_queue(QueueName=f"zc-launch-{secrets.token_hex(4)}")["QueueUrl"]
    state = SandboxState(
        api_url="http://127.0.0.1:9", admin_token="zc_" + "x" * 40, aws_endpoint_url=moto, queue_url=queue_url,
        customer_account_id=CUSTOMER, customer_role_arn=f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud",
    )
    data_dir = tmp_path / "zerocloud"
    data_dir.mkdir()
    state.save(data_dir)
    return data_dir, state, sqs


def _drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    while True:
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        messages = answer.get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def _customer_ec2(moto: str) -> Any:
    sts = boto3.client("sts", endpoint_url=moto, region_name=REGION)
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{CUSTOMER}:role/Developer", RoleSessionName="test")["Credentials"]
    return boto3.client(
        "ec2", endpoint_url=moto, region_name=REGION, aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
    )


def test_launch_runs_the_instances_and_queues_what_aws_would_send(
    sandbox_state: tuple[Path, SandboxState, Any], moto: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir, state, sqs = sandbox_state
    monkeypatch.setenv("ZC_SANDBOX_DIR", str(data_dir))  # as the banner tells a non-default sandbox to

    result = CliRunner().invoke(
        app, ["sandbox", "launch", "--owner", "alice@example.com", "--type", "t3.small", "--count", "3", "--no-wait"],
        catch_exceptions=False,
    )

    assert result.exit_code == 0, result.output
    ids = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("i-")]
    assert len(ids) == 3
    reservations = _customer_ec2(moto).describe_instances(InstanceIds=ids)["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    assert {i["InstanceType"] for i in instances} == {"t3.small"}
    assert all({"Key": "owner", "Value": "alice@example.com"} in i["Tags"] for i in instances)

    events = _drain(sqs, state.queue_url)
    assert len(events) == 2 * 3 + 1
    hints = [parse_event(event) for event in events]
    assert {hint.account_id for hint in hints} == {CUSTOMER} and {hint.region for hint in hints} == {REGION}
    states = [(e["detail"]["instance-id"], e["detail"]["state"]) for e in events if e["detail-type"] == STATE_CHANGE]
    assert sorted(states) == sorted([(i, "pending") for i in ids] + [(i, "running") for i in ids])
    pending_first = [s for _, s in states]
    assert pending_first == ["pending"] * 3 + ["running"] * 3
    calls = [(e, h) for e, h in zip(events, hints) if e["detail-type"] == CLOUDTRAIL_CALL]
    assert len(calls) == 1
    call, hint = calls[0]
    assert hint.event_name == "RunInstances" and sorted(hint.instance_ids) == sorted(ids)
    detail = call["detail"]
    assert detail["eventSource"] == "ec2.amazonaws.com" and detail["recipientAccountId"] == CUSTOMER
    assert detail["requestParameters"]["instanceType"] == "t3.small"
    assert detail["userIdentity"]["type"] == "AssumedRole"
    assert len({e["id"] for e in events}) == len(events)  # each event its own id, as EventBridge gives


def test_launch_without_a_running_sandbox_says_how_to_start_one(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["sandbox", "launch", "--owner", "alice@example.com", "--data-dir", str(tmp_path / "none")]
    )
    assert result.exit_code == 1
    assert "make run" in result.stderr


def test_launch_count_is_between_one_and_a_hundred(sandbox_state: tuple[Path, SandboxState, Any]) -> None:
    data_dir = sandbox_state[0]
    for count in ("0", "101"):
        result = CliRunner().invoke(
            app, ["sandbox", "launch", "--owner", "a@example.com", "--count", count, "--data-dir", str(data_dir)]
        )
        assert result.exit_code == 2, result.output


def test_the_events_of_one_launch_name_every_instance_once_per_kind() -> None:
    reservation = {
        "ReservationId": "r-0123456789abcdef0",
        "Instances": [{"InstanceId": f"i-0{n}23456789abcdef0", "ImageId": "ami-1", "InstanceType": "m5.large",
                       "Placement": {"AvailabilityZone": "eu-west-1a"}} for n in range(2)],
    }
    events = launch_events(
        account_id=CUSTOMER, region="eu-west-1", caller_arn=f"arn:aws:sts::{CUSTOMER}:assumed-role/Developer/s",
        reservation=reservation, image_id="ami-1", instance_type="m5.large", count=2,
        tags=[{"Key": "owner", "Value": "bob@example.com"}],
    )
    hints = [parse_event(json.dumps(event)) for event in events]
    assert [h.event_name for h in hints] == [STATE_CHANGE, STATE_CHANGE, "RunInstances", STATE_CHANGE, STATE_CHANGE]
    assert hints[2].instance_ids == ("i-0023456789abcdef0", "i-0123456789abcdef0")
    assert {h.region for h in hints} == {"eu-west-1"}
    tags = events[2]["detail"]["requestParameters"]["tagSpecificationSet"]["items"][0]["tags"]
    assert tags == [{"key": "owner", "value": "bob@example.com"}]
