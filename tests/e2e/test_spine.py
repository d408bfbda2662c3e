"""From an EC2 launch to a lease, end to end over RabbitMQ, PostgreSQL and a moto server."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from zc_common.cloudevents import state_change_event

from tests.e2e.conftest import CUSTOMER, REGION, Stack, eventually


def cloudtrail_run_instances(instance_ids: list[str]) -> dict[str, object]:
    """An "AWS API Call via CloudTrail" RunInstances event as EventBridge delivers it."""
    return {
        "version": "0", "id": "7f6e1a52-0d2b-4b1e-9c54-2d0f5e3b8a11", "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.ec2", "account": CUSTOMER, "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION, "resources": [],
        "detail": {
            "eventVersion": "1.08", "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
            "awsRegion": REGION, "recipientAccountId": CUSTOMER, "eventID": "0c6d0b1e-5e8e-4a55-a1a4-1f1f3b3b0d42",
            "eventTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "userIdentity": {"type": "AssumedRole", "arn": f"arn:aws:sts::{CUSTOMER}:assumed-role/dev/alice"},
            "requestParameters": {"instanceType": "t3.micro"},
            "responseElements": {"instancesSet": {"items": [{"instanceId": i} for i in instance_ids]}},
        },
    }


TOPIC_ARN = f"arn:aws:sns:{REGION}:{CUSTOMER}:zerocloud-events"


def sns_wrapped(event: dict[str, object]) -> dict[str, object]:
    return {
        "Type": "Notification", "MessageId": "d2b4b1a0-3c0a-5f5e-9d7b-6f0b8f1c2e3d",
        "TopicArn": TOPIC_ARN, "Message": json.dumps(event),
        "Timestamp": "2026-11-25T12:00:00.000Z", "SignatureVersion": "1",
    }


def assert_three_days_on(lease: dict[str, object]) -> None:
    expires = datetime.fromisoformat(str(lease["expires_at"]))
    assert abs(expires - (datetime.now(timezone.utc) + timedelta(days=3))) < timedelta(minutes=2)


async def test_seed_verify_flow_gives_the_launched_instance_a_three_day_lease(stack: Stack) -> None:
    await stack.onboard()
    [instance] = await stack.run_instances(tags={"owner": "alice@bigdb.com", "Name": "build-box"})
    async with stack.ingestor():
        await stack.send(state_change_event(account_id=CUSTOMER, region=REGION, instance_id=instance, state="running"))
        [lease] = await eventually(lambda: stack.leases(instance_id=instance))
    assert lease["owner_email"] == "alice@bigdb.com"
    assert lease["status"] == "active"
    assert_three_days_on(lease)
    listed = await stack.cli("list", "leases", "--json")
    assert instance in listed.stdout


async def test_sns_wrapped_and_cloudtrail_events_lead_to_leases(stack: Stack) -> None:
    await stack.onboard()
    # Events through SNS are taken only from the topic bound to the cloud account (as the
    # admin enters it when verify cannot read the stack).
    bound = await stack.http.patch(
        f"/api/v1/cloudaccounts/{stack.ids['cloud_account']}", json={"topic_arns": {REGION: TOPIC_ARN}}
    )
    assert bound.status_code == 200, bound.text
    [wrapped] = await stack.run_instances(tags={"owner": "alice@bigdb.com"})
    trail = await stack.run_instances(count=2, tags={"owner": "alice@bigdb.com"})
    async with stack.ingestor():
        await stack.send(sns_wrapped(state_change_event(account_id=CUSTOMER, region=REGION, instance_id=wrapped, state="running")))
        await stack.send(cloudtrail_run_instances(trail))
        leases = await eventually(lambda: _leases_of(stack, [wrapped, *trail]))
    assert sorted(lease["instance_id"] for lease in leases) == sorted([wrapped, *trail])
    assert {lease["owner_email"] for lease in leases} == {"alice@bigdb.com"}


async def test_sweep_leases_what_no_event_announced_and_releases_what_vanished(stack: Stack) -> None:
    await stack.onboard()
    [silent] = await stack.run_instances(tags={"owner": "alice@bigdb.com"})
    async with stack.ingestor() as ingestor:
        await ingestor.sweep()
        [lease] = await eventually(lambda: stack.leases(instance_id=silent))
        assert lease["status"] == "active"
        await stack.terminate(silent)  # and AWS sends nothing we hear about
        await ingestor.sweep()
        await eventually(lambda: _status_is(stack, silent, "released"))
    released = await stack.audit(action="lease.released")
    assert released, "the release is in the audit log"


async def test_without_a_usable_owner_tag_the_admin_owns_the_lease_and_the_audit_says_why(stack: Stack) -> None:
    await stack.onboard(allowed=["*@bigdb.com"])
    untagged = (await stack.run_instances())[0]
    unknown = (await stack.run_instances(tags={"owner": "nobody@bigdb.com"}))[0]
    outsider = (await stack.run_instances(tags={"Owner": "mallory@elsewhere.org"}))[0]
    async with stack.ingestor() as ingestor:
        await ingestor.sweep()
        leases = await eventually(lambda: _leases_of(stack, [untagged, unknown, outsider]))
    admin = (await stack.http.get("/api/v1/users/me")).json()["email"]
    reasons = {lease["instance_id"]: lease["owner_reason"] for lease in leases}
    assert {lease["owner_email"] for lease in leases} == {admin}
    assert "no owner tag" in reasons[untagged]
    assert "nobody@bigdb.com" in reasons[unknown]
    assert "mallory@elsewhere.org" in reasons[outsider]
    created = await stack.audit(action="lease.created")
    assert {event["reason"] for event in created} >= set(reasons.values())


async def test_duplicates_reordering_and_two_ingestors_still_give_exactly_one_lease(stack: Stack) -> None:
    await stack.onboard()
    [instance] = await stack.run_instances(tags={"owner": "alice@bigdb.com"})
    running = state_change_event(account_id=CUSTOMER, region=REGION, instance_id=instance, state="running")
    stale = state_change_event(
        account_id=CUSTOMER, region=REGION, instance_id=instance, state="pending",
        time=datetime.now(timezone.utc) - timedelta(minutes=5),
    )
    async with stack.ingestor(), stack.ingestor():
        await stack.send(*([running] * 5), stale, running)
        await eventually(lambda: stack.leases(instance_id=instance))
        await eventually(lambda: _queue_drained(stack), timeout=30)
    leases = await stack.leases(instance_id=instance)
    assert len(leases) == 1 and leases[0]["status"] == "active"


async def test_bad_input_is_dead_lettered_with_a_reason_and_the_loop_keeps_going(stack: Stack) -> None:
    await stack.onboard()
    [good] = await stack.run_instances(tags={"owner": "alice@bigdb.com"})
    spoofed = state_change_event(account_id="999999999999", region=REGION, instance_id=good, state="running")
    unknown_type = {**state_change_event(account_id=CUSTOMER, region=REGION, instance_id=good, state="running"),
                    "detail-type": "EC2 Spot Instance Interruption Warning"}
    # Larger than the ingestor accepts, yet small enough for SQS to carry.
    oversized = json.dumps({**spoofed, "padding": "x" * 100_000})
    async with stack.ingestor(max_event_bytes=64 * 1024):
        await stack.send("{not json", spoofed, unknown_type, oversized,
                         state_change_event(account_id=CUSTOMER, region=REGION, instance_id=good, state="running"))
        [lease] = await eventually(lambda: stack.leases(instance_id=good))
        dead = await eventually(lambda: _dead_letters_at_least(stack, 4), timeout=30)
    reasons = " | ".join(m["MessageAttributes"]["zc_reason"]["StringValue"] for m in dead)
    assert "not JSON" in reasons and "not onboarded" in reasons and "Spot Instance" in reasons and "bytes" in reasons
    assert lease["owner_email"] == "alice@bigdb.com"
    assert len(await stack.leases()) == 1  # nothing leased for the spoofed account

    too_big = await stack.http.post(
        "/api/v1/cloudevents", content=json.dumps({**spoofed, "padding": "x" * 300_000}),
        headers={"Content-Type": "application/json"},
    )
    assert too_big.status_code == 413
    spoof = await stack.http.post("/api/v1/cloudevents", json=spoofed)
    assert spoof.status_code == 422 and "not onboarded" in spoof.json()["detail"]


async def _leases_of(stack: Stack, instance_ids: list[str]) -> list[dict[str, object]]:
    leases = [lease for lease in await stack.leases() if lease["instance_id"] in instance_ids]
    return leases if len(leases) == len(instance_ids) else []


async def _status_is(stack: Stack, instance_id: str, status: str) -> bool:
    return any(lease["status"] == status for lease in await stack.leases(instance_id=instance_id))


async def _queue_drained(stack: Stack) -> bool:
    async with stack.aws.client("sqs") as sqs:
        attrs = (await sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["All"]))["Attributes"]
    return attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


async def _dead_letters_at_least(stack: Stack, count: int) -> list[dict[str, object]]:
    found = await stack.dead_letters()
    return found if len(found) >= count else []
