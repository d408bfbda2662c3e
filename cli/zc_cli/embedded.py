"""The embedded default: every service in one process over the in-process bus, a
private PostgreSQL from pgserver that keeps its data between runs, and a local moto
server standing in for AWS. What `make run` starts for a newcomer with only Python."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from zc_common.aws import AwsAccess
from zc_common.bus.memory import InProcessBus
from zc_common.settings import ApiSettings, IngestorSettings

log = logging.getLogger("zc.sandbox")

QUEUE_NAME = "zerocloud-events"
CUSTOMER_ACCOUNT = "111111111111"
STATE_FILE = "sandbox.json"


@dataclass(frozen=True)
class SandboxState:
    """What a running sandbox tells the other commands (`sandbox launch`, the README)."""

    api_url: str
    admin_token: str
    aws_endpoint_url: str
    queue_url: str
    customer_account_id: str
    customer_role_arn: str

    def save(self, data_dir: Path) -> None:
        path = data_dir / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, data_dir: Path) -> SandboxState:
        path = data_dir / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no sandbox state at {path}: start the sandbox with `make run` first")
        return cls(**json.loads(path.read_text()))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _persistent_secret(data_dir: Path, name: str) -> str:
    """A secret generated on the first run and kept, so tokens survive restarts."""
    path = data_dir / name
    if not path.is_file():
        path.write_text(f"zc_{secrets.token_urlsafe(32)}")
        path.chmod(0o600)
    return path.read_text().strip()


def _prepare(data_dir: Path) -> tuple[str, str]:
    """The data folder, the admin token and the database, before the event loop is busy."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return _persistent_secret(data_dir, "admin-token"), start_postgres(data_dir)


def start_postgres(data_dir: Path) -> str:
    """Start (or reuse) the private PostgreSQL and return the URL of its zerocloud database."""
    import pgserver

    server = pgserver.get_server(str(data_dir / "pgdata"), cleanup_mode="stop")
    if "zerocloud" not in server.psql("SELECT datname FROM pg_database;"):
        server.psql("CREATE DATABASE zerocloud;")
    socket_dir = server.get_uri().split("host=", 1)[1]
    return f"postgresql://postgres@/zerocloud?host={socket_dir}"


@contextlib.contextmanager
def moto_server(port: int) -> Iterator[str]:
    """A moto server in its own process, so its work never slows our event loop."""
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the moto server did not start on port {port}") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


