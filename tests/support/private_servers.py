"""A PostgreSQL cluster and a RabbitMQ node of the fault suite's own, from this machine's
Debian packages, so that it can stop and kill them without touching the servers every
other test shares. Both keep their data in a temporary folder across restarts.

    with PrivatePostgres() as pg, PrivateRabbit() as rabbit:
        pg.url, rabbit.url            # postgresql://…, amqp://…
        pg.restart_immediately()      # pg_ctl stop -m immediate, then start
        rabbit.kill(); rabbit.start() # kill -9 of the node, then the same node again
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from tests.support.ports import free_port


def _as_service_user(user: str, command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root, and Debian's RabbitMQ runs as its own user."""
    return ["runuser", "-u", user, "--", *command] if os.geteuid() == 0 else command


def _wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not open port {port} within {timeout:.0f}s")


def _listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:``port`` (from /proc, as ss does)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state = fields[1], fields[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            inode = fields[9]
            break
    if inode is None:
        return None
    for fd in glob.glob("/proc/[0-9]*/fd/*"):
        with contextlib.suppress(OSError):
            if os.readlink(fd) == f"socket:[{inode}]":
                return int(fd.split("/")[2])
    return None


def postgres_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    def __init__(self) -> None:
        binaries = postgres_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = binaries
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="zc-pg-"))
        self.data = self.folder / "data"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"

    def __enter__(self) -> PrivatePostgres:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"])
        self.start()
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
                   "-w", "-t", "60", "start"])

    def restart_immediately(self, down: float = 0) -> None:
        """A crash as PostgreSQL sees one: no checkpoint, recovery from the WAL on start."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"])
        time.sleep(down)
        self.start()

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        with contextlib.suppress(Exception):
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"])
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(_as_service_user("postgres", command), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)}: {done.stderr or done.stdout}")


class PrivateRabbit:
    """A RabbitMQ node of its own name, ports and data (guest/guest on 127.0.0.1)."""

    def __init__(self) -> None:
        if shutil.which("rabbitmq-server") is None:
            raise RuntimeError("rabbitmq-server is not installed")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="zc-rabbit-"))
        self.node = f"zcfault{secrets.token_hex(3)}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None
        self.vm: int | None = None
        (self.folder / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"), "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "none"),
        }

    def __enter__(self) -> PrivateRabbit:
        if os.geteuid() == 0:
            for path in (self.folder, self.folder / "enabled_plugins"):
                shutil.chown(path, "rabbitmq", "rabbitmq")
        self.start()
        return self

    def start(self) -> None:
        log = (self.folder / "server.out").open("ab")
        self.process = subprocess.Popen(
            ["rabbitmq-server"], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        _wait_port(self.port, 90, f"RabbitMQ node {self.node}")
        self.vm = _listener_pid(self.port)

    def kill(self) -> None:
        """kill -9 of the node's Erlang VM (Debian's wrapper runs it as the rabbitmq user,
        outside this process group) and of the wrapper."""
        for pid in (self.vm,):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self.vm = None
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
            self.process = None

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
