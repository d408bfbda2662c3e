"""The counting fault proxy in front of moto (tests/support/aws_proxy.py): what the bench
and the fault suite count and break must be what a real client sent and would see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.aws_proxy import create_proxy
from tests.support.serving import serving_in_thread

NO_RETRIES = Config(retries={"total_max_attempts": 1})


@pytest.fixture
def proxy(moto: str) -> Iterator[str]:
    with serving_in_thread(create_proxy(moto), name="aws-proxy") as url:  # type: ignore[arg-type]
        yield url


def client(proxy: str, service: str) -> Any:
    return boto3.client(
        service, endpoint_url=proxy, region_name="us-east-1", aws_access_key_id="proxy-test",
        aws_secret_access_key="proxy-test", config=NO_RETRIES,
    )


def test_counts_each_call_by_service_and_action_in_every_protocol(proxy: str) -> None:
    ec2, sqs, sts = client(proxy, "ec2"), client(proxy, "sqs"), client(proxy, "sts")
    ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2)
    ec2.describe_instances()
    ec2.describe_instances()
    queue = sqs.create_queue(QueueName="counted")["QueueUrl"]  # JSON protocol (X-Amz-Target)
    sqs.send_message(QueueUrl=queue, MessageBody="x")
    sts.get_caller_identity()
    httpx.post(f"{proxy}/moto-api/reset")  # moto's own routes are not AWS calls

    counted = httpx.get(f"{proxy}/_proxy/calls").json()
    assert counted["calls"] == {
        "ec2:RunInstances": 1, "ec2:DescribeInstances": 2, "sqs:CreateQueue": 1, "sqs:SendMessage": 1,
        "sts:GetCallerIdentity": 1,
    }
    assert counted["faults"] == {}
    assert counted["moto_only"] == {}
    httpx.post(f"{proxy}/_proxy/reset")
    assert httpx.get(f"{proxy}/_proxy/calls").json() == {"calls": {}, "faults": {}, "moto_only": {}}


def test_pages_only_moto_makes_are_told_apart_from_pages_aws_would_send_too(proxy: str) -> None:
    """moto pages a DescribeInstances asked without MaxResults by 100 reservations; AWS
    answers it whole. Pages asked for with MaxResults are real on both."""
    ec2 = client(proxy, "ec2")
    ids = [ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
           for _ in range(101)]
    httpx.post(f"{proxy}/_proxy/reset")
    whole = [r for page in ec2.get_paginator("describe_instances").paginate() for r in page["Reservations"]]
    by_ids = [r for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=ids)
              for r in page["Reservations"]]
    counted = httpx.get(f"{proxy}/_proxy/calls").json()
    pages_whole, pages_by_ids = 2, 2  # 101 reservations, by 100
    assert (len(whole), len(by_ids)) == (101, 101)
    assert counted["calls"] == {"ec2:DescribeInstances": pages_whole + pages_by_ids}
    assert counted["moto_only"] == {"ec2:DescribeInstances": (pages_whole - 1) + (pages_by_ids - 1)}

    httpx.post(f"{proxy}/_proxy/reset")
    paged = [r for page in ec2.get_paginator("describe_instances").paginate(PaginationConfig={"PageSize": 100})
             for r in page["Reservations"]]
    counted = httpx.get(f"{proxy}/_proxy/calls").json()
    assert len(paged) == 101
    assert counted["calls"] == {"ec2:DescribeInstances": 2}  # asked for by 100: both pages are real
    assert counted["moto_only"] == {}


def test_faults_answer_in_the_shape_aws_uses_so_clients_see_throttling_and_5xx(proxy: str) -> None:
    sqs = client(proxy, "sqs")
    queue = sqs.create_queue(QueueName="faulty")["QueueUrl"]
    answer = httpx.put(f"{proxy}/_proxy/faults", json={"rate": 1.0, "seed": 3})
    assert answer.status_code == 200
    seen: dict[str, set[tuple[str, int]]] = {"ec2": set(), "sqs": set(), "sts": set()}
    calls = {
        "ec2": lambda: client(proxy, "ec2").describe_instances(),
        "sqs": lambda: sqs.send_message(QueueUrl=queue, MessageBody="x"),
        "sts": lambda: client(proxy, "sts").get_caller_identity(),
    }
    for service, call in calls.items():
        for _ in range(12):
            with pytest.raises(ClientError) as failure:
                call()
            error = failure.value.response
            seen[service].add((error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]))
    assert seen["ec2"] == {("RequestLimitExceeded", 503), ("InternalError", 500)}
    assert seen["sqs"] == {("ThrottlingException", 400), ("InternalFailure", 500)}
    assert seen["sts"] == {("Throttling", 400), ("InternalFailure", 500)}
    faults = httpx.get(f"{proxy}/_proxy/calls").json()["faults"]
    assert faults == {"ec2:DescribeInstances": 12, "sqs:SendMessage": 12, "sts:GetCallerIdentity": 12}


def test_faults_can_be_limited_to_a_service_and_a_share_and_switched_off(proxy: str) -> None:
    ec2, sts = client(proxy, "ec2"), client(proxy, "sts")
    httpx.put(f"{proxy}/_proxy/faults", json={"rate": 0.3, "services": ["ec2"], "seed": 11})
    failed = 0
    for _ in range(200):
        sts.get_caller_identity()  # never failed: not a faulted service
        try:
            ec2.describe_instances()
        except ClientError:
            failed += 1
    assert 35 <= failed <= 85, f"{failed} of 200 failed at a 30% rate"
    httpx.put(f"{proxy}/_proxy/faults", json={"rate": 0})
    for _ in range(20):
        ec2.describe_instances()
    refused = httpx.put(f"{proxy}/_proxy/faults", json={"rate": 2})
    assert refused.status_code == 422