class Mailbox:
    """The sandbox's SMTP server: every mail ZeroCloud sends lands in a folder as .eml."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 kept in the sandbox mailbox"


@contextlib.contextmanager
def smtp_sink(folder: Path, port: int) -> Iterator[int]:
    from aiosmtpd.controller import Controller

    controller = Controller(Mailbox(folder), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


async def create_event_queue(aws: AwsAccess) -> str:
    async with aws.client("sqs") as sqs:
        answer = await sqs.create_queue(QueueName=QUEUE_NAME)
    return str(answer["QueueUrl"])


@contextlib.asynccontextmanager
async def embedded_services(
    *, database_url: str, aws_endpoint_url: str, api_port: int, admin_token: str, smtp_port: int,
    sweep_interval: float = 60.0, log_level: str = "INFO",
) -> AsyncIterator[SandboxState]:
    """Run the api and the ingestor (and the skeleton services) on one in-process bus."""
    from zc_common.internal_api import InternalApi
    from zc_common.settings import NotifierSettings, ReaperSettings, SchedulerSettings

    from zc_api.database import migrate
    from zc_api.main import create_app as create_api
    from zc_ingestor import handlers as ingestor_handlers
    from zc_ingestor.service import Ingestor
    from zc_notifier.main import create_app as create_notifier
    from zc_reaper.main import create_app as create_reaper
    from zc_scheduler.database import migrate as migrate_scheduler
    from zc_scheduler.main import create_app as create_scheduler

    await migrate(database_url)
    await migrate_scheduler(database_url)  # its own scheduler_* tables beside the api's
    service_token = f"zc_{secrets.token_urlsafe(32)}"
    api_url = f"http://127.0.0.1:{api_port}"
    common = {"amqp_url": "memory://", "bus": "memory", "aws_endpoint_url": aws_endpoint_url, "log_level": log_level}
    aws = AwsAccess(endpoint_url=aws_endpoint_url, session_name="zerocloud-sandbox")
    queue_url = await create_event_queue(aws)

    bus = InProcessBus()
    api_settings = ApiSettings(
        **common, database_url=database_url, service_token=service_token, bootstrap_admin_token=admin_token,
        bootstrap_admin_email="admin@sandbox.zerocloud", public_url=api_url, http_port=api_port,
    )
    api = create_api(api_settings, bus=bus)
    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=api_port, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve(), name="api")
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the api did not start")
        await asyncio.sleep(0.05)

    # The other services: their apps' lifespans subscribe to the shared bus.
    others = [
        create_scheduler(SchedulerSettings(**common, database_url=database_url, sweep_interval=sweep_interval), bus=bus),
        create_notifier(
            NotifierSettings(
                **common, api_url=api_url, api_token=service_token, smtp_host="127.0.0.1", smtp_port=smtp_port,
                mail_from="zerocloud@sandbox.localhost", digest_window=2,
            ),
            bus=bus,
        ),
        create_reaper(ReaperSettings(**common, api_url=api_url, api_token=service_token), bus=bus),
    ]
    async with contextlib.AsyncExitStack() as stack:
        for app in others:
            await stack.enter_async_context(app.router.lifespan_context(app))
        ingestor_settings = IngestorSettings(
            **common, api_url=api_url, api_token=service_token, event_queue_urls=[queue_url],
            poll_wait_seconds=2,
        )
        internal_api = InternalApi(api_url, service_token)
        stack.push_async_callback(internal_api.close)
        ingestor = Ingestor(ingestor_settings, bus, aws, internal_api)
        ingestor_handlers.subscribe(bus, ingestor)
        await bus.start()
        await ingestor.start()
        stack.push_async_callback(ingestor.stop)
        try:
            yield SandboxState(
                api_url=api_url,
                admin_token=admin_token,
                aws_endpoint_url=aws_endpoint_url,
                queue_url=queue_url,
                customer_account_id=CUSTOMER_ACCOUNT,
                customer_role_arn=f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/ZeroCloud",
            )
        finally:
            server.should_exit = True
            await serving
            await bus.close()


async def run_sandbox(data_dir: Path, *, api_port: int, moto_port: int, sweep_interval: float) -> None:
    admin_token, database_url = await asyncio.to_thread(_prepare, data_dir)
    with moto_server(moto_port) as aws_endpoint_url, smtp_sink(data_dir / "mailbox", free_port()) as smtp_port:
        async with embedded_services(
            database_url=database_url, aws_endpoint_url=aws_endpoint_url, api_port=api_port,
            admin_token=admin_token, smtp_port=smtp_port, sweep_interval=sweep_interval, log_level="WARNING",
        ) as state:
            state.save(data_dir)
            print(banner(state), flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            print("stopping the sandbox…", flush=True)


def banner(state: SandboxState) -> str:
    return f"""
ZeroCloud sandbox is running (all services in one process; Ctrl-C stops it).

  API            {state.api_url}   (OpenAPI: {state.api_url}/docs)
  admin token    {state.admin_token}
  AWS (moto)     {state.aws_endpoint_url}
  event queue    {state.queue_url}
  customer AWS   account {state.customer_account_id}, role {state.customer_role_arn}
  mailbox        every mail ZeroCloud sends is kept in the data folder's mailbox/ as .eml

In another terminal:
  export ZC_API_URL={state.api_url} ZC_API_TOKEN={state.admin_token}
  zerocloud-cli create account --payload '{{"lease_expires_in": 3, "lease_expires_in_units": "days", "name": "BigDB"}}'
"""
