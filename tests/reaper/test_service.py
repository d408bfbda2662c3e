"""A batch of LeaseExpired through the Reaper, against moto and the fake api: what is
stopped or terminated, in how many writes, what is never written to, and what is
reported to the api."""

from __future__ import annotations

import asyncio

import pytest

from zc_common.internal_api import ReapOutcomeKind
from zc_common.messages import ActionOnExpiry, CloudAccountMode, LeaseStatus

from tests.reaper.conftest import ReaperFactory
from tests.reaper.factories import (
    CUSTOMER,
    OTHER_CUSTOMER,
    OTHER_REGION,
    CountingAwsAccess,
    CustomerAccount,
    FakeApi,
    cloud_account,
)
from zc_reaper.retry import AwsUnavailable
from zc_reaper.service import Reaper

pytestmark = pytest.mark.asyncio


async def test_expired_running_instances_are_stopped_in_one_call(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    launched = await customer.launch(3)
    leases = [fake_api.lease(instance_id) for instance_id in launched]

    report = await reaper.reap(fake_api.expired(*leases))

    assert await customer.states(*launched) == {i: "stopped" for i in launched}
    assert aws.calls["StopInstances"] == 1
    assert aws.calls["TerminateInstances"] == 0
    assert report.claimed == 3
    assert sorted((o.lease_id, o.outcome) for o in fake_api.reported) == [
        (lease.lease_id, ReapOutcomeKind.stopped) for lease in leases
    ]
    assert all(lease.status is LeaseStatus.reaped for lease in leases)
    assert fake_api.requests["claim"] == 1 and fake_api.requests["outcomes"] == 1


async def test_terminate_action_terminates(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    launched = await customer.launch(2)
    leases = [fake_api.lease(i, action=ActionOnExpiry.terminate) for i in launched]

    await reaper.reap(fake_api.expired(*leases))

    assert await customer.states(*launched) == {i: "terminated" for i in launched}
    assert aws.calls["TerminateInstances"] == 1 and aws.calls["StopInstances"] == 0
    assert {o.outcome for o in fake_api.reported} == {ReapOutcomeKind.terminated}


async def test_renewed_lease_is_not_reaped(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    [instance_id] = await customer.launch()
    lease = fake_api.lease(instance_id)
    stale_timer = fake_api.expired(lease)
    fake_api.renew(lease)  # the renewal beats the timer that already fired

    report = await reaper.reap(stale_timer)

    assert report.refused == 1 and report.claimed == 0
    assert aws.writes == 0
    assert aws.calls["DescribeInstances"] == 0
    assert await customer.states(instance_id) == {instance_id: "running"}
    assert fake_api.reported == [] and lease.status is LeaseStatus.active


async def test_a_lease_still_owed_its_warning_is_left_alone(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    [instance_id] = await customer.launch()
    lease = fake_api.lease(instance_id)
    fake_api.warning_owed.add(lease.lease_id)

    report = await reaper.reap(fake_api.expired(lease))

    assert report.refused == 1 and report.refusals == {"warning_pending": 1} and report.claimed == 0
    assert aws.writes == 0 and aws.calls["DescribeInstances"] == 0
    assert await customer.states(instance_id) == {instance_id: "running"}
    assert fake_api.reported == [], "nothing to report: the new version's timer asks again"


async def test_observe_mode_writes_nothing(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    fake_api.records[1] = cloud_account(mode=CloudAccountMode.observe)
    launched = await customer.launch(2)
    leases = [fake_api.lease(i) for i in launched]

    report = await reaper.reap(fake_api.expired(*leases))

    assert report.observed == 2
    assert aws.writes == 0
    assert await customer.states(*launched) == {i: "running" for i in launched}
    assert all(lease.status is LeaseStatus.expired for lease in leases)


async def test_claim_in_an_observe_mode_account_is_not_acted_on(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    # Safe by default even if the api got it wrong: the reaper checks the mode itself.
    fake_api.records[1] = cloud_account(mode=CloudAccountMode.observe)
    fake_api.claims_regardless_of_mode = True
    [instance_id] = await customer.launch()
    lease = fake_api.lease(instance_id)

    await reaper.reap(fake_api.expired(lease))

    assert aws.writes == 0
    assert await customer.states(instance_id) == {instance_id: "running"}
    [outcome] = fake_api.reported
    assert outcome.outcome is ReapOutcomeKind.skipped and "observe mode" in (outcome.reason or "")


async def test_stop_protection_is_honoured(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    [protected] = await customer.launch(stop_protected=True)
    [unprotected] = await customer.launch()
    guarded, plain = fake_api.lease(protected), fake_api.lease(unprotected)

    await reaper.reap(fake_api.expired(guarded, plain))

    assert await customer.states(protected, unprotected) == {protected: "running", unprotected: "stopped"}
    assert aws.calls["DescribeInstanceAttribute"] == 0  # AWS refuses the protected one itself
    assert aws.calls["StopInstances"] == 2  # refused for the protected one, then the rest
    [skipped] = fake_api.outcomes_of(guarded)
    assert (skipped.outcome, skipped.reason) == (ReapOutcomeKind.skipped, "stop protection enabled")
    assert [o.outcome for o in fake_api.outcomes_of(plain)] == [ReapOutcomeKind.stopped]


async def test_termination_protection_is_honoured(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    [protected] = await customer.launch(termination_protected=True)
    lease = fake_api.lease(protected, action=ActionOnExpiry.terminate)

    await reaper.reap(fake_api.expired(lease))

    assert await customer.states(protected) == {protected: "running"}
    assert aws.calls["TerminateInstances"] == 1 and aws.calls["DescribeInstanceAttribute"] == 0
    [skipped] = fake_api.reported
    assert (skipped.outcome, skipped.reason) == (ReapOutcomeKind.skipped, "termination protection enabled")


async def test_already_stopped_instance_is_skipped(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    [instance_id] = await customer.launch()
    await customer.stop(instance_id)
    lease = fake_api.lease(instance_id)

    await reaper.reap(fake_api.expired(lease))

    assert aws.writes == 0
    [outcome] = fake_api.reported
    assert outcome.outcome is ReapOutcomeKind.skipped
    assert outcome.reason == "instance is already stopped"
    assert lease.status is LeaseStatus.expired


async def test_terminated_and_unknown_instances_are_gone(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    [terminated] = await customer.launch()
    await customer.terminate(terminated)
    gone, never_known = fake_api.lease(terminated), fake_api.lease("i-0123456789abcdef0")

    await reaper.reap(fake_api.expired(gone, never_known))

    assert aws.writes == 0
    assert [(o.outcome, o.reason) for o in fake_api.outcomes_of(gone)] == [
        (ReapOutcomeKind.gone, "instance is terminated")
    ]
    assert [(o.outcome, o.reason) for o in fake_api.outcomes_of(never_known)] == [
        (ReapOutcomeKind.gone, "instance no longer exists")
    ]
    assert gone.status is LeaseStatus.released and never_known.status is LeaseStatus.released


async def test_changed_owner_tag_is_skipped(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    [instance_id] = await customer.launch()
    await customer.tag(instance_id, "owner", "bob@bigdb.com")
    lease = fake_api.lease(instance_id)  # made while alice owned it

    await reaper.reap(fake_api.expired(lease))

    assert aws.writes == 0
    assert await customer.states(instance_id) == {instance_id: "running"}
    [outcome] = fake_api.reported
    assert outcome.outcome is ReapOutcomeKind.skipped
    assert "owner tag 'owner' changed" in (outcome.reason or "") and "bob@bigdb.com" in (outcome.reason or "")


async def test_owner_tag_key_is_matched_case_insensitively(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount
) -> None:
    [instance_id] = await customer.launch(tags={"Owner": " Alice@BigDB.com"})
    lease = fake_api.lease(instance_id, owner_tag="owner", owner_tag_value="alice@bigdb.com")

    await reaper.reap(fake_api.expired(lease))

    assert await customer.states(instance_id) == {instance_id: "stopped"}


async def test_instance_of_another_account_is_never_touched(
    reaper: Reaper, fake_api: FakeApi, other_customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    # The lease (cloud account 1, AWS account 111…) names an instance id that exists only
    # in another customer's account: looked up through account 1's role it does not exist.
    [foreign] = await other_customer.launch()
    lease = fake_api.lease(foreign)

    await reaper.reap(fake_api.expired(lease))

    assert aws.writes == 0
    assert await other_customer.states(foreign) == {foreign: "running"}
    assert [o.outcome for o in fake_api.reported] == [ReapOutcomeKind.gone]


async def test_role_outside_the_managed_account_is_never_used(
    reaper: Reaper, fake_api: FakeApi, other_customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    # A misconfigured record: managed account 111…, but its role is in 333…, where the
    # instance is. Acting through that role would act outside the managed account.
    fake_api.records[1] = cloud_account(upstream_account_id=CUSTOMER, role_account_id=OTHER_CUSTOMER)
    [foreign] = await other_customer.launch()
    lease = fake_api.lease(foreign)

    await reaper.reap(fake_api.expired(lease))

    assert aws.writes == 0 and aws.calls["DescribeInstances"] == 0
    assert await other_customer.states(foreign) == {foreign: "running"}
    [outcome] = fake_api.reported
    assert outcome.outcome is ReapOutcomeKind.skipped and "outside its AWS account" in (outcome.reason or "")


async def test_refused_role_is_reported_not_forced(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    aws.refused.add(fake_api.records[1].role_arn)
    [instance_id] = await customer.launch()
    lease = fake_api.lease(instance_id)

    await reaper.reap(fake_api.expired(lease))

    assert aws.writes == 0
    [outcome] = fake_api.reported
    assert outcome.outcome is ReapOutcomeKind.skipped and "AccessDenied" in (outcome.reason or "")


async def test_one_write_per_account_region_and_action(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    here = await customer.launch(3)
    there = await customer.launch(2, region=OTHER_REGION)
    doomed = await customer.launch(2)
    leases = (
        [fake_api.lease(i) for i in here]
        + [fake_api.lease(i, region=OTHER_REGION) for i in there]
        + [fake_api.lease(i, action=ActionOnExpiry.terminate) for i in doomed]
    )

    await reaper.reap(fake_api.expired(*leases))

    assert aws.calls["StopInstances"] == 2  # one per region
    assert aws.calls["TerminateInstances"] == 1
    assert await customer.states(*here, *doomed) == {
        **{i: "stopped" for i in here}, **{i: "terminated" for i in doomed}
    }
    assert await customer.states(*there, region=OTHER_REGION) == {i: "stopped" for i in there}
    assert len(fake_api.reported) == 7


async def test_throttled_stop_is_retried_and_done(
    make_reaper: ReaperFactory, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    reaper = make_reaper(aws_attempts=4)
    launched = await customer.launch(3)
    leases = [fake_api.lease(i) for i in launched]
    aws.throttle("StopInstances", 3)
    aws.throttle("DescribeInstances", 2, code="InternalError", status=500)

    await reaper.reap(fake_api.expired(*leases))

    assert aws.calls["StopInstances"] == 4  # three throttled, then one that went through
    assert await customer.states(*launched) == {i: "stopped" for i in launched}
    assert [o.outcome for o in fake_api.reported] == [ReapOutcomeKind.stopped] * 3


async def test_throttling_past_the_retry_loop_hands_the_batch_back(
    make_reaper: ReaperFactory, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    reaper = make_reaper(aws_attempts=2)
    launched = await customer.launch(2)
    leases = [fake_api.lease(i) for i in launched]
    aws.throttle("StopInstances", 2)

    with pytest.raises(AwsUnavailable):
        await reaper.reap(fake_api.expired(*leases))

    assert await customer.states(*launched) == {i: "running" for i in launched}
    assert fake_api.reported == []
    assert all(lease.status is LeaseStatus.reaping for lease in leases)


async def test_outcomes_the_api_missed_are_reported_on_retry_without_acting_again(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    [instance_id] = await customer.launch()
    lease = fake_api.lease(instance_id)
    fake_api.failing_outcomes = 1
    messages = fake_api.expired(lease)

    with pytest.raises(Exception, match="503"):
        await reaper.reap(messages)
    await reaper.reap(messages)  # the bus's retry: the claim answers the same version again

    assert aws.calls["StopInstances"] == 1
    assert [o.outcome for o in fake_api.reported] == [ReapOutcomeKind.stopped]
    assert lease.status is LeaseStatus.reaped


async def test_a_lease_in_two_batches_at_once_is_acted_on_by_one(
    reaper: Reaper, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    # A duplicate LeaseExpired in a batch running alongside: acting twice could see the
    # instance "already stopping" and report a skip for what this reaper stopped.
    [instance_id] = await customer.launch()
    lease = fake_api.lease(instance_id)
    messages = fake_api.expired(lease)

    await asyncio.gather(reaper.reap(messages), reaper.reap(messages))

    assert aws.calls["StopInstances"] == 1 and fake_api.requests["claim"] == 1
    assert [o.outcome for o in fake_api.reported] == [ReapOutcomeKind.stopped]
    assert lease.status is LeaseStatus.reaped


async def test_instances_a_failed_write_reached_are_reported_stopped_on_the_retry(
    make_reaper: ReaperFactory, fake_api: FakeApi, customer: CustomerAccount, aws: CountingAwsAccess
) -> None:
    # moto stops the instances before a protected one, then refuses; the call for the rest
    # then throttles past the retry loop. On the bus's retry the live check finds those
    # stopped: what this reaper did, not "already stopped".
    reaper = make_reaper(aws_attempts=2, message_retry_delay=0.01)
    plain = await customer.launch(3)
    [protected] = await customer.launch(stop_protected=True)
    leases = {i: fake_api.lease(i) for i in [plain[0], plain[1], protected, plain[2]]}
    messages = fake_api.expired(*leases.values())
    aws.throttle("StopInstances", 2, after=1)

    with pytest.raises(AwsUnavailable):
        await reaper.reap(messages)
    assert await customer.states(*plain) == {plain[0]: "stopped", plain[1]: "stopped", plain[2]: "running"}
    await asyncio.sleep(0.05)  # the account rests for half the bus's retry delay
    await reaper.reap(messages)

    assert {i: [(o.outcome, o.reason) for o in fake_api.outcomes_of(lease)] for i, lease in leases.items()} == {
        **{i: [(ReapOutcomeKind.stopped, None)] for i in plain},
        protected: [(ReapOutcomeKind.skipped, "stop protection enabled")],
    }
    assert await customer.states(*plain, protected) == {**{i: "stopped" for i in plain}, protected: "running"}
