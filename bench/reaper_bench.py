"""Reaper benchmark: 1,000 expired leases of running instances in one account and region
of a moto server, published as LeaseExpired on the bus and reaped by the Reaper. Prints,
per run, the AWS write calls (StopInstances + TerminateInstances), the other EC2 calls,
the wall time from publish to the last outcome reported, and how many instances moto
shows stopped afterwards; then the median wall time.

    python bench/reaper_bench.py [--instances 1000] [--per-launch 100] [--runs 3] [--bus memory|rabbitmq]

Each run starts from an emptied moto server and launches its own instances (not timed);
the api is an in-memory stand-in that claims every lease (enforce mode). The moto server
is single-threaded in effect (one GIL) and does most of the work, so the CPU seconds it
and this process spent are printed too: unlike the wall time they do not depend on what
else the machine is running.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from zc_common.aws import AwsAccess, CloudAccountRole
from zc_common.bus import Bus
from zc_common.bus.memory import InProcessBus
from zc_common.bus.rabbit import RabbitBus
from zc_common.internal_api import (
    ClaimedLease,
    ClaimResult,
    CloudAccountRecord,
    InternalApi,
    LeaseRef,
    ReapOutcome,
    ReapOutcomeKind,
)
from zc_common.messages import ActionOnExpiry, CloudAccountMode, LeaseExpired, LeaseSnapshot, LeaseStatus
from zc_common.settings import ReaperSettings

from zc_reaper import handlers
from zc_reaper.service import Reaper

# The suite's shared scaffolding (tests/support), from the repository this script is in.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.aws_doubles import WRITES, CountingAwsAccess  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

ACCOUNT = "111111111111"
REGION = "us-east-1"
OWNER = "bench@bigdb.com"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
RECORD = CloudAccountRecord(
    id=1, account_id=1, name="bench", upstream_account_id=ACCOUNT,
    role_arn=f"arn:aws:iam::{ACCOUNT}:role/ZeroCloud", external_id="zc-bench",
    regions=[REGION], mode=CloudAccountMode.enforce,
)


class BenchApi(InternalApi):
    """The api's answers the reaper needs: one enforcing cloud account, every lease claimed,
    outcomes recorded."""

    def __init__(self, snapshots: dict[int, LeaseSnapshot]) -> None:
        super().__init__("http://api.invalid", "bench-service-token-0123456789")
        self.snapshots = snapshots
        self.outcomes: dict[int, ReapOutcome] = {}
        self.all_reported = asyncio.Event()

    async def cloud_accounts(self, upstream_account_id: str | None = None) -> list[CloudAccountRecord]:
        return [RECORD]

    async def claim(self, leases: list[LeaseRef]) -> ClaimResult:
        return ClaimResult(claimed=[
            ClaimedLease(
                lease=self.snapshots[ref.lease_id].model_copy(update={"status": LeaseStatus.reaping}),
                action=ActionOnExpiry.stop, owner_tag="owner", owner_tag_value=OWNER,
            )
            for ref in leases
        ])

    async def report_outcomes(self, outcomes: list[ReapOutcome]) -> None:
        self.outcomes.update((outcome.lease_id, outcome) for outcome in outcomes)
        if len(self.outcomes) >= len(self.snapshots):
            self.all_reported.set()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            time.sleep(0.1)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)


def developer(moto_url: str) -> tuple[AwsAccess, CloudAccountRole]:
    return (
        AwsAccess(endpoint_url=moto_url, session_name="developer"),
        CloudAccountRole(f"arn:aws:iam::{ACCOUNT}:role/Developer", "developer"),
    )


async def launch(moto_url: str, instances: int, per_launch: int) -> list[str]:
    """Run ``instances`` running instances owned by OWNER, ``per_launch`` per RunInstances."""
    aws, role = developer(moto_url)
    limit = asyncio.Semaphore(4)
    async with aws.client("ec2", REGION, role) as ec2:

        async def run(count: int) -> list[str]:
            async with limit:
                answer = await ec2.run_instances(
                    ImageId="ami-12c6146b", MinCount=count, MaxCount=count, InstanceType="t3.micro",
                    TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "owner", "Value": OWNER}]}],
                )
            return [instance["InstanceId"] for instance in answer["Instances"]]

        counts = [min(per_launch, instances - start) for start in range(0, instances, per_launch)]
        launched = await asyncio.gather(*(run(count) for count in counts))
    return [instance_id for chunk in launched for instance_id in chunk]


async def count_stopped(moto_url: str, instance_ids: list[str]) -> int:
    aws, role = developer(moto_url)
    stopped = 0
    async with aws.client("ec2", REGION, role) as ec2:
        for start in range(0, len(instance_ids), 200):
            answer = await ec2.describe_instances(
                Filters=[{"Name": "instance-id", "Values": instance_ids[start : start + 200]}], MaxResults=1000
            )
            stopped += sum(
                instance["State"]["Name"] in ("stopping", "stopped")
                for reservation in answer["Reservations"]
                for instance in reservation["Instances"]
            )
    return stopped


def expired_leases(instance_ids: list[str]) -> dict[int, LeaseSnapshot]:
    expires_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    return {
        n: LeaseSnapshot(
            lease_id=n, version=1, status=LeaseStatus.active, owner_email=OWNER, expires_at=expires_at,
            account_id=1, cloud_account_id=1, upstream_account_id=ACCOUNT, region=REGION,
            instance_id=instance_id, mode="enforce", action_on_expiry="stop",
        )
        for n, instance_id in enumerate(instance_ids, start=1)
    }


async def one_run(args: argparse.Namespace, moto_url: str, moto_pid: int, run: int) -> float:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{moto_url}/moto-api/reset", timeout=30)).raise_for_status()
    launched = await launch(moto_url, args.instances, args.per_launch)
    snapshots = expired_leases(launched)
    api = BenchApi(snapshots)
    aws = CountingAwsAccess(endpoint_url=moto_url)  # fresh: each run pays its AssumeRole
    exchange = f"zc-bench-{uuid.uuid4().hex[:8]}"
    bus: Bus = RabbitBus(AMQP_URL, exchange) if args.bus == "rabbitmq" else InProcessBus()
    settings = ReaperSettings(
        bus=args.bus, amqp_url=AMQP_URL, amqp_exchange=exchange, api_url="http://api.invalid",
        service_token=secrets.token_hex(32), aws_endpoint_url=moto_url,
    )
    handlers.subscribe(bus, Reaper(settings, aws, api))
    await bus.start()
    try:
        messages = [LeaseExpired(lease=snapshot) for snapshot in snapshots.values()]
        moto_cpu, own_cpu = cpu_seconds(moto_pid), time.process_time()
        started = time.monotonic()
        await bus.publish(*messages)
        await asyncio.wait_for(api.all_reported.wait(), timeout=300)
        elapsed = time.monotonic() - started
        moto_cpu, own_cpu = cpu_seconds(moto_pid) - moto_cpu, time.process_time() - own_cpu
    finally:
        await bus.close()
        await api.close()
        if isinstance(bus, RabbitBus):
            await _drop_queues(exchange)
    outcomes = Counter(outcome.outcome.value for outcome in api.outcomes.values())
    stopped = await count_stopped(moto_url, launched)
    writes = sum(aws.calls[name] for name in WRITES)
    print(
        f"run {run}: {elapsed:.2f}s (CPU: moto {moto_cpu:.1f}s, reaper {own_cpu:.1f}s), AWS write calls: {writes} "
        f"(StopInstances {aws.calls['StopInstances']}, TerminateInstances {aws.calls['TerminateInstances']}), "
        f"DescribeInstances {aws.calls['DescribeInstances']}, "
        f"DescribeInstanceAttribute {aws.calls['DescribeInstanceAttribute']}, "
        f"outcomes {dict(outcomes)}, stopped in moto: {stopped} of {len(launched)}"
    )
    if writes > 2 or outcomes[ReapOutcomeKind.stopped.value] != len(launched) or stopped != len(launched):
        print(f"run {run}: FAILED the target (at most 2 writes, every instance stopped)")
    return elapsed


async def _drop_queues(exchange: str) -> None:
    import aio_pika

    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        for suffix in ("", ".retry", ".dead"):
            await channel.queue_delete(f"{exchange}.reaper{suffix}")
        await channel.exchange_delete(exchange)
        await channel.exchange_delete(f"{exchange}.dead")


async def bench(args: argparse.Namespace, moto_url: str, moto_pid: int) -> None:
    timings = [await one_run(args, moto_url, moto_pid, run) for run in range(1, args.runs + 1)]
    median = statistics.median(timings)
    print(
        f"median wall time over {args.runs} runs: {median:.2f}s for {args.instances} leases "
        f"({'within' if median <= 10 else 'OVER'} the 10 s target)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--per-launch", type=int, default=100, help="instances per RunInstances call")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bus", choices=["memory", "rabbitmq"], default="memory")
    args = parser.parse_args()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "bench")
    with moto_server() as (moto_url, moto_pid):
        asyncio.run(bench(args, moto_url, moto_pid))


if __name__ == "__main__":
    main()
