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
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, TypedDict

import httpx
import uvicorn

from zc_common.aws import AwsAccess
from zc_common.bus.memory import InProcessBus
from zc_common.logging import redact_access_log
from zc_common.settings import ApiSettings, IngestorSettings, LogLevel

from zc_cli.local_server import EmbeddedServer

log = logging.getLogger("zc.sandbox")

QUEUE_NAME = "zerocloud-events"
CUSTOMER_ACCOUNT = "111111111111"
STATE_FILE = "sandbox.json"
ADMIN_EMAIL = "admin@sandbox.zerocloud"


@dataclass(frozen=True)
class SandboxState:
    """What a running sandbox tells the other commands (`sandbox launch`, the README)."""

    api_url: str
    admin_token: str
    aws_endpoint_url: str
    queue_url: str
    customer_account_id: str
    customer_role_arn: str
    admin_email: str = ADMIN_EMAIL
    mailbox_dir: str = ""
    account_id: int | None = None
    account_name: str = ""
    cloud_account_id: int | None = None
    cloud_account_mode: str = ""
    developers: tuple[str, ...] = ()
    lease_seconds: int | None = None
    max_lease_seconds: int | None = None
    warning_seconds: tuple[int, ...] = ()
    github_url: str | None = None

    @property
    def mailbox_url(self) -> str:
        return f"{self.api_url}/mailbox"

    def save(self, data_dir: Path) -> None:
        path = data_dir / STATE_FILE
        path.write_text(json.dumps(asdict(self), indent=2))
        path.chmod(0o600)

    @classmethod
    def load(cls, data_dir: Path) -> SandboxState:
        path = data_dir / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"no sandbox state at {path}: start the sandbox with `make run` first "
                f"(or point --data-dir / ZC_SANDBOX_DIR at its data folder)"
            )
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in json.loads(path.read_text()).items() if key in known}
        for name in ("developers", "warning_seconds"):
            values[name] = tuple(values.get(name, ()))
        return cls(**values)


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
    from pgserver.postgres_server import get_server

    server = get_server(str(data_dir / "pgdata"), cleanup_mode="stop")
    if "zerocloud" not in server.psql("SELECT datname FROM pg_database;"):
        server.psql("CREATE DATABASE zerocloud;")
    socket_dir = server.get_uri().split("host=", 1)[1]
    return f"postgresql://postgres@/zerocloud?host={socket_dir}"


def _die_with_parent() -> None:
    """In the child, on Linux: be sent SIGTERM when the sandbox dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@contextlib.contextmanager
def moto_server(port: int) -> Iterator[str]:
    """A moto server in its own process, so its work never slows our event loop."""
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Its own session: a Ctrl-C in the terminal stops the sandbox, which then stops moto
        # after every service is done with it (as pg_ctl does for PostgreSQL).
        start_new_session=True,
        preexec_fn=_die_with_parent,
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


class _CommonSettings(TypedDict):
    """What every service's settings share in the sandbox."""

    amqp_url: str
    bus: Literal["rabbitmq", "memory"]
    aws_endpoint_url: str
    log_level: LogLevel


