"""Event on SQS → committed lease, at a steady rate (issue #12: p99 ≤ 1 s at 200 events/s).

    .venv/bin/python bench/event_latency_bench.py [--rate 200] [--seconds 60] [--repeat 3]

The api and the ingestor run as in production, each its own process from its console
script (tests/support/processes.py's ProcessStack), over this machine's RabbitMQ (an
exchange of the run's own) and PostgreSQL (a scratch database built by the Alembic
migrations). AWS is bench/aws_standin.py, a fast stand-in that answers SQS, STS and
DescribeInstances in AWS's wire shapes and counts its own time: moto cannot carry this
rate against thousands of instances (one DescribeInstances per batch took seconds).

Every event is a CloudTrail RunInstances event from EventBridge through the account's SNS
topic, as SQS delivers it, for a new instance that exists in the stand-in; the load
generator sends them one SendMessage each, ``--rate`` a second for ``--seconds``, and
records when each send began. A trigger on ``lease`` (scratch database only) sends a
NOTIFY per new lease, which PostgreSQL delivers when the transaction commits: the time the
bench hears it is when the lease became visible. Printed: count, p50/p90/p99/max of send →
commit, the same split into stages (send → first received by the ingestor → DescribeInstances
asked → api handler began → committed), the stand-in's calls and own time, and ours (CPU of
the api and ingestor processes). Other services (scheduler, notifier, reaper) are not
started: nothing of theirs is on this path (what the api publishes waits in their queues).
The scratch database, exchange and queues are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_PATHS = [ROOT / p for p in ("libs/zc_common", "services/api", "services/ingestor", "services/scheduler",
                             "services/notifier", "services/reaper", "cli")] + [ROOT]
# The services' processes import this checkout's packages, whatever the venv has installed.
os.environ["PYTHONPATH"] = os.pathsep.join([*map(str, _PATHS), *filter(None, [os.environ.get("PYTHONPATH")])])
for _path in reversed(_PATHS):
    sys.path.insert(0, str(_path))

from ingest_bench import delete_exchange  # noqa: E402

from zc_common.aws import AwsAccess  # noqa: E402
from zc_common.bus import topology  # noqa: E402

from tests.support.processes import BIN, ProcessStack, _sql, wait_http  # noqa: E402
from zc_api.database import create_engine, session_maker, transaction  # noqa: E402
from zc_api.models import Account, AccountPolicy, CloudAccount, User  # noqa: E402

UPSTREAM = "111111111111"
REGION = "us-east-1"
TOPIC = f"arn:aws:sns:{REGION}:{UPSTREAM}:ZeroCloudEvents"
OWNERS = 50
CHANNEL = "zc_bench_lease"
TRIGGER = f"""
CREATE FUNCTION zc_bench_lease_committed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_notify('{CHANNEL}', NEW.id::text); RETURN NEW; END $$;
CREATE TRIGGER zc_bench_lease_committed AFTER INSERT ON lease
FOR EACH ROW EXECUTE FUNCTION zc_bench_lease_committed();
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="events a second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs on the same stack; medians are printed")
    parser.add_argument("--warmup", type=int, default=100, help="events sent first and not measured")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait for the last leases")
    parser.add_argument("--ingestor", action="append", default=[], metavar="NAME=VALUE",
                        help="a ZC_* setting for the ingestor (e.g. ZC_POLL_WAIT_SECONDS=20)")
    parser.add_argument("--api", action="append", default=[], metavar="NAME=VALUE", help="a ZC_* setting for the api")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the services' logs here")
    return parser.parse_args(argv)


# --- what it runs on ---------------------------------------------------------------------


class StandInStack(ProcessStack):
    """ProcessStack with bench/aws_standin.py as AWS (where moto and the proxy would be),
    and no mail sink (nothing on this path sends mail)."""

    def __enter__(self) -> StandInStack:
        try:
            _sql(f"CREATE DATABASE {self.database}", self.postgres_url)
            self._spawn("standin", [sys.executable, str(ROOT / "bench" / "aws_standin.py"),
                                    "--port", str(self.ports["proxy"])])
            wait_http(f"{self.aws_url}/_standin/stats", alive=self.processes["standin"])
            self._run([str(BIN / "zerocloud-api"), "migrate"])
        except BaseException:
            self.close()
            raise
        return self

    def standin(self, route: str, body: Any = None) -> Any:
        url = f"{self.aws_url}/_standin/{route}"
        answer = httpx.post(url, json=body, timeout=60) if body is not None else httpx.get(url, timeout=60)
        answer.raise_for_status()
        return answer.json()


