"""Scheduler benchmark: the scheduler runs as its own process (`zerocloud-scheduler`, real
PostgreSQL and RabbitMQ on this machine); this script plays the api's outbox (publishes
LeaseChanged) and the reaper (consumes LeaseExpired). Lag = when a LeaseExpired reached
this consumer minus its lease's expire_at: the end-to-end delay through store, fire and bus.

  (a) burst:  N timers due within one window (default 100,000 in 60 s): all fire within
              60 s of due? lag median / p99 / max.
  (b) steady: timers due at a steady rate (default 1,000/s for 30 s), each published
              ``--steady-lead`` seconds before it is due (storing and firing at once): p99 lag.
  (c) memory: 1,000,000 pending timers stored (bulk SQL, plus ``--pending-via-bus`` of them
              through the bus and the scheduler's handler): the process's resident memory
              (VmRSS from /proc/<pid>/status).

    python bench/scheduler_bench.py [--only a,b,c] [--burst 100000] [--burst-window 60]
        [--rate 1000] [--steady-seconds 30] [--pending 1000000] [--pending-via-bus 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx

from zc_common.bus import Queue
from zc_common.bus.rabbit import RabbitBus
from zc_common.messages import LeaseChange, LeaseChanged, LeaseExpired, LeaseSnapshot, LeaseStatus

# The suite's shared scaffolding (tests/support), from the repository this script is in.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.ports import free_port  # noqa: E402

BIN = Path(sys.executable).parent
PG = "postgresql://postgres@127.0.0.1:5432"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
PUBLISH_CHUNK = 1000


def now() -> datetime:
    return datetime.now(timezone.utc)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def launch(
    command: list[str], env: dict[str, str] | None = None, *, stdout: bool = False, stderr: Path | None = None
) -> subprocess.Popen[bytes]:
    with (stderr or Path(os.devnull)).open("wb") as errors:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE if stdout else subprocess.DEVNULL, stderr=errors)


def lease_changed(lease_id: int, expire_at: datetime) -> LeaseChanged:
    lease = LeaseSnapshot(
        lease_id=lease_id, version=1, status=LeaseStatus.active, owner_email=f"dev{lease_id % 500}@bigdb.example",
        expires_at=expire_at, account_id=1, cloud_account_id=1, upstream_account_id="111111111111",
        region="us-east-1", instance_id=f"i-{lease_id:017x}", instance_type="t3.micro",
        instance_name=f"bench-{lease_id}", cloud_account_name="bench", mode="enforce",
    )
    return LeaseChanged(change=LeaseChange.created, lease=lease, expire_at=expire_at, actor="bench")


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


@dataclass
class Reaper:
    """Lags of the LeaseExpired messages, as a consumer of their own (a separate process,
    like the reaper: this script's publishing must not delay its receiving) records them
    in a file, one line "<lease id> <lag s>" each."""

    path: Path
    lags: dict[int, list[float]] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    _offset: int = 0

    async def start(self, exchange: str) -> None:
        self.process = launch([sys.executable, __file__, "--consume", exchange, "--out", str(self.path)], stdout=True)
        assert self.process.stdout is not None
        ready = await asyncio.to_thread(self.process.stdout.readline)
        if ready.strip() != b"ready":
            raise RuntimeError("the consumer did not start")

    def refresh(self) -> None:
        with self.path.open("rb") as lines:
            lines.seek(self._offset)
            chunk = lines.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            lease_id, lag = line.split()
            self.lags.setdefault(int(lease_id), []).append(float(lag))

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            await asyncio.to_thread(self.process.wait)
        self.path.unlink(missing_ok=True)

    def report(self, lease_ids: range) -> tuple[list[float], int, int]:
        """Lags of the first firing of each lease, how many are missing, how many came twice."""
        self.refresh()
        lags = [self.lags[i][0] for i in lease_ids if i in self.lags]
        missing = sum(1 for i in lease_ids if i not in self.lags)
        twice = sum(len(self.lags[i]) - 1 for i in lease_ids if i in self.lags)
        return lags, missing, twice


async def consume(exchange: str, out: Path) -> None:
    """The consumer process: appends "<lease id> <lag s>" per LeaseExpired to ``out``."""
    sink = out.open("a")

    async def handle(messages: Sequence[Any]) -> None:
        arrived = now()
        sink.write("".join(
            f"{m.lease.lease_id} {(arrived - m.lease.expires_at).total_seconds():.6f}\n"
            for m in messages if isinstance(m, LeaseExpired)
        ))
        sink.flush()

    bus = RabbitBus(AMQP_URL, exchange, prefetch=2000)
    bus.subscribe(Queue("bench-reaper", (LeaseExpired,)), handle, batch_size=1000, max_wait=0.005)
    await bus.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await bus.close()
    sink.close()


@dataclass
class Rig:
    database_url: str
    exchange: str
    port: int
    process: subprocess.Popen[bytes]
    bus: RabbitBus
    reaper: Reaper
    log_path: Path
    rss_samples: list[float] = field(default_factory=list)

    def batch_lags(self, since: datetime) -> list[float]:
        """From the scheduler's debug log: per fired batch, how long after its due time the
        oldest timer of the batch was taken (the scheduler's own lag, before the bus)."""
        lags = []
        for line in self.log_path.read_text().splitlines():
            if '"fired ' not in line:
                continue
            entry = json.loads(line)
            if datetime.fromisoformat(entry["ts"]) >= since:
                lags.append(float(entry["msg"].split(" taken ")[1].split("s ")[0]))
        return lags

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def publish(self, messages: Sequence[LeaseChanged]) -> None:
        for start in range(0, len(messages), PUBLISH_CHUNK):
            await self.bus.publish(*messages[start : start + PUBLISH_CHUNK])

    async def pending(self) -> int:
        async with httpx.AsyncClient(timeout=60) as http:
            return int((await http.get(f"{self.url}/timers", params={"limit": 1})).json()["count"])

    async def wait_pending(self, count: int, timeout: float) -> float:
        """Wait until the scheduler holds ``count`` timers; return when (monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await self.pending() >= count:
                return time.monotonic()
            await asyncio.sleep(0.25)
        raise RuntimeError(f"the scheduler did not store {count} timers within {timeout:.0f}s")

    async def until_fired(self, lease_ids: range, deadline: float) -> None:
        while time.monotonic() < deadline:
            if len(self.reaper.report(lease_ids)[0]) >= len(lease_ids):
                return
            await asyncio.sleep(0.5)

    async def sample_rss(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.rss_samples.append(rss_mb(self.process.pid))
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass


def print_lags(title: str, lags: list[float], missing: int, twice: int, batch_lags: list[float]) -> None:
    print(f"{title}: fired {len(lags)}, missing {missing}, fired twice {twice}")
    if lags:
        print(
            f"  lag at the consumer (s): median {statistics.median(lags):.3f}  p99 {percentile(lags, 0.99):.3f}  "
            f"max {max(lags):.3f}  min {min(lags):.3f}"
        )
    if batch_lags:
        print(
            f"  scheduler's own lag, oldest timer of each of {len(batch_lags)} batches taken after its due (s): "
            f"median {statistics.median(batch_lags):.3f}  p99 {percentile(batch_lags, 0.99):.3f}  max {max(batch_lags):.3f}"
        )


async def burst(rig: Rig, count: int, window: float, lead: float, first_id: int) -> None:
    """(a) ``count`` timers due evenly within ``window`` seconds, starting ``lead`` s from now."""
    start = now() + timedelta(seconds=lead)
    since = now()
    ids = range(first_id, first_id + count)
    messages = [lease_changed(i, start + timedelta(seconds=window * n / count)) for n, i in enumerate(ids)]
    began = time.monotonic()
    await rig.publish(messages)
    published = time.monotonic()
    stored = await rig.wait_pending(count, timeout=lead + window + 300)
    print(f"(a) burst: {count} LeaseChanged published in {published - began:.1f}s, "
          f"stored by the scheduler after {stored - began:.1f}s ({count / (stored - began):.0f}/s); "
          f"first due after {lead:.0f}s")
    if stored - began > lead:
        print("  note: storing outlasted the lead: the first timers were overdue when stored")
    deadline = time.monotonic() + (start - now()).total_seconds() + window + 120
    await rig.until_fired(ids, deadline)
    await asyncio.sleep(2)  # late duplicates
    lags, missing, twice = rig.reaper.report(ids)
    print_lags(f"(a) {count} timers due within {window:.0f}s", lags, missing, twice, rig.batch_lags(since))
    within = sum(1 for lag in lags if lag <= 60)
    print(f"  all fired within 60 s of due: {'yes' if within == count else 'NO'} ({within}/{count})")


async def steady(rig: Rig, rate: float, seconds: float, lead: float, first_id: int) -> None:
    """(b) publish ``rate`` LeaseChanged per second, each due ``lead`` s after it is published."""
    total = int(rate * seconds)
    since = now()
    ids = range(first_id, first_id + total)
    began = time.monotonic()
    sent = 0
    while sent < total:
        target = min(total, int((time.monotonic() - began) * rate) + 1)
        if target > sent:
            due = now() + timedelta(seconds=lead)
            await rig.bus.publish(*(lease_changed(i, due) for i in ids[sent:target]))
            sent = target
        await asyncio.sleep(0.005)
    achieved = total / (time.monotonic() - began)
    deadline = time.monotonic() + lead + 60
    await rig.until_fired(ids, deadline)
    await asyncio.sleep(2)
    lags, missing, twice = rig.reaper.report(ids)
    print(f"(b) steady: published {total} at {achieved:.0f}/s, each due {lead:.1f}s after publishing")
    print_lags(f"(b) {rate:.0f} timers/s for {seconds:.0f}s", lags, missing, twice, rig.batch_lags(since))
    if lags:
        p99 = percentile(lags, 0.99)
        print(f"  p99 lag {p99:.3f}s (target <= 1 s): {'ok' if p99 <= 1 else 'MISSED'}")


async def pending_memory(rig: Rig, count: int, via_bus: int, first_id: int) -> None:
    """(c) ``count`` timers pending far in the future; how much does the process hold?"""
    baseline = rss_mb(rig.process.pid)
    bulk = count - via_bus
    connection = await asyncpg.connect(rig.database_url)
    try:
        began = time.monotonic()
        if bulk > 0:
            # Server-side: a real LeaseExpired body per row (its lease id set per row).
            template = lease_changed(0, now() + timedelta(days=1))
            body = LeaseExpired(lease=template.lease, occurred_at=now() + timedelta(days=1)).model_dump_json()
            await connection.execute(
                """
                INSERT INTO scheduler_timer (kind, lease_id, lease_version, fire_at, payload)
                SELECT 'expiry', g, 1, now() + interval '1 day' + g * interval '1 millisecond',
                       jsonb_set($1::jsonb, '{lease,lease_id}', to_jsonb(g))
                FROM generate_series($2::bigint, $3::bigint) AS g
                """,
                body, first_id + via_bus, first_id + count - 1,
            )
        print(f"(c) {bulk} timers stored in bulk (SQL) in {time.monotonic() - began:.1f}s")
    finally:
        await connection.close()
    if via_bus:
        far = now() + timedelta(days=2)
        began = time.monotonic()
        await rig.publish([lease_changed(i, far + timedelta(milliseconds=i)) for i in range(first_id, first_id + via_bus)])
        stored = await rig.wait_pending(count, timeout=1800)
        print(f"(c) {via_bus} more through the bus and the scheduler's handler in {stored - began:.1f}s "
              f"({via_bus / (stored - began):.0f}/s)")
    storing_peak = max(rig.rss_samples, default=baseline)
    rig.rss_samples.clear()
    async with httpx.AsyncClient(timeout=60) as http:
        answer = (await http.get(f"{rig.url}/timers", params={"limit": 1000})).json()
    await asyncio.sleep(10)  # idle with everything pending: a firing loop polling, the handler waiting
    held = rss_mb(rig.process.pid)
    print(f"(c) {answer['count']} timers pending; scheduler VmRSS (target < 150 MB): {baseline:.1f} MB before, "
          f"peak {storing_peak:.1f} MB while storing, {held:.1f} MB holding them "
          f"(peak {max(rig.rss_samples, default=held):.1f} MB over 10 s idle after GET /timers?limit=1000)")


async def start_rig(exchange: str) -> Rig:
    database = f"zc_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    database_url = f"{PG}/{database}"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ZC_")},
        "ZC_DATABASE_URL": database_url, "ZC_AMQP_URL": AMQP_URL, "ZC_AMQP_EXCHANGE": exchange,
        "ZC_HTTP_PORT": str(port), "ZC_SWEEP_INTERVAL": "0", "ZC_LOG_LEVEL": "DEBUG",
    }
    await asyncio.to_thread(
        subprocess.run, [str(BIN / "zerocloud-scheduler"), "migrate"], env=env, check=True, capture_output=True
    )
    reaper = Reaper(Path(f"/tmp/{exchange}.lags"))
    await reaper.start(exchange)  # its queue exists before anything can fire
    bus = RabbitBus(AMQP_URL, exchange)
    await bus.start()
    log_path = Path(f"/tmp/{exchange}.scheduler.log")
    process = launch([str(BIN / "zerocloud-scheduler")], env, stderr=log_path)
    rig = Rig(database_url, exchange, port, process, bus, reaper, log_path)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(f"{rig.url}/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the scheduler did not become ready")
            await asyncio.sleep(0.2)
    return rig


async def stop_rig(rig: Rig) -> None:
    rig.process.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(rig.process.wait, timeout=30)
    except subprocess.TimeoutExpired:
        rig.process.kill()
    await rig.bus.close()
    await rig.reaper.stop()
    rig.log_path.unlink(missing_ok=True)
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        for queue in ("scheduler", "bench-reaper"):
            for suffix in ("", ".retry", ".dead"):
                await channel.queue_delete(f"{rig.exchange}.{queue}{suffix}")
        for name in (rig.exchange, f"{rig.exchange}.dead"):
            await channel.exchange_delete(name)
    finally:
        await connection.close()
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{rig.database_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()


async def main(args: argparse.Namespace) -> None:
    only = set(args.only.split(","))
    rig = await start_rig(f"zc-bench-{secrets.token_hex(4)}")
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(rig.sample_rss(stop_sampling))
    print(f"scheduler pid {rig.process.pid}, {os.cpu_count()} cores; VmRSS at start {rss_mb(rig.process.pid):.1f} MB")
    try:
        if "a" in only:
            await burst(rig, args.burst, args.burst_window, args.burst_lead, first_id=1)
            print(f"  scheduler VmRSS peak so far {max(rig.rss_samples):.1f} MB")
        if "b" in only:
            await steady(rig, args.rate, args.steady_seconds, args.steady_lead, first_id=10_000_001)
            print(f"  scheduler VmRSS peak so far {max(rig.rss_samples):.1f} MB")
        if "c" in only:
            rig.rss_samples.clear()
            await pending_memory(rig, args.pending, min(args.pending_via_bus, args.pending), first_id=20_000_001)
    finally:
        stop_sampling.set()
        await sampler
        await stop_rig(rig)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="a,b,c", help="phases to run, e.g. a,c")
    parser.add_argument("--burst", type=int, default=100_000)
    parser.add_argument("--burst-window", type=float, default=60.0)
    parser.add_argument("--burst-lead", type=float, default=60.0, help="seconds from publishing to the first due")
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--steady-lead", type=float, default=2.0)
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--pending-via-bus", type=int, default=100_000)
    parser.add_argument("--consume", metavar="EXCHANGE", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    asyncio.run(consume(arguments.consume, arguments.out) if arguments.consume else main(arguments))
