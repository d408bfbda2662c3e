"""The event queue: events become ResourceChanges described by AWS, deleted only after
the publish; what cannot be used is dead-lettered with its reason."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from zc_common.cloudevents import STATE_CHANGE, parse_event, probe_event, state_change_event
from zc_common.messages import InstanceState, utcnow

from tests.ingestor.conftest import IngestorFactory
from tests.ingestor.factories import (
    CUSTOMER,
    NOT_ONBOARDED,
    OTHER_CUSTOMER,
    REGION,
    CustomerAccount,
    EventQueues,
    FakeApi,
    RecordingBus,
    aws_of,
    cloud_account,
    run_instances_event,
    sns_wrapped,
    topic_arn,
)
from tests.support.waiting import eventually
from zc_ingestor import poller
from zc_ingestor.service import Ingestor

pytestmark = pytest.mark.asyncio


def running(instance_id: str, account_id: str = CUSTOMER, region: str = REGION) -> dict[str, object]:
    return state_change_event(account_id=account_id, region=region, instance_id=instance_id, state="running")


async def test_state_change_event_becomes_one_change_from_aws_and_is_deleted(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    [instance_id] = await customer.launch(tags={"owner": "alice@bigdb.com", "Name": "build-box"}, instance_type="m5.large")
    event = running(instance_id)
    await queues.send(event)
    before = utcnow()

    result = await ingestor.poll_once(queues.url)

    assert (result.received, result.published, result.deleted) == (1, 1, 1)
    [change] = recording_bus.changes
    assert change.event_name == STATE_CHANGE
    assert change.event_id == event["id"]
    assert change.event_source == "aws.ec2"
    assert change.aws_region == REGION
    assert change.recipient_account_id == CUSTOMER
    assert change.instance_id == instance_id
    assert [r.arn for r in change.resources] == [f"arn:aws:ec2:{REGION}:{CUSTOMER}:instance/{instance_id}"]
    assert change.instance is not None and not change.gone
    assert change.instance.state is InstanceState.running
    assert change.instance.instance_type == "m5.large"
    assert change.instance.tags == {"owner": "alice@bigdb.com", "Name": "build-box"}
    assert change.instance.launch_time is not None
    assert before <= change.observed_at <= utcnow()
    assert await queues.waiting() == 0


async def test_event_is_only_a_hint_what_is_published_comes_from_aws(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    [instance_id] = await customer.launch()
    await customer.terminate(instance_id)
    await queues.send(running(instance_id))  # a stale event: AWS says terminated

    await ingestor.poll_once(queues.url)

    [change] = recording_bus.changes
    assert change.instance is not None and change.instance.state is InstanceState.terminated
    assert change.gone


async def test_sns_wrapped_event_is_followed(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    [instance_id] = await customer.launch()
    await queues.send(sns_wrapped(running(instance_id)))

    result = await ingestor.poll_once(queues.url)

    assert result.deleted == 1
    assert [c.instance_id for c in recording_bus.changes] == [instance_id]


async def test_sns_event_from_another_tenants_topic_naming_this_account_is_dead_lettered(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus,
    fake_api: FakeApi,
) -> None:
    # Tenant B's stack publishes to B's topic an event that names tenant A's account.
    fake_api.records = [cloud_account(1, CUSTOMER), cloud_account(2, OTHER_CUSTOMER)]
    [instance_id] = await customer.launch()
    forged = sns_wrapped(running(instance_id), topic=topic_arn(OTHER_CUSTOMER))
    await queues.send(forged)

    result = await ingestor.poll_once(queues.url)

    assert result.dead_lettered == 1 and result.published == 0 and recording_bus.published == []
    assert aws_of(ingestor).calls["DescribeInstances"] == 0
    [(body, reason)] = await queues.dead_letters()
    assert json.loads(body) == forged
    assert reason.startswith(f"{topic_arn(OTHER_CUSTOMER)} is not bound to the cloud account of AWS account {CUSTOMER}")
    assert ingestor.counters["events_wrong_topic"] == 1
    assert await queues.waiting() == 0


async def test_sns_event_of_an_account_whose_topic_is_not_bound_yet_is_dead_lettered(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus,
    fake_api: FakeApi,
) -> None:
    fake_api.records = [cloud_account(topic_arns={})]
    [instance_id] = await customer.launch()
    await queues.send(sns_wrapped(running(instance_id)), running(instance_id))

    result = await ingestor.poll_once(queues.url)

    # The raw event from ZeroCloud's own queue is followed as before; the SNS one is not.
    assert result.dead_lettered == 1 and result.deleted == 1
    assert [c.instance_id for c in recording_bus.changes] == [instance_id]
    [(_, reason)] = await queues.dead_letters()
    assert "is not bound to the cloud account" in reason


async def test_sns_event_without_a_topic_arn_is_dead_lettered(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    [instance_id] = await customer.launch()
    envelope = sns_wrapped(running(instance_id))
    del envelope["TopicArn"]
    await queues.send(envelope)

    await ingestor.poll_once(queues.url)

    assert recording_bus.published == []
    [(_, reason)] = await queues.dead_letters()
    assert reason.startswith("an SNS notification without a TopicArn is not bound")


async def test_run_instances_of_three_is_one_describe_call_and_three_changes(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    instance_ids = await customer.launch(3)
    event = run_instances_event(instance_ids)
    await queues.send(event)

    await ingestor.poll_once(queues.url)

    assert aws_of(ingestor).calls["DescribeInstances"] == 1
    assert sorted(c.instance_id for c in recording_bus.changes) == sorted(instance_ids)
    assert {c.event_name for c in recording_bus.changes} == {"RunInstances"}
    assert {c.event_id for c in recording_bus.changes} == {event["detail"]["eventID"]}
    assert all(c.instance is not None and not c.gone for c in recording_bus.changes)


async def test_a_batch_is_described_once_per_cloud_account_and_region(
    ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    fake_api.records = [cloud_account(regions=(REGION, "eu-west-1"))]
    east = await customer.launch(4)
    [west] = await customer.launch(region="eu-west-1")
    await queues.send(*(running(i) for i in east), running(west, region="eu-west-1"), running(east[0]))

    result = await ingestor.poll_once(queues.url)

    assert result.received == 6 and result.deleted == 6
    assert aws_of(ingestor).calls["DescribeInstances"] == 2
    # One change per instance, however many events of the batch named it.
    assert sorted(c.instance_id for c in recording_bus.changes) == sorted([*east, west])


async def test_a_hint_whose_instance_aws_does_not_list_changes_nothing(
    ingestor: Ingestor, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    # Only a sweep of the recorded region may declare an instance gone: a hint that finds
    # nothing is inconclusive (it may name the wrong region, or AWS may lag).
    await queues.send(running("i-0123456789abcdef0"))

    result = await ingestor.poll_once(queues.url)

    assert result.deleted == 1 and recording_bus.changes == []


async def test_a_hint_naming_the_wrong_region_does_not_release_a_running_instance(
    ingestor: Ingestor, fake_api: FakeApi, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    fake_api.records = [cloud_account(regions=(REGION, "us-west-2"))]
    [instance] = await customer.launch()  # running in REGION
    await queues.send(running(instance, region="us-west-2"), running(instance))

    await ingestor.poll_once(queues.url)

    [change] = recording_bus.changes
    assert (change.aws_region, change.gone) == (REGION, False)


async def test_event_of_account_not_onboarded_is_dead_lettered_and_nothing_published(
    ingestor: Ingestor, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    event = running("i-0123456789abcdef0", account_id=NOT_ONBOARDED)
    await queues.send(event)

    result = await ingestor.poll_once(queues.url)

    assert result.dead_lettered == 1 and result.published == 0
    assert recording_bus.published == []
    assert aws_of(ingestor).calls["DescribeInstances"] == 0
    [(body, reason)] = await queues.dead_letters()
    assert json.loads(body) == event
    assert reason == f"AWS account {NOT_ONBOARDED} is not onboarded"
    assert ingestor.counters["events_not_onboarded"] == 1
    assert await queues.waiting() == 0


async def test_event_of_region_not_watched_is_dead_lettered(
    ingestor: Ingestor, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    await queues.send(running("i-0123456789abcdef0", region="ap-south-1"))

    await ingestor.poll_once(queues.url)

    assert recording_bus.published == []
    [(_, reason)] = await queues.dead_letters()
    assert "region ap-south-1 is not watched" in reason


async def test_unusable_events_are_dead_lettered_and_polling_goes_on(
    make_ingestor: IngestorFactory, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    ingestor = make_ingestor(max_event_bytes=1024)
    [instance_id] = await customer.launch()
    oversized = running(instance_id) | {"padding": "x" * 2000}
    unknown_kind = running(instance_id) | {"detail-type": "EC2 Spot Instance Interruption Warning"}
    not_read = run_instances_event([instance_id]) | {"detail": {"eventName": "DescribeVolumes"}}
    await queues.send("{not json", unknown_kind, oversized, not_read)
    await queues.send(running(instance_id))

    await ingestor.start()
    await eventually(lambda: len(recording_bus.changes) == 1)
    await eventually(lambda: ingestor.counters["events_dead_lettered"] == 4)
    await ingestor.stop()

    assert recording_bus.changes[0].instance_id == instance_id
    reasons = sorted(reason for _, reason in await queues.dead_letters())
    assert len(reasons) == 4
    assert any(r.startswith("not JSON") for r in reasons)
    assert any("'EC2 Spot Instance Interruption Warning' is not one ZeroCloud reads" in r for r in reasons)
    assert any("more than the 1024 allowed" in r for r in reasons)
    assert any("CloudTrail event 'DescribeVolumes' is not one ZeroCloud reads" in r for r in reasons)
    assert await queues.waiting() == 0


async def test_without_dead_letter_queue_unusable_events_are_dropped(
    make_ingestor: IngestorFactory, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    ingestor = make_ingestor(event_dead_letter_queue_url=None)
    await queues.send("{not json")

    result = await ingestor.poll_once(queues.url)

    assert result.dead_lettered == 1
    assert ingestor.counters["events_dropped"] == 1
    assert await queues.waiting() == 0
    assert await queues.dead_letters() == []


async def test_failed_publish_leaves_the_message_on_the_queue(
    make_ingestor: IngestorFactory, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    ingestor = make_ingestor(poll_wait_seconds=15, visibility_timeout=5)
    [instance_id] = await customer.launch()
    await queues.send(running(instance_id))
    recording_bus.refusing = True

    received = time.monotonic()  # the visibility timeout runs from the first receive
    with pytest.raises(ConnectionError):
        await ingestor.poll_once(queues.url)
    assert await queues.waiting() == 1

    recording_bus.refusing = False
    result = await ingestor.poll_once(queues.url)  # long-polls until the message is visible again

    # It came back only when its visibility timeout ran out: it was never deleted.
    assert time.monotonic() - received >= 4.5
    assert (result.received, result.published, result.deleted) == (1, 1, 1)
    assert [c.instance_id for c in recording_bus.changes] == [instance_id]
    assert await queues.waiting() == 0


async def test_event_that_cannot_be_described_now_is_left_for_a_retry(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    [instance_id] = await customer.launch()
    aws_of(ingestor).refused.add(f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud")
    await queues.send(running(instance_id))

    result = await ingestor.poll_once(queues.url)

    assert (result.left, result.deleted, result.dead_lettered) == (1, 0, 0)
    assert recording_bus.published == []
    assert await queues.waiting() == 1
    assert await queues.dead_letters() == []


async def test_a_failing_queue_does_not_stop_the_others(
    make_ingestor: IngestorFactory, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    missing_queue = queues.url.rsplit("/", 1)[0] + f"/missing-{uuid.uuid4().hex[:8]}"
    ingestor = make_ingestor(event_queue_urls=[missing_queue, queues.url])
    [instance_id] = await customer.launch()
    await queues.send(running(instance_id))

    await ingestor.start()
    await eventually(lambda: len(recording_bus.changes) == 1 and ingestor.counters["poll_errors"] >= 1)
    await ingestor.stop()

    assert recording_bus.changes[0].instance_id == instance_id


async def test_several_pollers_share_a_queue_and_every_event_is_followed(
    make_ingestor: IngestorFactory, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    ingestor = make_ingestor(pollers_per_queue=3)
    launched = await customer.launch(25)
    await queues.send(*(running(instance_id) for instance_id in launched))

    await ingestor.start()
    assert len([task for task in asyncio.all_tasks() if task.get_name().startswith("poll:")]) == 3
    await eventually(lambda: ingestor.counters["events_deleted"] >= 25, timeout=30)
    await ingestor.stop()

    assert {c.instance_id for c in recording_bus.changes} == set(launched)
    assert await queues.waiting() == 0


async def test_arrivals_through_a_topic_are_told_at_most_every_few_seconds_and_probes_at_once(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, fake_api: FakeApi
) -> None:
    [instance_id] = await customer.launch()
    clock = [1000.0]
    ingestor.poller.clock = lambda: clock[0]
    topic = topic_arn(CUSTOMER)

    for advance in (0.0, 1.0, 1.0):  # the first batch is told, the next two are too soon
        clock[0] += advance
        await queues.send(sns_wrapped(running(instance_id)))
        await ingestor.poll_once(queues.url)
    await queues.send(sns_wrapped(probe()))  # a probe is told at once, however soon
    await ingestor.poll_once(queues.url)
    clock[0] += poller.ARRIVAL_REPORT_SECONDS
    await queues.send(sns_wrapped(running(instance_id)))
    await ingestor.poll_once(queues.url)

    assert [(a.topic_arn, a.probe) for a in fake_api.arrivals] == [
        (topic, None), (topic, "probe-nonce-0123456789abcdef"), (topic, None),
    ]
    assert fake_api.requests["event_arrivals"] == 3


async def test_stop_does_not_wait_for_a_long_poll(make_ingestor: IngestorFactory) -> None:
    ingestor = make_ingestor(poll_wait_seconds=20)
    await ingestor.start()
    await asyncio.sleep(0.5)

    started = time.monotonic()
    await ingestor.stop()

    assert time.monotonic() - started < 3


async def test_changes_are_ordered_by_when_aws_was_asked(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    [instance_id] = await customer.launch()
    await queues.send(running(instance_id))
    await ingestor.poll_once(queues.url)
    await customer.terminate(instance_id)
    await queues.send(running(instance_id))
    await ingestor.poll_once(queues.url)

    first, second = recording_bus.changes
    assert first.observed_at < second.observed_at
    assert not first.gone and second.gone


async def test_an_event_carrying_nul_is_dead_lettered_alone_and_its_batch_goes_through(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus
) -> None:
    first, second = await customer.launch(count=2)
    nul = state_change_event(account_id=CUSTOMER, region=REGION, instance_id=first, state="running",
                             event_id="evt-\x00")
    await queues.send(running(first), nul, running(second))

    result = await ingestor.poll_once(queues.url)

    assert (result.received, result.dead_lettered, result.deleted) == (3, 1, 2)
    assert sorted(c.instance_id for c in recording_bus.changes) == sorted([first, second])
    [(_, reason)] = await queues.dead_letters()
    assert reason.startswith("id contains U+0000"), reason
    assert await queues.waiting() == 0



# --- verify's probes, and telling the api events flow ------------------------------------------


def probe(account_id: str = CUSTOMER, nonce: str = "probe-nonce-0123456789abcdef") -> dict[str, object]:
    return probe_event(account_id=account_id, region=REGION, nonce=nonce)


async def test_a_probe_through_the_bound_topic_is_told_to_the_api_and_nothing_else_happens(
    ingestor: Ingestor, customer: CustomerAccount, queues: EventQueues, recording_bus: RecordingBus,
    fake_api: FakeApi,
) -> None:
    [instance_id] = await customer.launch()
    await queues.send(sns_wrapped(probe()), sns_wrapped(running(instance_id)))

    result = await ingestor.poll_once(queues.url)

    assert (result.received, result.deleted, result.dead_lettered) == (2, 2, 0)
    assert [c.instance_id for c in recording_bus.changes] == [instance_id]  # the probe changes nothing
    assert aws_of(ingestor).calls["DescribeInstances"] == 1
    topic = topic_arn(CUSTOMER)
    assert sorted((a.topic_arn, a.probe or "") for a in fake_api.arrivals) == [
        (topic, ""), (topic, "probe-nonce-0123456789abcdef"),
    ]
    assert await queues.waiting() == 0


async def test_a_probe_through_another_tenants_topic_or_not_through_a_topic_is_not_taken(
    ingestor: Ingestor, queues: EventQueues, fake_api: FakeApi
) -> None:
    fake_api.records = [cloud_account(1, CUSTOMER), cloud_account(2, OTHER_CUSTOMER)]
    forged = sns_wrapped(probe(CUSTOMER), topic=topic_arn(OTHER_CUSTOMER))
    await queues.send(forged, probe(CUSTOMER))

    result = await ingestor.poll_once(queues.url)

    assert result.dead_lettered == 2 and fake_api.arrivals == []
    reasons = sorted(reason for _, reason in await queues.dead_letters())
    assert reasons[0].startswith("a ZeroCloud probe is taken only through a topic verify bound")
    assert reasons[1].startswith(f"{topic_arn(OTHER_CUSTOMER)} is not bound to the cloud account")


async def test_a_topic_bound_since_the_cloud_account_was_cached_is_taken(
    make_ingestor: IngestorFactory, customer: CustomerAccount, queues: EventQueues,
    recording_bus: RecordingBus, fake_api: FakeApi,
) -> None:
    ingestor = make_ingestor(account_cache_seconds=600)
    fake_api.records = [cloud_account(topic_arns={})]
    [instance_id] = await customer.launch()
    await queues.send(running(instance_id))
    await ingestor.poll_once(queues.url)  # caches the cloud account, no topic bound yet
    fake_api.records = [cloud_account()]  # verify bound the topic a moment later

    await queues.send(sns_wrapped(running(instance_id)))
    result = await ingestor.poll_once(queues.url)

    assert (result.deleted, result.dead_lettered) == (1, 0)
    assert fake_api.requests["cloudaccounts"] == 2


async def test_batches_followed_at_once_share_describe_calls(
    ingestor: Ingestor, customer: CustomerAccount
) -> None:
    launched = await customer.launch(6)
    hints = [parse_event(running(instance_id)) for instance_id in launched]

    followed = await asyncio.gather(*(ingestor.follower.follow(hints[n : n + 2]) for n in range(0, 6, 2)))

    # Fewer calls than batches: those asking while a call is out (or before it goes) share one.
    assert 1 <= aws_of(ingestor).calls["DescribeInstances"] < 3
    assert [sorted(c.instance_id for c in f.changes) for f in followed] == [
        sorted(launched[n : n + 2]) for n in range(0, 6, 2)
    ]
    assert all(o.verdict.value == "observed" for f in followed for o in f.outcomes)


async def test_a_shared_describe_that_fails_leaves_every_batch_sharing_it_for_a_retry(
    ingestor: Ingestor, customer: CustomerAccount
) -> None:
    launched = await customer.launch(4)
    hints = [parse_event(running(instance_id)) for instance_id in launched]
    aws_of(ingestor).throttle("DescribeInstances", 100)

    followed = await asyncio.gather(*(ingestor.follower.follow(hints[n : n + 2]) for n in range(0, 4, 2)))

    assert all(o.verdict.value == "failed" and "DescribeInstances" in (o.reason or "")
               for f in followed for o in f.outcomes)
    assert [f.changes for f in followed] == [[], []]
