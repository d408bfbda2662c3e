"""ZeroCloud as an operator runs it: each service its own process from its console
script, on this machine's PostgreSQL (a scratch database) and RabbitMQ (an exchange of
its own), a moto server as the customers' AWS behind the counting fault proxy
(tests/support/aws_proxy.py), and an SMTP sink. The side-by-side bench and the fault
suite drive it; a service can be killed (SIGKILL) and started again.

    with ProcessStack() as stack:
        stack.start_services()
        admin = stack.create_admin("ops@example.com")
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
import httpx

from tests.support.ports import free_port

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
SERVICES = ("api", "ingestor", "scheduler", "notifier", "reaper")
CALLERS = ("ingestor", "notifier", "reaper")
_TOKEN = re.compile(r"API token \(shown once\): (\S+)")


def _sql(statement: str, server: str = POSTGRES) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(f"{server}/postgres")
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


def _libc_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    with contextlib.suppress(OSError, AttributeError):
        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    return None


# Looked up here, not in the child: between fork and exec the child only makes the call.
_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child: be killed when the thread that started it dies, even by SIGKILL (a
    test run stopped by a timeout leaves no services behind)."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def wait_http(url: str, *, timeout: float = 60, alive: subprocess.Popen[bytes] | None = None) -> None:
    """Until ``url`` answers 200 (raises when it never does, or its process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"{url}: its process exited with {alive.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered 200")


