"""Resident memory of each service idling in its own process (target: under 150 MB).

Starts the five services as separate processes the way an operator runs them (real
PostgreSQL and RabbitMQ on this machine, a moto server for AWS), waits until each
answers /readyz, lets them idle, then reads VmRSS from /proc. Prints one row per
service: median of the samples taken over the idle period, and the maximum.

    .venv/bin/python bench/idle_memory.py [--idle-seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx

# The suite's shared scaffolding (tests/support), from the repository this script is in.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.ports import free_port  # noqa: E402

BIN = Path(sys.executable).parent
PG = "postgresql://postgres@127.0.0.1:5432"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} never became ready")


def sql(statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(f"{PG}/postgres")
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def main(idle_seconds: float) -> None:
    database = f"zc_bench_{secrets.token_hex(4)}"
    sql(f"CREATE DATABASE {database}")
    moto_port = free_port()
    moto = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    smtp_port = free_port()
    smtp = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{smtp_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    tokens = {name: secrets.token_hex(32) for name in ("ingestor", "notifier", "reaper")}
    ports = {name: free_port() for name in ("api", "api-internal", "ingestor", "scheduler", "notifier", "reaper")}
    env = {
        **os.environ, "ZC_DATABASE_URL": f"{PG}/{database}", "ZC_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
        "ZC_AMQP_EXCHANGE": f"zc-bench-{secrets.token_hex(4)}", **{f"ZC_{name.upper()}_TOKEN": token for name, token in tokens.items()},
        "ZC_INTERNAL_PORT": str(ports["api-internal"]), "ZC_API_URL": f"http://127.0.0.1:{ports['api-internal']}", "ZC_AWS_ENDPOINT_URL": f"http://127.0.0.1:{moto_port}",
        "ZC_SWEEP_INTERVAL": "0", "ZC_SMTP_HOST": "127.0.0.1", "ZC_SMTP_PORT": str(smtp_port), "ZC_LOG_LEVEL": "WARNING", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
    }
    commands = {
        "api": [str(BIN / "zerocloud-api"), "serve"],
        "ingestor": [str(BIN / "zerocloud-ingestor")],
        "scheduler": [str(BIN / "zerocloud-scheduler")],
        "notifier": [str(BIN / "zerocloud-notifier")],
        "reaper": [str(BIN / "zerocloud-reaper")],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        subprocess.run([str(BIN / "zerocloud-api"), "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([str(BIN / "zerocloud-scheduler"), "migrate"], env=env, check=True, capture_output=True)
        for name, command in commands.items():
            own = {"ZC_SERVICE_TOKEN": tokens[name]} if name in tokens else {}
            processes[name] = subprocess.Popen(command, env={**env, **own, "ZC_HTTP_PORT": str(ports[name])},
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_ready(f"http://127.0.0.1:{ports[name]}")
        samples: dict[str, list[float]] = {name: [] for name in processes}
        end = time.monotonic() + idle_seconds
        while time.monotonic() < end:
            for name, process in processes.items():
                samples[name].append(rss_mb(process.pid))
            time.sleep(1)
        print(f"idle resident memory per service over {idle_seconds:.0f}s (target < 150 MB)")
        print(f"{'service':10} {'median MB':>10} {'max MB':>8}")
        for name, values in samples.items():
            print(f"{name:10} {statistics.median(values):10.1f} {max(values):8.1f}")
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        moto.terminate()
        smtp.terminate()
        sql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-seconds", type=float, default=20)
    main(parser.parse_args().idle_seconds)
