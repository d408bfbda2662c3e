"""Fixtures for the CLI's tests: a real api (the app served by uvicorn on a free port,
over a fresh database), the CLI run in-process with Typer's CliRunner, and a home of its
own so no test reads or writes the developer's stored token."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from tests.support.credentials import API_CREDENTIALS
from tests.support.ports import free_port
from zc_cli.main import app

CUSTOMER = "111111111111"
ROLE_ARN = f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud"
SEED_ACCOUNT = '{"lease_expires_in": 3, "lease_expires_in_units": "days", "name": "BigDB"}'
SEED_CLOUDACCOUNT = (
    '{"assume_role_arn": "arn:aws:iam::111111111111:role/ZeroCloud", "cloudprovider": "AWS", '
    '"name": "dev", "upstream_account_id": "111111111111"}'
)


@pytest.fixture(autouse=True)
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where `login` stores the token in this test; and no ZC_API_* from the caller's shell."""
    config = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    for name in ("ZC_API_URL", "ZC_API_TOKEN", "ZC_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return config / "zerocloud"


@dataclass
class RunningApi:
    url: str
    internal_url: str
    admin_token: str
    database_url: str


@contextlib.contextmanager
def serve_api(
    database_url: str, *, aws_endpoint_url: str | None = None, amqp: tuple[str, str] | None = None
) -> Iterator[RunningApi]:
    """The real api, served in a thread of its own: the CLI is synchronous and would block
    any event loop it shared with the server. On an in-process bus, or on RabbitMQ when
    given ``amqp`` (url, exchange)."""
    from zc_common.bus.memory import InProcessBus
    from zc_common.settings import ApiSettings

    from tests.support.serving import serving_together_in_thread
    from zc_api.main import create_app, internal_app

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    admin_token = f"zc_{secrets.token_urlsafe(32)}"
    bus: dict[str, Any] = {"amqp_url": "memory://", "bus": "memory"}
    if amqp is not None:
        bus = {"amqp_url": amqp[0], "amqp_exchange": amqp[1], "bus": "rabbitmq"}
    settings = ApiSettings(
        database_url=database_url,
        **bus,
        **API_CREDENTIALS,
        bootstrap_admin_token=admin_token,
        aws_endpoint_url=aws_endpoint_url,
        aws_max_attempts=1,
        http_port=port,
        internal_port=free_port(),
        public_url=url,
    )
    app = create_app(settings, bus=InProcessBus() if amqp is None else None)
    listeners = [(app, port), (internal_app(app), settings.internal_port)]
    with serving_together_in_thread(listeners, lifespan=True, name="api", start_timeout=30) as [_, internal_url]:
        yield RunningApi(url=url, internal_url=internal_url, admin_token=admin_token, database_url=database_url)


@pytest.fixture
def api(clean_database: str) -> Iterator[RunningApi]:
    """The real api over an emptied database. Its AWS is an address nothing answers on, so
    no test can reach the real AWS through it."""
    with serve_api(clean_database, aws_endpoint_url=f"http://127.0.0.1:{free_port()}") as running:
        yield running


@pytest.fixture
def api_on_moto(clean_database: str, moto: str) -> Iterator[RunningApi]:
    """The real api with the moto server as its AWS."""
    with serve_api(clean_database, aws_endpoint_url=moto) as running:
        yield running


@pytest.fixture
def api_on_rabbitmq(clean_database: str, moto: str, amqp_url: str, exchange: str) -> Iterator[RunningApi]:
    """The real api with moto as its AWS and RabbitMQ (this test's exchange) as its bus,
    for what another process publishes."""
    with serve_api(clean_database, aws_endpoint_url=moto, amqp=(amqp_url, exchange)) as running:
        yield running


@dataclass
class Cli:
    """`zerocloud-cli` in-process, pointed at the api by environment, as a person would."""

    api_url: str | None = None
    token: str | None = None

    def __call__(self, *args: str, input: str | None = None, token: str | None = "") -> Result:
        env = {"ZC_API_URL": self.api_url, "ZC_API_TOKEN": self.token if token == "" else token}
        return CliRunner().invoke(app, list(args), input=input, env=env, catch_exceptions=False)

    def json(self, *args: str, input: str | None = None) -> Any:
        result = self(*args, "--json", input=input)
        assert result.exit_code == 0, f"exit {result.exit_code}: {result.stderr}"
        return json.loads(result.stdout)


@pytest.fixture
def cli(api: RunningApi) -> Cli:
    """The CLI as the bootstrap admin of a running api."""
    return Cli(api_url=api.url, token=api.admin_token)


@pytest.fixture
def offline_cli() -> Cli:
    """The CLI with no api behind it (for what is refused before any request)."""
    return Cli(api_url=f"http://127.0.0.1:{free_port()}", token="zc_" + "x" * 40)


@pytest.fixture
def onboarded(cli: Cli) -> dict[str, int]:
    """The seed's account and cloud account, made with the seed's own commands."""
    account = cli.json("create", "account", "--payload", SEED_ACCOUNT)
    account_id = str(account["id"])
    cloud = cli.json("create", "cloudaccount", "--accountID", account_id, "--payload", SEED_CLOUDACCOUNT)
    return {"account": account["id"], "cloud_account": cloud["id"]}