def settings_of(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


async def onboard(database_url: str) -> None:
    """One tenant whose cloud account is verified and bound to its region's topic, as a
    verify leaves it; fifty confirmed owners named by the instances' owner tags."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with transaction(session_maker(engine)) as session:
            account = Account(name="BenchCorp")
            session.add(account)
            await session.flush()
            assert account.id is not None
            session.add(AccountPolicy(account_id=account.id, allowed_email_patterns=["*@bench.example"]))
            confirmed = datetime.now(timezone.utc)
            session.add(User(account_id=account.id, email="admin@bench.example", role="admin",
                             email_confirmed_at=confirmed))
            session.add_all(User(account_id=account.id, email=f"dev{n}@bench.example", email_confirmed_at=confirmed)
                            for n in range(OWNERS))
            session.add(CloudAccount(
                account_id=account.id, name="bench", upstream_account_id=UPSTREAM,
                role_arn=f"arn:aws:iam::{UPSTREAM}:role/ZeroCloud", external_id="zc-bench-external",
                regions=[REGION], verified_at=confirmed, topic_arns={REGION: TOPIC},
            ))
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(TRIGGER)  # several statements: the simple query protocol
    finally:
        await connection.close()


# --- the events --------------------------------------------------------------------------


def instance_id(run: int, n: int) -> str:
    return f"i-{run:02x}{n:015x}"


def event_body(instance: str) -> str:
    """A CloudTrail RunInstances event from EventBridge, through the account's SNS topic,
    as SQS holds it (the shapes of tests/ingestor/factories.py)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2",
        "account": UPSTREAM, "time": now, "region": REGION, "resources": [],
        "detail": {
            "eventVersion": "1.08", "eventTime": now, "eventSource": "ec2.amazonaws.com", "eventName": "RunInstances",
            "awsRegion": REGION, "recipientAccountId": UPSTREAM, "eventID": str(uuid.uuid4()),
            "requestParameters": {"instanceType": "t3.micro", "minCount": 1},
            "responseElements": {"instancesSet": {"items": [{"instanceId": instance}]}},
        },
    }
    return json.dumps({
        "Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC, "Message": json.dumps(event),
        "Timestamp": datetime.now(timezone.utc).isoformat(),
    })


@dataclass
class Sent:
    instance_id: str
    at: float  # epoch seconds, just before SendMessage
    message_id: str = ""


@dataclass
class Run:
    sent: list[Sent]
    achieved_rate: float
    latencies: list[float]
    stages: dict[str, list[float]]
    missing: int
    standin: dict[str, Any]
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds during the run
    machine_busy: float = 0.0  # cores busy on average (all processes)
    wall: float = 0.0


class Commits:
    """Lease ids with the epoch second their commit was heard (NOTIFY)."""

    def __init__(self) -> None:
        self.heard: dict[int, float] = {}
        self.connection: asyncpg.Connection | None = None

    async def listen(self, database_url: str) -> None:
        self.connection = await asyncpg.connect(database_url)
        await self.connection.add_listener(CHANNEL, self._heard)

    def _heard(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.heard.setdefault(int(payload), time.time())

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


async def send_events(queue_url: str, bodies: list[tuple[str, str]], rate: float) -> tuple[list[Sent], float]:
    """One SendMessage per event, on a fixed schedule (a slow send does not delay the
    next); returns what was sent and the rate achieved. Posted in SQS's JSON protocol
    straight to the stand-in (which checks no signature): botocore's signing and
    serialising cost about a millisecond a message, CPU the machine needs for ours."""
    sent = [Sent(instance, 0.0) for instance, _ in bodies]
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessage"}

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=50)) as http:

        async def send(index: int, body: str) -> None:
            sent[index].at = time.time()
            payload = json.dumps({"QueueUrl": queue_url, "MessageBody": body})
            async with http.post(queue_url, data=payload, headers=headers) as answer:
                answer.raise_for_status()
                sent[index].message_id = (await answer.json(content_type=None))["MessageId"]

        started = loop.time()
        for index, (_, body) in enumerate(bodies):
            delay = started + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(send(index, body))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*list(tasks))
    took = loop.time() - started
    return sent, len(bodies) / took if took else float("inf")


