"""Fan-out benchmark: one sweep of many cloud accounts × regions by the real ingestor,
then a second sweep inside the credentials' lifetime.

    python bench/fanout_bench.py [--accounts 100] [--regions 3] [--per-region 100] [--runs 3]
                                 [--concurrency 8] [--latency-ms 0] [--bus memory|rabbitmq]

AWS is a stand-in server (its own process) answering STS AssumeRole and EC2
DescribeInstances in AWS's XML shape: moto takes ~2.6 s to launch 100 instances and
~0.4 s of its single-threaded CPU to describe them, so 30,000 instances in moto would
measure moto. The stand-in holds ``--per-region`` running instances in every account and
region (one per reservation, paged by instance with MaxResults as AWS does), tells the
account from the access key its AssumeRole handed out, and waits ``--latency-ms`` before
each answer (AWS's own latency; 0 measures the ingestor alone). It counts the calls by
action, account and region and the DescribeInstances in flight at once, and reports the
time it spent answering.

The api is an in-memory stand-in (as in bench/sweep_bench.py): every account in force,
each knowing exactly the instances the stand-in lists (nothing is gone). Each run uses a
fresh AwsAccess: the first sweep pays every AssumeRole, the second must pay none.
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
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx

from zc_common.aws import CloudAccountRole
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

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
REGIONS = (
    "us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1", "ap-northeast-1",
    "us-east-2", "eu-west-2", "ap-south-1", "sa-east-1", "ca-central-1", "eu-north-1",
)
FIRST_ACCOUNT = 100_000_000_000  # account n is FIRST_ACCOUNT + n, as 12 digits


def account_id(n: int) -> str:
    return f"{FIRST_ACCOUNT + n:012d}"


def instance_ids(account: str, region_index: int, count: int) -> list[str]:
    """The instances the stand-in lists in one account and region (17 hex digits each)."""
    stem = f"{int(account) - FIRST_ACCOUNT:06x}{region_index:01x}"
    return [f"i-{stem}{n:010x}" for n in range(count)]


# --- the AWS stand-in (its own process) ------------------------------------------------

EC2_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


def _instance_xml(instance_id: str, region: str, owner: str) -> str:
    az = f"{region}a"
    return (
        f"<item><reservationId>r-{instance_id[2:]}</reservationId><ownerId>{owner}</ownerId><groupSet/>"
        "<instancesSet><item>"
        f"<instanceId>{instance_id}</instanceId><imageId>ami-12c6146b</imageId>"
        "<instanceState><code>16</code><name>running</name></instanceState>"
        "<privateDnsName>ip-10-0-0-1.ec2.internal</privateDnsName><dnsName/><reason/>"
        "<amiLaunchIndex>0</amiLaunchIndex><productCodes/><instanceType>t3.micro</instanceType>"
        "<launchTime>2026-12-01T09:00:00.000Z</launchTime>"
        f"<placement><availabilityZone>{az}</availabilityZone><groupName/><tenancy>default</tenancy></placement>"
        "<monitoring><state>disabled</state></monitoring><subnetId>subnet-0a1b2c3d</subnetId>"
        "<vpcId>vpc-0a1b2c3d</vpcId><privateIpAddress>10.0.0.1</privateIpAddress>"
        "<sourceDestCheck>true</sourceDestCheck>"
        "<groupSet><item><groupId>sg-0a1b2c3d</groupId><groupName>default</groupName></item></groupSet>"
        "<architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType>"
        "<rootDeviceName>/dev/xvda</rootDeviceName><blockDeviceMapping><item><deviceName>/dev/xvda</deviceName>"
        "<ebs><volumeId>vol-0a1b2c3d</volumeId><status>attached</status>"
        "<attachTime>2026-12-01T09:00:01.000Z</attachTime><deleteOnTermination>true</deleteOnTermination>"
        "</ebs></item></blockDeviceMapping><virtualizationType>hvm</virtualizationType>"
        "<clientToken/><tagSet><item><key>owner</key><value>dev@example.com</value></item>"
        f"<item><key>Name</key><value>{instance_id}</value></item></tagSet><hypervisor>xen</hypervisor>"
        "<ebsOptimized>false</ebsOptimized><enaSupport>true</enaSupport>"
        "</item></instancesSet></item>"
    )


def create_standin(regions: list[str], per_region: int, latency: float) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    calls: Counter[str] = Counter()  # "AssumeRole", "DescribeInstances <region>"
    accounts_assumed: Counter[str] = Counter()
    state = {"in_flight": 0, "peak": 0, "busy": 0.0, "cpu0": time.process_time()}
    pages: dict[tuple[str, str], list[str]] = {}

    def listing(account: str, region: str) -> list[str]:
        key = (account, region)
        if key not in pages:
            index = regions.index(region) if region in regions else -1
            ids = instance_ids(account, index, per_region) if index >= 0 else []
            pages[key] = [_instance_xml(i, region, account) for i in ids]
        return pages[key]

    def assume_role(form: dict[str, str]) -> Response:
        arn, external_id = form.get("RoleArn", ""), form.get("ExternalId", "")
        if not external_id:
            body = (
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                "<Message>no external id</Message></Error><RequestId>x</RequestId></ErrorResponse>"
            )
            return Response(body, status_code=403, media_type="text/xml")
        account = arn.split(":")[4]
        accounts_assumed[account] += 1
        seconds = int(form.get("DurationSeconds", "3600"))
        expires = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        key = f"ASIA{account}{secrets.token_hex(2).upper()}"
        body = (
            f'<AssumeRoleResponse xmlns="{STS_NS}"><AssumeRoleResult><Credentials>'
            f"<AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secrets.token_hex(20)}</SecretAccessKey>"
            f"<SessionToken>{secrets.token_hex(64)}</SessionToken><Expiration>{expires}</Expiration>"
            f"</Credentials><AssumedRoleUser><AssumedRoleId>AROA{account}:{form.get('RoleSessionName')}"
            f"</AssumedRoleId><Arn>arn:aws:sts::{account}:assumed-role/ZeroCloud/{form.get('RoleSessionName')}"
            "</Arn></AssumedRoleUser><PackedPolicySize>0</PackedPolicySize></AssumeRoleResult>"
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></AssumeRoleResponse>"
        )
        return Response(body, media_type="text/xml")

    def describe_instances(form: dict[str, str], account: str, region: str) -> Response:
        items = listing(account, region)
        start = int(form.get("NextToken", "0") or 0)
        size = int(form.get("MaxResults", "1000"))
        page = items[start : start + size]
        token = f"<nextToken>{start + size}</nextToken>" if start + size < len(items) else ""
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<DescribeInstancesResponse xmlns="{EC2_NS}">'
            f"<requestId>{uuid.uuid4()}</requestId><reservationSet>{''.join(page)}</reservationSet>{token}"
            "</DescribeInstancesResponse>"
        )
        return Response(body, media_type="text/xml;charset=UTF-8")

    async def aws(request: Request) -> Response:
        started = time.monotonic()
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        action = form.get("Action", "")
        # Credential=<key>/<date>/<region>/<service>/aws4_request
        scope = request.headers.get("authorization", "").split("Credential=", 1)[-1].split(",", 1)[0].split("/")
        access_key, region = (scope[0], scope[2]) if len(scope) >= 5 else ("", "")
        describing = action == "DescribeInstances"
        if describing:
            state["in_flight"] += 1
            state["peak"] = max(state["peak"], state["in_flight"])
        try:
            if latency:
                await asyncio.sleep(latency)
            if action == "AssumeRole":
                calls["AssumeRole"] += 1
                return assume_role(form)
            if describing:
                calls[f"DescribeInstances {region}"] += 1
                return describe_instances(form, access_key[4:16], region)
            calls[f"other {action}"] += 1
            return Response("<Response><Errors><Error><Code>InvalidAction</Code></Error></Errors></Response>", 400)
        finally:
            if describing:
                state["in_flight"] -= 1
            state["busy"] += time.monotonic() - started - latency

    async def stats(_: Request) -> Response:
        return JSONResponse({
            "calls": dict(calls), "accounts_assumed": len(accounts_assumed),
            "max_assumes_per_account": max(accounts_assumed.values(), default=0),
            "peak_in_flight": state["peak"], "busy_seconds": state["busy"],
            "cpu_seconds": time.process_time() - state["cpu0"],
        })

    async def reset(_: Request) -> Response:
        calls.clear()
        accounts_assumed.clear()
        state.update(peak=0, busy=0.0, cpu0=time.process_time())
        return JSONResponse({})

    return Starlette(routes=[
        Route("/_standin/stats", stats, methods=["GET"]),
        Route("/_standin/reset", reset, methods=["POST"]),
        Route("/", aws, methods=["POST"]),
    ])


def serve_standin(port: int, regions: list[str], per_region: int, latency: float) -> None:
    import uvicorn

    app = create_standin(regions, per_region, latency)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=4096)


@contextlib.contextmanager
def standin_server(regions: list[str], per_region: int, latency: float) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-standin", str(port), "--regions", str(len(regions)),
         "--per-region", str(per_region), "--latency-ms", str(latency * 1000)],
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{url}/_standin/stats", timeout=1)
                break
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


# --- the api stand-in and the ingestor ---------------------------------------------------


class FanoutApi(InternalApi):
    """The api's two answers the sweep needs: every cloud account, and the instances the
    api knows in each region (exactly those AWS lists)."""

    def __init__(self, accounts: int, regions: list[str], per_region: int) -> None:
        super().__init__("http://api.invalid", "bench-service-token-0123456789")
        self.regions = regions
        self.per_region = per_region
        self.records = [
            CloudAccountRecord(
                id=n, account_id=1 + n // 10, name=f"fanout-{n}", upstream_account_id=account_id(n),
                role_arn=f"arn:aws:iam::{account_id(n)}:role/ZeroCloud", external_id=f"zc-fanout-{n:05d}",
                regions=list(regions), mode=CloudAccountMode.observe,
            )
            for n in range(1, accounts + 1)
        ]

    async def cloud_accounts(self, upstream_account_id: str | None = None) -> list[CloudAccountRecord]:
        return [r for r in self.records if upstream_account_id in (None, r.upstream_account_id)]

    async def known_instances(self, cloud_account_id: int, region: str) -> list[str]:
        return instance_ids(account_id(cloud_account_id), self.regions.index(region), self.per_region)


class WatchedAwsAccess(CountingAwsAccess):
    """Counts calls (CountingAwsAccess) and the EC2 clients open at once: the (account,
    region) listings the sweep has in flight, which its bound caps."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.open_ec2 = 0
        self.peak_ec2 = 0

    @contextlib.asynccontextmanager
    async def client(
        self, service: str, region: str | None = None, role: CloudAccountRole | None = None
    ) -> AsyncIterator[Any]:
        async with super().client(service, region, role) as client:
            if service != "ec2":
                yield client
                return
            self.open_ec2 += 1
            self.peak_ec2 = max(self.peak_ec2, self.open_ec2)
            try:
                yield client
            finally:
                self.open_ec2 -= 1