class ProcessStack:
    """The five services as processes, and what they run on. ``overrides`` are ZC_*
    settings for every service; ``per_service`` for one (e.g. {"reaper": {...}}). A
    service may run as several replicas (``start(name, replica=1)``): each its own process
    and port, competing for the same queue and timers."""

    def __init__(
        self,
        *,
        overrides: Mapping[str, str] | None = None,
        per_service: Mapping[str, Mapping[str, str]] | None = None,
        log_dir: Path | None = None,
        smtp_port: int | None = None,
        amqp_url: str = AMQP,
        postgres_url: str = POSTGRES,
    ) -> None:
        self.database = f"zc_stack_{secrets.token_hex(4)}"
        self.postgres_url = postgres_url  # the server (tests/support/private_servers.py has one to crash)
        self.database_url = f"{postgres_url}/{self.database}"
        self.amqp_url = amqp_url
        self.exchange = f"zc-stack-{secrets.token_hex(4)}"
        self.tokens = {name: secrets.token_hex(32) for name in CALLERS}
        self.ports = {name: free_port() for name in (*SERVICES, "internal", "moto", "proxy", "smtp")}
        # A mail sink of the caller's (one it can stop, to see mail wait), else one spawned here.
        self._own_smtp = smtp_port is None
        if smtp_port is not None:
            self.ports["smtp"] = smtp_port
        self.moto_url = f"http://127.0.0.1:{self.ports['moto']}"
        self.aws_url = f"http://127.0.0.1:{self.ports['proxy']}"
        self.api_url = f"http://127.0.0.1:{self.ports['api']}"
        self.internal_url = f"http://127.0.0.1:{self.ports['internal']}"
        self.overrides = dict(overrides or {})
        self.per_service = {name: dict(values) for name, values in (per_service or {}).items()}
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="zc-stack-"))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[Any] = []

    # --- what it runs on ----------------------------------------------------------------
    def __enter__(self) -> ProcessStack:
        try:
            _sql(f"CREATE DATABASE {self.database}", self.postgres_url)
            self._spawn("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.ports["moto"])])
            self._spawn("proxy", [sys.executable, "-m", "tests.support.aws_proxy", "--upstream", self.moto_url,
                                  "--port", str(self.ports["proxy"])], cwd=ROOT)
            if self._own_smtp:
                self._spawn("smtp", [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.ports['smtp']}"])
            wait_http(f"{self.moto_url}/moto-api/", alive=self.processes["moto"])
            wait_http(f"{self.aws_url}/_proxy/calls", alive=self.processes["proxy"])
            self._run([str(BIN / "zerocloud-api"), "migrate"])
            self._run([str(BIN / "zerocloud-scheduler"), "migrate"])
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def env(self, service: str | None = None, replica: int = 0) -> dict[str, str]:
        values = {
            **os.environ,
            "ZC_DATABASE_URL": self.database_url, "ZC_AMQP_URL": self.amqp_url, "ZC_AMQP_EXCHANGE": self.exchange,
            "ZC_INTERNAL_PORT": str(self.ports["internal"]), "ZC_API_URL": self.internal_url,
            "ZC_PUBLIC_URL": self.api_url, "ZC_AWS_ENDPOINT_URL": self.aws_url, "ZC_SWEEP_INTERVAL": "0",
            "ZC_SMTP_HOST": "127.0.0.1", "ZC_SMTP_PORT": str(self.ports["smtp"]), "ZC_LOG_LEVEL": "WARNING",
            "AWS_ACCESS_KEY_ID": "zerocloud", "AWS_SECRET_ACCESS_KEY": "zerocloud", "AWS_DEFAULT_REGION": "us-east-1",
            **{f"ZC_{name.upper()}_TOKEN": token for name, token in self.tokens.items()},
            **self.overrides,
        }
        if service is not None:
            values["ZC_HTTP_PORT"] = str(self.port(service, replica))
            if service in self.tokens:
                values["ZC_SERVICE_TOKEN"] = self.tokens[service]
            values.update(self.per_service.get(service, {}))
        return values

    # --- the services -------------------------------------------------------------------
    @staticmethod
    def key(name: str, replica: int = 0) -> str:
        return name if replica == 0 else f"{name}-{replica}"

    def port(self, name: str, replica: int = 0) -> int:
        key = self.key(name, replica)
        if key not in self.ports:
            self.ports[key] = free_port()
        return self.ports[key]

    def start_services(self, *names: str) -> None:
        """Start these services (all five by default) and wait until each is ready."""
        for name in names or SERVICES:
            self.start(name)

    def start(self, name: str, replica: int = 0, *, wait: bool = True) -> None:
        """Start a service (or another replica of it); by default wait until it is ready."""
        if name == "api" and replica:
            raise ValueError("the api's listeners are on fixed ports: one api process per stack")
        command = [str(BIN / f"zerocloud-{name}"), *(["serve"] if name == "api" else [])]
        process = self._spawn(self.key(name, replica), command, env=self.env(name, replica))
        if wait:
            wait_http(f"http://127.0.0.1:{self.port(name, replica)}/readyz", alive=process, timeout=90)

    def running(self, name: str, replica: int = 0) -> bool:
        process = self.processes.get(self.key(name, replica))
        return process is not None and process.poll() is None

    def kill(self, name: str, replica: int = 0) -> None:
        """kill -9: no drain, no goodbye."""
        process = self.processes.pop(self.key(name, replica))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def create_admin(self, email: str) -> str:
        """A new admin's API token."""
        done = self._run([str(BIN / "zerocloud-api"), "create-admin", "--email", email])
        match = _TOKEN.search(done.stdout)
        if match is None:
            raise RuntimeError(f"create-admin printed no token: {done.stdout!r}")
        return match.group(1)

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    def aws_calls(self) -> dict[str, int]:
        """Calls the proxy counted since its last reset, by 'service:Action'."""
        return dict(httpx.get(f"{self.aws_url}/_proxy/calls", timeout=10).json()["calls"])

    def aws_moto_only_calls(self) -> dict[str, int]:
        """Of those, the calls only moto's paging asked for (see tests/support/aws_proxy.py)."""
        return dict(httpx.get(f"{self.aws_url}/_proxy/calls", timeout=10).json()["moto_only"])

    def reset_aws_calls(self) -> None:
        httpx.post(f"{self.aws_url}/_proxy/reset", timeout=10).raise_for_status()

    def reset_moto(self) -> None:
        httpx.post(f"{self.moto_url}/moto-api/reset", timeout=60).raise_for_status()

    def close(self) -> None:
        services = [key for key in self.processes if key.split("-")[0] in SERVICES]
        for key in services:
            self.processes[key].send_signal(signal.SIGTERM)
        for key, process in list(self.processes.items()):
            if key not in services:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()
        with contextlib.suppress(Exception):
            _sql(f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)", self.postgres_url)

    # --- plumbing -----------------------------------------------------------------------
    def _spawn(self, name: str, command: list[str], *, env: Mapping[str, str] | None = None,
               cwd: Path | None = None) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("ab")
        self._logs.append(log)
        process = subprocess.Popen(
            command, env=dict(env or self.env()), cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            # The signal follows the thread that started the child: only the main thread's
            # children can have it (a fault thread that restarts a service ends before it).
            preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,  # noqa: PLW1509
        )
        self.processes[name] = process
        return process

    def _run(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(command, env=self.env(), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done

