"""Reaper benchmark: expired leases of running instances in one account and region of a
moto server, published as LeaseExpired on the bus and reaped by the Reaper, in three
scenarios: 1,000 instances none protected, 5,000 none protected, and 1,000 of which 10 are
stop-protected. Prints, per run, the AWS calls by action (EC2 and STS apart), the wall
time from publish to the last outcome reported, the outcomes and what moto shows stopped
afterwards; then the median wall time of each scenario, and whether the call targets held
(1,000: 1 DescribeInstances + 1 StopInstances; 5,000: at most 10 EC2 calls; 10 protected
among 1,000: at most 25 calls in all, the 10 skipped as stop-protected; one AssumeRole).

    python bench/reaper_bench.py [--scenario all|1000|5000|protected] [--per-launch 100] [--runs 3]
                                 [--bus memory|rabbitmq]

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
from dataclasses import dataclass
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
from tests.support.aws_doubles import CountingAwsAccess  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

ACCOUNT = "111111111111"
REGION = "us-east-1"
OWNER = "bench@bigdb.com"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
STS_ACTIONS = frozenset({"AssumeRole", "GetCallerIdentity"})
STOP_PROTECTED = "stop protection enabled"


@dataclass(frozen=True)
class Scenario:
    name: str
    instances: int
    protected: int
    max_ec2_calls: int
    exact: dict[str, int] | None = None  # EC2 calls by action, where the target is exact


SCENARIOS = {
    "1000": Scenario("1,000 none protected", 1000, 0, 2, {"DescribeInstances": 1, "StopInstances": 1}),
    "5000": Scenario("5,000 none protected", 5000, 0, 10),
    "protected": Scenario("10 protected among 1,000", 1000, 10, 24),
}

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


async def launch(moto_url: str, instances: int, per_launch: int, protected: int) -> tuple[list[str], set[str]]:
    """Run ``instances`` running instances owned by OWNER, ``per_launch`` per RunInstances,
    ``protected`` of them (spread evenly, none first) with stop protection switched on."""
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
        launched = [instance_id for chunk in await asyncio.gather(*(run(count) for count in counts)) for instance_id in chunk]
        step = len(launched) // protected if protected else 0
        guarded = {launched[step * n + step // 2] for n in range(protected)}
        for instance_id in guarded:
            await ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": True})
    return launched, guarded


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


async def one_run(
    args: argparse.Namespace, scenario: Scenario, moto_url: str, moto_pid: int, run: int
) -> tuple[float, bool]:
    """One run of ``scenario``: its wall time, and whether it met the targets."""
    async with httpx.AsyncClient() as http:
        (await http.post(f"{moto_url}/moto-api/reset", timeout=30)).raise_for_status()
    launched, guarded = await launch(moto_url, scenario.instances, args.per_launch, scenario.protected)
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
        await asyncio.wait_for(api.all_reported.wait(), timeout=600)
        elapsed = time.monotonic() - started
        moto_cpu, own_cpu = cpu_seconds(moto_pid) - moto_cpu, time.process_time() - own_cpu
    finally:
        await bus.close()
        await api.close()
        if isinstance(bus, RabbitBus):
            await _drop_queues(exchange)
    by_lease = {snapshot.instance_id: api.outcomes[n] for n, snapshot in snapshots.items()}
    outcomes = Counter(outcome.outcome.value for outcome in api.outcomes.values())
    stopped = await count_stopped(moto_url, launched)
    sts = {name: n for name, n in aws.calls.items() if name in STS_ACTIONS}
    ec2 = {name: n for name, n in aws.calls.items() if name not in STS_ACTIONS}
    print(
        f"  run {run}: {elapsed:.2f}s (CPU: moto {moto_cpu:.1f}s, reaper {own_cpu:.1f}s); "
        f"EC2 calls {sum(ec2.values())} {_by_action(ec2)}; STS calls {sum(sts.values())} {_by_action(sts)}; "
        f"outcomes {dict(outcomes)}; stopped in moto: {stopped} of {len(launched)}"
    )
    plain = [i for i in launched if i not in guarded]
    failures = []
    if sum(ec2.values()) > scenario.max_ec2_calls:
        failures.append(f"more than {scenario.max_ec2_calls} EC2 calls")
    if scenario.exact is not None and ec2 != scenario.exact:
        failures.append(f"EC2 calls are not {scenario.exact}")
    if sts != {"AssumeRole": 1}:
        failures.append("not exactly one AssumeRole")
    if any(by_lease[i].outcome is not ReapOutcomeKind.stopped for i in plain) or stopped != len(plain):
        failures.append("an unprotected instance was not stopped")
    if any((by_lease[i].outcome, by_lease[i].reason) != (ReapOutcomeKind.skipped, STOP_PROTECTED) for i in guarded):
        failures.append(f"a protected instance was not skipped with '{STOP_PROTECTED}'")
    for failure in failures:
        print(f"  run {run}: FAILED the target: {failure}")
    return elapsed, not failures


def _by_action(calls: dict[str, int]) -> str:
    return "(" + ", ".join(f"{name} {n}" for name, n in sorted(calls.items())) + ")"


async def _drop_queues(exchange: str) -> None:
    import aio_pika

    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        for suffix in ("", ".retry", ".dead"):
            await channel.queue_delete(f"{exchange}.reaper{suffix}")
        await channel.exchange_delete(exchange)
        await channel.exchange_delete(f"{exchange}.dead")


async def bench(args: argparse.Namespace, moto_url: str, moto_pid: int) -> None:
    chosen = SCENARIOS.values() if args.scenario == "all" else [SCENARIOS[args.scenario]]
    summary = []
    for scenario in chosen:
        print(f"{scenario.name} ({args.bus} bus):")
        runs = [await one_run(args, scenario, moto_url, moto_pid, run) for run in range(1, args.runs + 1)]
        median = statistics.median(elapsed for elapsed, _ in runs)
        met = all(ok for _, ok in runs)
        summary.append(f"{scenario.name}: median wall time {median:.2f}s over {args.runs} runs, "
                       f"call targets {'met' if met else 'MISSED'}")
    print("\n".join(summary))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=["all", *SCENARIOS], default="all")
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