def cpu_of(processes: dict[str, psutil.Process]) -> dict[str, float]:
    seconds: dict[str, float] = {}
    for name, process in processes.items():
        times = process.cpu_times()
        seconds[name] = times.user + times.system + times.children_user + times.children_system
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds["bench (load generator, listener)"] = usage.ru_utime + usage.ru_stime
    return seconds


def machine_busy_seconds() -> float:
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def one_run(
    stack: StandInStack, queue_url: str, commits: Commits, run: int, count: int, rate: float, drain: float,
) -> Run:
    ids = [instance_id(run, n) for n in range(count)]
    stack.standin("instances", [
        {"id": i, "type": "t3.micro", "tags": {"owner": f"dev{n % OWNERS}@bench.example", "Name": f"bench-{run}-{n}"}}
        for n, i in enumerate(ids)
    ])
    bodies = [(i, event_body(i)) for i in ids]
    processes = {name: psutil.Process(stack.processes[name].pid) for name in ("api", "ingestor", "standin")}
    stack.standin("reset", {})
    cpu_before, busy_before, wall_before = cpu_of(processes), machine_busy_seconds(), time.monotonic()

    sent, achieved = await send_events(queue_url, bodies, rate)

    database = await asyncpg.connect(stack.database_url)
    try:
        wanted = set(ids)
        deadline = time.monotonic() + drain
        rows: list[asyncpg.Record] = []
        while time.monotonic() < deadline:
            rows = await database.fetch(
                "SELECT l.id, r.instance_id, l.created_at, r.observed_at FROM lease l "
                "JOIN resource r ON r.id = l.resource_id WHERE r.instance_id = ANY($1::text[])", list(wanted),
            )
            if len(rows) >= count and all(row["id"] in commits.heard for row in rows):
                break
            await asyncio.sleep(0.5)
    finally:
        await database.close()
    wall = time.monotonic() - wall_before
    cpu_after, busy_after = cpu_of(processes), machine_busy_seconds()
    standin = stack.standin("stats")
    received: dict[str, float] = stack.standin("received")

    by_instance = {row["instance_id"]: row for row in rows}
    latencies: list[float] = []
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for event in sent:
        row = by_instance.get(event.instance_id)
        if row is None or row["id"] not in commits.heard:
            continue
        committed = commits.heard[row["id"]]
        latencies.append(committed - event.at)
        got = received.get(event.message_id)
        if got is None:
            continue
        points = [event.at, got, row["observed_at"].timestamp(), row["created_at"].timestamp(), committed]
        for name, start, end in zip(STAGES, points, points[1:]):
            stages[name].append(end - start)
    return Run(
        sent=sent, achieved_rate=achieved, latencies=latencies, stages=stages, missing=count - len(latencies),
        standin=standin, cpu={k: cpu_after[k] - cpu_before[k] for k in cpu_after}, wall=wall,
        machine_busy=(busy_after - busy_before) / wall,
    )


STAGES = (
    "SQS send -> received by the ingestor",
    "received -> DescribeInstances asked",
    "DescribeInstances asked -> api handler began",
    "api handler began -> committed",
)


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def describe_run(number: int, run: Run) -> str:
    lat = run.latencies
    return (f"run {number}: {len(lat):,} leases ({run.missing} missing), sent at {run.achieved_rate:.1f}/s; "
            f"p50 {ms(quantile(lat, 0.5))}, p90 {ms(quantile(lat, 0.9))}, p99 {ms(quantile(lat, 0.99))}, "
            f"max {ms(max(lat) if lat else float('nan'))}; machine {run.machine_busy:.2f} cores busy")


