"""`zerocloud-cli` as a real process, the way the seed and people run it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from zc_common.aws import AwsAccess, CloudAccountRole
from zc_common.cloudevents import state_change_event

from tests.cli.conftest import CUSTOMER, ROLE_ARN, SEED_ACCOUNT, SEED_CLOUDACCOUNT, RunningApi
from tests.support.credentials import INGESTOR_TOKEN
from tests.support.ports import free_port

CLI = str(Path(sys.executable).with_name("zerocloud-cli"))


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def test_seed_commands_as_a_real_process(api: RunningApi) -> None:
    env = {"ZC_API_URL": api.url, "ZC_API_TOKEN": api.admin_token}

    account = run("create", "account", "--payload", SEED_ACCOUNT, env=env)
    assert account.returncode == 0, account.stderr
    account_id = json.loads(run("list", "accounts", "--json", env=env).stdout)["data"][0]["id"]
    create_cloud = ("create", "cloudaccount", "--accountID", str(account_id), "--payload", SEED_CLOUDACCOUNT)
    cloud = run(*create_cloud, env=env)
    assert cloud.returncode == 0, cloud.stderr

    listed = run("list", "cloudaccounts", "--accountID", str(account_id), env=env)
    assert "111111111111" in listed.stdout

    refused = run(*create_cloud, env=env)  # the same AWS account again
    assert refused.returncode == 1
    assert "HTTP 409" in refused.stderr


def test_unreachable_api_as_a_real_process_exits_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    done = run("list", "accounts", env={"ZC_API_URL": url, "ZC_API_TOKEN": "zc_" + "x" * 40})

    assert done.returncode == 3
    assert f"could not reach the ZeroCloud api at {url}" in done.stderr
    assert "Traceback" not in done.stderr


def test_invalid_payload_as_a_real_process_exits_2() -> None:
    done = run("create", "account", "--payload", "{name: BigDB}", env={})

    assert done.returncode == 2
    assert "--payload is not valid JSON" in done.stderr


def test_poll_cloudevent_queue_once_turns_a_queued_event_into_a_lease(
    api_on_rabbitmq: RunningApi, moto: str, amqp_url: str, exchange: str
) -> None:
    """The ingestor's poller, run by the CLI in the foreground, reads a state-change event
    from SQS, looks the instance up in (moto's) AWS and the api gives it a lease."""
    api = api_on_rabbitmq
    env = {"ZC_API_URL": api.url, "ZC_API_TOKEN": api.admin_token}
    account = json.loads(run("create", "account", "--json", "--payload", SEED_ACCOUNT, env=env).stdout)
    cloud = run("create", "cloudaccount", "--accountID", str(account["id"]), "--payload", SEED_CLOUDACCOUNT, env=env)
    assert cloud.returncode == 0, cloud.stderr
    instance_id, queue_url = asyncio.run(_launch_and_queue(moto, f"events-{exchange}"))

    poll = run(
        "poll_cloudevent_queue", "--once", "--queue-url", queue_url, "--api-url", api.internal_url,
        "--service-token", INGESTOR_TOKEN, "--aws-endpoint-url", moto, "--amqp-url", amqp_url,
        "--wait-seconds", "1",
        env={"ZC_AMQP_EXCHANGE": exchange},
    )
    assert poll.returncode == 0, poll.stderr

    deadline = time.monotonic() + 30
    while True:
        leases = json.loads(run("list", "leases", "--json", "--instance-id", instance_id, env=env).stdout)
        if leases["count"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    [lease] = leases["data"]
    assert lease["status"] == "active"
    assert lease["owner_email"] == "admin@localhost"  # no owner tag: the account's first admin
    table = run("list", "leases", env=env).stdout
    assert instance_id in table and "active" in table


async def _launch_and_queue(moto: str, queue_name: str) -> tuple[str, str]:
    aws = AwsAccess(endpoint_url=moto, session_name="cli-test")
    async with aws.client("ec2", "us-east-1", CloudAccountRole(ROLE_ARN, "customer-admin")) as ec2:
        answer = await ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="t3.micro")
    instance_id = answer["Instances"][0]["InstanceId"]
    event = state_change_event(account_id=CUSTOMER, region="us-east-1", instance_id=instance_id, state="running")
    async with aws.client("sqs") as sqs:
        queue_url = (await sqs.create_queue(QueueName=queue_name))["QueueUrl"]
        await sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(event))
    return instance_id, queue_url