@contextlib.asynccontextmanager
async def embedded_services(
    *, database_url: str, aws_endpoint_url: str, api_port: int, admin_token: str, smtp_port: int,
    sweep_interval: float = 60.0, log_level: LogLevel = "INFO", mailbox_dir: Path | None = None,
    api_overrides: dict[str, Any] | None = None,
) -> AsyncIterator[SandboxState]:
    """Run the five services on one in-process bus, each through its own app's lifespan
    (the wiring its process runs), the api also serving HTTP."""
    from zc_common.settings import NotifierSettings, ReaperSettings, SchedulerSettings

    from zc_api.database import migrate
    from zc_api.main import create_app as create_api
    from zc_api.main import internal_app
    from zc_ingestor.main import create_app as create_ingestor
    from zc_notifier.main import create_app as create_notifier
    from zc_reaper.main import create_app as create_reaper
    from zc_scheduler.database import migrate as migrate_scheduler
    from zc_scheduler.main import create_app as create_scheduler

    await migrate(database_url)
    await migrate_scheduler(database_url)  # its own scheduler_* tables beside the api's
    tokens = {service: f"zc_{secrets.token_urlsafe(32)}" for service in ("ingestor", "notifier", "reaper")}
    api_url = f"http://127.0.0.1:{api_port}"
    internal_url = f"http://127.0.0.1:{free_port()}"  # the services' routes: never the public port
    common: _CommonSettings = {"amqp_url": "memory://", "bus": "memory", "aws_endpoint_url": aws_endpoint_url, "log_level": log_level}
    aws = AwsAccess(endpoint_url=aws_endpoint_url, session_name="zerocloud-sandbox")
    queue_url = await create_event_queue(aws)

    bus = InProcessBus()
    api_settings = ApiSettings(
        **common, database_url=database_url, ingestor_token=tokens["ingestor"], notifier_token=tokens["notifier"],
        reaper_token=tokens["reaper"], internal_host="127.0.0.1", internal_port=int(internal_url.rsplit(":", 1)[1]),
        bootstrap_admin_token=admin_token,
        bootstrap_admin_email=ADMIN_EMAIL, public_url=api_url, http_host="127.0.0.1", http_port=api_port,
        sandbox_mailbox_dir=str(mailbox_dir) if mailbox_dir is not None else None, **(api_overrides or {}),
    )
    api = create_api(api_settings, bus=bus)
    redact_access_log()  # the sandbox's access log would otherwise carry its links' tokens
    server = EmbeddedServer(uvicorn.Config(api, host="127.0.0.1", port=api_port, log_config=None, lifespan="on"))
    serving = asyncio.create_task(server.serve(), name="api")
    while not server.started:
        if serving.done():
            serving.result()
            raise RuntimeError("the api did not start")
        await asyncio.sleep(0.05)
    internal_server = EmbeddedServer(uvicorn.Config(
        internal_app(api), host="127.0.0.1", port=api_settings.internal_port, log_config=None, lifespan="off",
    ))
    serving_internal = asyncio.create_task(internal_server.serve(), name="api-internal")
    while not internal_server.started:
        if serving_internal.done():
            serving_internal.result()
            raise RuntimeError("the api's internal listener did not start")
        await asyncio.sleep(0.05)

    # The other services: their apps' lifespans subscribe to the shared bus.
    others = [
        create_scheduler(SchedulerSettings(**common, database_url=database_url, sweep_interval=sweep_interval), bus=bus),
        create_notifier(
            NotifierSettings(
                **common, api_url=internal_url, service_token=tokens["notifier"], smtp_host="127.0.0.1", smtp_port=smtp_port,
                mail_from="zerocloud@sandbox.localhost", digest_window=2,
            ),
            bus=bus,
        ),
        create_reaper(ReaperSettings(**common, api_url=internal_url, service_token=tokens["reaper"]), bus=bus),
        create_ingestor(
            IngestorSettings(
                **common, api_url=internal_url, service_token=tokens["ingestor"], event_queue_urls=[queue_url],
                poll_wait_seconds=2,
            ),
            bus=bus,
        ),
    ]
    async with contextlib.AsyncExitStack() as stack:
        for app in others:
            await stack.enter_async_context(app.router.lifespan_context(app))
        try:
            yield SandboxState(
                api_url=api_url,
                admin_token=admin_token,
                aws_endpoint_url=aws_endpoint_url,
                queue_url=queue_url,
                customer_account_id=CUSTOMER_ACCOUNT,
                customer_role_arn=f"arn:aws:iam::{CUSTOMER_ACCOUNT}:role/ZeroCloud",
                mailbox_dir=str(mailbox_dir or ""),
            )
        finally:
            # Drain the shared bus before any service's resources close under its handlers.
            await bus.stop_consuming()
            internal_server.should_exit = True
            server.should_exit = True
            await asyncio.gather(serving_internal, serving)
            await bus.close()