def report(args: argparse.Namespace, runs: list[Run]) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    print(f"\n{args.rate:g} events/s for {args.seconds:g} s, {len(runs)} run(s); ingestor {args.ingestor or 'defaults'}, "
          f"api {args.api or 'defaults'}")
    print("\nsend -> committed lease (median over runs; [each run])")
    print("| | count | p50 | p90 | p99 | max |")
    print("|---|---|---|---|---|---|")
    counts = [len(r.latencies) for r in runs]
    cells = []
    for q in (0.5, 0.9, 0.99, 1.0):
        values = [quantile(r.latencies, q) for r in runs]
        cells.append(f"{ms(med(values))} [{', '.join(ms(v).removesuffix(' ms') for v in values)}]")
    print(f"| all events | {int(med(counts)):,} | " + " | ".join(cells) + " |")
    for name in STAGES:
        values = [[quantile(r.stages[name], q) for r in runs] for q in (0.5, 0.9, 0.99, 1.0)]
        print(f"| {name} | {int(med([len(r.stages[name]) for r in runs])):,} | "
              + " | ".join(ms(med(v)) for v in values) + " |")
    print(f"\nmissing leases per run: {[r.missing for r in runs]}; rate achieved: "
          f"{[round(r.achieved_rate, 1) for r in runs]}; machine cores busy: {[round(r.machine_busy, 2) for r in runs]}")

    print("\nthe stand-in's own time (median over runs)")
    print("| call | calls | total | per call |")
    print("|---|---|---|---|")
    actions = sorted({a for r in runs for a in r.standin["calls"]})
    for action in actions:
        calls = med([r.standin["calls"].get(action, 0) for r in runs])
        seconds = med([r.standin["seconds"].get(action, 0.0) for r in runs])
        print(f"| {action} | {calls:,.0f} | {seconds:.2f} s | {seconds / calls * 1e6 if calls else 0:,.0f} us |")
    handler = med([sum(r.standin["seconds"].values()) for r in runs])
    cpu = med([r.standin["cpu_seconds"] for r in runs])
    print(f"| all calls (handlers) | {med([sum(r.standin['calls'].values()) for r in runs]):,.0f} | {handler:.2f} s | |")
    print(f"| stand-in process CPU (HTTP included) | | {cpu:.2f} s | |")
    print("\nCPU seconds during the run (median), ours beside the stand-in's")
    print("| process | CPU | per event |")
    print("|---|---|---|")
    events = med(counts) or 1
    for name in runs[0].cpu:
        seconds = med([r.cpu[name] for r in runs])
        print(f"| {name} | {seconds:.1f} s | {seconds / events * 1e3:.2f} ms |")


async def main(args: argparse.Namespace) -> None:
    count = int(args.rate * args.seconds)
    ingestor_env = {"ZC_POLL_WAIT_SECONDS": "20", **settings_of(args.ingestor)}
    stack = StandInStack(amqp_url=args.amqp, postgres_url=args.postgres, log_dir=args.log_dir,
                         per_service={"api": settings_of(args.api), "ingestor": ingestor_env})
    runs: list[Run] = []
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    # ProcessStack is synchronous (it runs its own event loops): entered and left in a thread.
    await asyncio.to_thread(stack.__enter__)
    try:
        aws = AwsAccess(endpoint_url=stack.aws_url, max_attempts=2)
        commits = Commits()
        try:
            async with aws.client("sqs", REGION) as sqs:
                queue_url = (await sqs.create_queue(QueueName=f"events-{stack.exchange}"))["QueueUrl"]
                stack.per_service["ingestor"]["ZC_EVENT_QUEUE_URLS"] = queue_url
                await onboard(stack.database_url)
                await commits.listen(stack.database_url)
                await asyncio.to_thread(stack.start, "api")
                await asyncio.to_thread(stack.start, "ingestor")
                if args.warmup:
                    warm = await one_run(stack, queue_url, commits, 0xFF, args.warmup, args.rate, args.drain)
                    print(f"warm-up: {len(warm.latencies)} of {args.warmup} leased", file=sys.stderr)
                for number in range(1, args.repeat + 1):
                    run = await one_run(stack, queue_url, commits, number, count, args.rate, args.drain)
                    runs.append(run)
                    print(describe_run(number, run), file=sys.stderr)
        finally:
            await commits.close()
    finally:
        await asyncio.to_thread(stack.close)
        await delete_exchange(args.amqp, stack.exchange, [queue.name for queue in topology.QUEUES])
    report(args, runs)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