@dataclass
class Sweep:
    seconds: float
    cpu: float
    assume_role: int
    describe: dict[str, int]
    peak_listings: int
    peak_at_aws: int
    instances: int
    failures: int
    standin_busy: float
    standin_cpu: float


async def one_sweep(ingestor: Ingestor, aws: WatchedAwsAccess, standin: httpx.AsyncClient) -> Sweep:
    await standin.post("/_standin/reset")
    aws.calls.clear()
    aws.peak_ec2 = 0
    published = ingestor.counters["changes_published"]
    started, cpu = time.monotonic(), time.process_time()
    result = await ingestor.sweep()
    seconds, cpu = time.monotonic() - started, time.process_time() - cpu
    seen = (await standin.get("/_standin/stats")).json()
    describe = {k.split(" ", 1)[1]: v for k, v in seen["calls"].items() if k.startswith("DescribeInstances ")}
    assert seen["calls"].get("AssumeRole", 0) == aws.calls["AssumeRole"], (seen, aws.calls)
    assert sum(describe.values()) == aws.calls["DescribeInstances"], (seen, aws.calls)
    assert ingestor.counters["changes_published"] - published == result.instances + result.gone
    return Sweep(
        seconds, cpu, aws.calls["AssumeRole"], describe, aws.peak_ec2, seen["peak_in_flight"],
        result.instances, len(result.failures), seen["busy_seconds"], seen["cpu_seconds"],
    )