async def run_sandbox(data_dir: Path, *, api_port: int, moto_port: int, sweep_interval: float) -> None:
    from zc_cli.sandbox_demo import ensure_demo

    stop = asyncio.Event()  # set by Ctrl-C or SIGTERM, even while the sandbox is still starting
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    admin_token, database_url = await asyncio.to_thread(_prepare, data_dir)
    mailbox_dir = (data_dir / "mailbox").resolve()
    api_url = f"http://127.0.0.1:{api_port}"
    async with contextlib.AsyncExitStack() as stack:
        aws_endpoint_url = stack.enter_context(moto_server(moto_port))
        smtp_port = stack.enter_context(smtp_sink(mailbox_dir, free_port()))
        github = await stack.enter_async_context(fake_github(api_url))
        state = await stack.enter_async_context(embedded_services(
            database_url=database_url, aws_endpoint_url=aws_endpoint_url, api_port=api_port,
            admin_token=admin_token, smtp_port=smtp_port, sweep_interval=sweep_interval, log_level="WARNING",
            mailbox_dir=mailbox_dir, api_overrides=github.settings,
        ))
        demo = await ensure_demo(
            api_url=state.api_url, admin_token=admin_token,
            aws=AwsAccess(endpoint_url=aws_endpoint_url, session_name="sandbox-setup"),
            customer_account_id=state.customer_account_id, data_dir=data_dir, mailbox_dir=mailbox_dir,
        )
        state = replace(
            state, customer_role_arn=demo.role_arn, account_id=demo.account_id, account_name=demo.account_name,
            cloud_account_id=demo.cloud_account_id, cloud_account_mode=demo.mode, developers=demo.developers,
            lease_seconds=demo.policy.get("default_lease_seconds"), max_lease_seconds=demo.policy.get("max_lease_seconds"),
            warning_seconds=tuple(demo.policy.get("warning_seconds") or ()), github_url=github.url,
        )
        state.save(data_dir)
        for failure in demo.verify_failures:
            log.warning("the demo cloud account did not verify: %s", failure)
        print(banner(state, data_dir=data_dir), flush=True)
        await stop.wait()
        print("stopping the sandbox…", flush=True)
    print(f"the sandbox has stopped; its data is kept in {data_dir}/", flush=True)


@dataclass(frozen=True)
class FakeGithub:
    """The fake GitHub that "Sign in with GitHub" goes to in the sandbox."""

    url: str
    settings: dict[str, Any]


@contextlib.asynccontextmanager
async def fake_github(api_url: str) -> AsyncIterator[FakeGithub]:
    """The fake GitHub OAuth server on a free port, knowing the sandbox's admin and
    developers; its sign-in page also takes any login and email you type."""
    from zc_cli.fake_github import FakeIdentity, create_fake_github, github_settings
    from zc_cli.local_server import serving
    from zc_cli.sandbox_demo import DEMO

    client_id, client_secret = f"sandbox-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    people = [FakeIdentity(login="sandbox-admin", email=ADMIN_EMAIL, name="Sandbox admin")]
    people += [FakeIdentity(login=email.split("@")[0], email=email) for email in DEMO.developers]
    app = create_fake_github(client_id, client_secret, people, callback_url=f"{api_url}/auth/github/callback")
    async with serving(app) as url:
        yield FakeGithub(url=url, settings=github_settings(url, client_id, client_secret))


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    for unit, name in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds % unit == 0:
            return f"{seconds // unit} {name}"
    return f"{seconds} s"


def banner(state: SandboxState, *, data_dir: Path) -> str:
    warnings = " and ".join(_duration(s) for s in state.warning_seconds) or "none"
    sign_in = (
        f"Sign in with GitHub goes to a fake GitHub ({state.github_url}): pick sandbox-admin "
        f"({state.admin_email}) to be the admin, or type any @example.com address to join as a developer"
    )
    developers = ", ".join(state.developers) or "none"
    data_dir_export = "" if data_dir == Path(".zerocloud") else f" ZC_SANDBOX_DIR={data_dir.resolve()}"
    return f"""
ZeroCloud sandbox is running: every service in one process, listening on 127.0.0.1 only.
Ctrl-C stops it; the database, the mailbox and this state are kept in {data_dir}/.

  web UI         {state.api_url}/
                 {sign_in}
  mailbox        {state.mailbox_url}   (every mail ZeroCloud sends; no sign-in in the sandbox)
  API            {state.api_url}   (OpenAPI: {state.api_url}/docs)
  admin token    {state.admin_token}   ({state.admin_email})

  demo account   "{state.account_name}" (account {state.account_id}), developer(s): {developers}
                 leases last {_duration(state.lease_seconds)} (renewable up to {_duration(state.max_lease_seconds)}), \
warnings {warnings} before the end
  fake AWS       moto at {state.aws_endpoint_url}: AWS account {state.customer_account_id} is cloud account \
{state.cloud_account_id}
                 in {state.cloud_account_mode.upper()} mode: instances nobody renews really are stopped \
(it is a fake AWS)
  event queue    {state.queue_url}

Next, in another terminal (in this folder):
  export ZC_API_URL={state.api_url} ZC_API_TOKEN={state.admin_token}{data_dir_export}
  export PATH=$PWD/.venv/bin:$PATH
  zerocloud-cli sandbox launch --owner alice@example.com --count 3
  zerocloud-cli list leases
then open {state.mailbox_url}
"""
