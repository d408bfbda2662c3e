"""DescribeInstances as the ingestor uses it: by the instance-id filter, in chunks, unknown
ids coming back without a snapshot instead of failing the call."""

from __future__ import annotations

import pytest

from zc_common.aws import CloudAccountRole
from zc_common.messages import InstanceState

from tests.ingestor.factories import CUSTOMER, REGION, CountingAwsAccess, CustomerAccount
from zc_ingestor.describe import describe_instances, snapshot_of

pytestmark = pytest.mark.asyncio

ROLE = CloudAccountRole(f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud", "zc-external-1")


def unknown_ids(count: int) -> list[str]:
    return [f"i-{n:017x}" for n in range(1, count + 1)]


async def test_unknown_ids_do_not_fail_the_call(moto: str, customer: CustomerAccount) -> None:
    [known] = await customer.launch(tags={"owner": "alice@bigdb.com", "Name": "db"})
    aws = CountingAwsAccess(endpoint_url=moto)

    async with aws.client("ec2", REGION, ROLE) as ec2:
        found = await describe_instances(ec2, [known, *unknown_ids(2)])

    assert aws.calls["DescribeInstances"] == 1
    assert found[known].snapshot is not None
    assert found[known].snapshot.state is InstanceState.running
    assert found[known].snapshot.tags == {"owner": "alice@bigdb.com", "Name": "db"}
    assert all(found[i].snapshot is None and found[i].gone for i in unknown_ids(2))


async def test_more_than_200_ids_are_described_in_chunks_of_200(
    moto: str, customer: CustomerAccount
) -> None:
    known = await customer.launch(3)
    aws = CountingAwsAccess(endpoint_url=moto)

    async with aws.client("ec2", REGION, ROLE) as ec2:
        found = await describe_instances(ec2, [*unknown_ids(400), *known])

    assert aws.calls["DescribeInstances"] == 3
    assert len(found) == 403
    assert all(found[i].snapshot is not None for i in known)


async def test_instances_of_another_account_are_not_seen(
    moto: str, customer: CustomerAccount, other_customer: CustomerAccount
) -> None:
    [theirs] = await other_customer.launch()
    aws = CountingAwsAccess(endpoint_url=moto)

    async with aws.client("ec2", REGION, ROLE) as ec2:
        found = await describe_instances(ec2, [theirs])

    assert found[theirs].snapshot is None


async def test_a_tag_carrying_nul_is_recorded_with_a_replacement_so_the_instance_is_still_leased() -> None:
    # EC2's XML answers cannot carry U+0000, but nothing else stops one; refusing the
    # snapshot would leave the instance without a lease, so the character is replaced.
    snapshot = snapshot_of({
        "InstanceId": "i-0123456789abcdef0", "InstanceType": "t3.micro", "State": {"Name": "running"},
        "Tags": [{"Key": "owner", "Value": "alice@bigdb.com\x00"}, {"Key": "x\x00", "Value": "y"}],
    })

    assert snapshot.tags == {"owner": "alice@bigdb.com\ufffd", "x\ufffd": "y"}