def show(label: str, sweep: Sweep, bound: int) -> str:
    by_region = ", ".join(f"{region} {n}" for region, n in sorted(sweep.describe.items()))
    return (
        f"{label}: {sweep.seconds:.2f}s wall (ingestor CPU {sweep.cpu:.2f}s; stand-in busy {sweep.standin_busy:.2f}s, "
        f"CPU {sweep.standin_cpu:.2f}s), AssumeRole {sweep.assume_role}, DescribeInstances "
        f"{sum(sweep.describe.values())} ({by_region or 'none'}), listings in flight peak {sweep.peak_listings} "
        f"(bound {bound}), DescribeInstances in flight at AWS peak {sweep.peak_at_aws}, "
        f"instances published {sweep.instances}, failures {sweep.failures}"
    )


async def bench(args: argparse.Namespace, url: str) -> None:
    regions = list(REGIONS[: args.regions])
    api = FanoutApi(args.accounts, regions, args.per_region)
    exchange = f"zc-fanout-{uuid.uuid4().hex[:8]}"
    bus: Bus = RabbitBus(AMQP_URL, exchange) if args.bus == "rabbitmq" else InProcessBus()
    await bus.start()
    settings = IngestorSettings(
        bus=args.bus, amqp_url=AMQP_URL, amqp_exchange=exchange, api_url="http://api.invalid",
        service_token=secrets.token_hex(32), aws_endpoint_url=url, sweep_concurrency=args.concurrency,
    )
    expected = args.accounts * len(regions) * args.per_region
    print(
        f"{args.accounts} accounts × {len(regions)} regions × {args.per_region} instances = {expected} instances; "
        f"sweep_concurrency {settings.sweep_concurrency}, AWS latency {args.latency_ms:g} ms, bus {args.bus}"
    )
    cold: list[Sweep] = []
    warm: list[Sweep] = []
    try:
        async with httpx.AsyncClient(base_url=url) as standin:
            for run in range(1, args.runs + 1):
                # Fresh: each run's first sweep pays its AssumeRoles.
                aws = WatchedAwsAccess(endpoint_url=url, session_name="zerocloud-ingestor")
                ingestor = Ingestor(settings, bus, aws, api)
                cold.append(await one_sweep(ingestor, aws, standin))
                print(show(f"run {run} sweep 1", cold[-1], settings.sweep_concurrency))
                warm.append(await one_sweep(ingestor, aws, standin))
                print(show(f"run {run} sweep 2", warm[-1], settings.sweep_concurrency))
    finally:
        await bus.close()
        await api.close()
        if isinstance(bus, RabbitBus):
            await drop_exchange(AMQP_URL, exchange)

    def median(sweeps: list[Sweep], field: str) -> float:
        return statistics.median(float(getattr(s, field)) for s in sweeps)

    pairs = args.accounts * len(regions)
    for label, sweeps in (("sweep 1 (cold credentials)", cold), ("sweep 2 (cached credentials)", warm)):
        wall = median(sweeps, "seconds")
        print(
            f"median of {args.runs}, {label}: {wall:.2f}s wall, ingestor CPU {median(sweeps, 'cpu'):.2f}s, "
            f"AssumeRole {median(sweeps, 'assume_role'):g}, DescribeInstances "
            f"{statistics.median(sum(s.describe.values()) for s in sweeps):g}, "
            f"listings in flight peak {median(sweeps, 'peak_listings'):g} (bound {settings.sweep_concurrency}), "
            f"at AWS {median(sweeps, 'peak_at_aws'):g}, instances {median(sweeps, 'instances'):g}; "
            f"per (account, region) {1000 * wall / pairs:.1f} ms wall, "
            f"{1000 * median(sweeps, 'cpu') / pairs:.1f} ms ingestor CPU"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--regions", type=int, default=3, choices=range(1, len(REGIONS) + 1))
    parser.add_argument("--per-region", type=int, default=100, help="running instances in each account and region")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=IngestorSettings.model_fields["sweep_concurrency"].default,
        help="the ingestor's sweep_concurrency (ZC_SWEEP_CONCURRENCY)",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the stand-in's wait before each answer")
    parser.add_argument("--bus", choices=["memory", "rabbitmq"], default="memory")
    parser.add_argument("--serve-standin", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_standin:
        serve_standin(args.serve_standin, list(REGIONS[: args.regions]), args.per_region, args.latency_ms / 1000)
        return
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "bench")
    with standin_server(list(REGIONS[: args.regions]), args.per_region, args.latency_ms / 1000) as url:
        asyncio.run(bench(args, url))


if __name__ == "__main__":
    main()
