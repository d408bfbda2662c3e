"""Sweep benchmark: launch thousands of instances in one region of a moto account, sweep
it a few times, and print the DescribeInstances calls per sweep and the median wall time.

    python bench/sweep_bench.py [--instances 5000] [--per-launch 1] [--runs 3] [--bus memory|rabbitmq]

moto pages DescribeInstances by reservation where AWS pages by instance; one instance per
RunInstances (``--per-launch 1``, the default) makes moto's paging match AWS's.
bench/sweep_to_leases_bench.py follows a sweep through to committed leases.
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
from collections.abc import Iterator
from pathlib import Path

import httpx

from zc_common.aws import AwsAccess, CloudAccountRole
from zc_common.bus import Bus
from zc_common.bus.memory import InProcessBus
from zc_common.bus.rabbit import RabbitBus
from zc_common.internal_api import CloudAccountRecord, InternalApi
from zc_common.messages import CloudAccountMode
from zc_common.settings import IngestorSettings

from zc_ingestor.service import Ingestor

# The suite's shared scaffolding (tests/support), from the repository this script is in.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.aws_doubles import CountingAwsAccess  # noqa: E402
from tests.support.broker import drop_exchange  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

ACCOUNT = "111111111111"
REGION = "us-east-1"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
RECORD = CloudAccountRecord(
    id=1, account_id=1, name="bench", upstream_account_id=ACCOUNT,
    role_arn=f"arn:aws:iam::{ACCOUNT}:role/ZeroCloud", external_id="zc-bench",
    regions=[REGION], mode=CloudAccountMode.observe,
)


class BenchApi(InternalApi):
    """The api's two answers the sweep needs: one cloud account, and the instances it knows."""

    def __init__(self, known: list[str]) -> None:
        super().__init__("http://api.invalid", "bench-service-token-0123456789")
        self.known = known

    async def cloud_accounts(self, upstream_account_id: str | None = None) -> list[CloudAccountRecord]:
        return [RECORD]

    async def known_instances(self, cloud_account_id: int, region: str) -> list[str]:
        return self.known


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
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
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


async def launch(moto_url: str, instances: int, per_launch: int) -> list[str]:
    """Run ``instances`` instances in the customer account, ``per_launch`` per RunInstances."""
    aws = AwsAccess(endpoint_url=moto_url, session_name="developer")
    developer = CloudAccountRole(f"arn:aws:iam::{ACCOUNT}:role/Developer", "developer")
    limit = asyncio.Semaphore(8)
    async with aws.client("ec2", REGION, developer) as ec2:

        async def run(count: int) -> list[str]:
            async with limit:
                answer = await ec2.run_instances(
                    ImageId="ami-12c6146b", MinCount=count, MaxCount=count, InstanceType="t3.micro",
                    TagSpecifications=[
                        {"ResourceType": "instance", "Tags": [{"Key": "owner", "Value": "a@b.c"}]}
                    ],
                )
            return [instance["InstanceId"] for instance in answer["Instances"]]

        counts = [min(per_launch, instances - start) for start in range(0, instances, per_launch)]
        launched = await asyncio.gather(*(run(count) for count in counts))
    return [instance_id for chunk in launched for instance_id in chunk]


async def bench(args: argparse.Namespace, moto_url: str) -> None:
    started = time.monotonic()
    launched = await launch(moto_url, args.instances, args.per_launch)
    print(f"launched {len(launched)} instances in {time.monotonic() - started:.1f}s")

    # The api knows every instance, plus a few AWS no longer lists (published as gone).
    api = BenchApi(launched + [f"i-{n:017x}" for n in range(1, 51)])
    exchange = f"zc-bench-{uuid.uuid4().hex[:8]}"
    bus: Bus = RabbitBus(AMQP_URL, exchange) if args.bus == "rabbitmq" else InProcessBus()
    await bus.start()
    settings = IngestorSettings(
        bus=args.bus, amqp_url=AMQP_URL, amqp_exchange=exchange, api_url="http://api.invalid",
        service_token=secrets.token_hex(32), aws_endpoint_url=moto_url,
    )
    try:
        timings: list[float] = []
        for run in range(1, args.runs + 1):
            aws = CountingAwsAccess(endpoint_url=moto_url)  # fresh: each run pays its AssumeRole
            ingestor = Ingestor(settings, bus, aws, api)
            started, cpu = time.monotonic(), time.process_time()
            result = await ingestor.sweep()
            timings.append(time.monotonic() - started)
            # CPU of this process only: the rest of the wall time is moto (or AWS) answering.
            print(
                f"run {run}: {timings[-1]:.2f}s (ingestor CPU {time.process_time() - cpu:.2f}s), "
                f"DescribeInstances calls: {aws.calls['DescribeInstances']}, "
                f"instances: {result.instances}, gone: {result.gone}, failures: {len(result.failures)}"
            )
        print(f"median sweep wall time over {args.runs} runs: {statistics.median(timings):.2f}s")
    finally:
        await bus.close()
        await api.close()
        if isinstance(bus, RabbitBus):
            await drop_exchange(AMQP_URL, exchange)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--per-launch", type=int, default=1, help="instances per RunInstances call")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bus", choices=["memory", "rabbitmq"], default="memory")
    args = parser.parse_args()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "bench")
    with moto_server() as moto_url:
        asyncio.run(bench(args, moto_url))


if __name__ == "__main__":
    main()
