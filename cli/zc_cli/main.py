"""`zerocloud-cli`: the root command, login, verify, sweep, the ingestor's poller in the
foreground, and the sub-apps (create, get, list, update, revoke, delete, lease, sandbox)."""

from __future__ import annotations

import importlib
from typing import Annotated, Any

import typer

from zc_cli import credentials
from zc_cli.admin import (  # also adds `create invitation`, `list invitations`
    delete_app,
    revoke_app,
    update_app,
)
from zc_cli.client import connect, resolve_target
from zc_cli.create import create_app
from zc_cli.errors import EXIT_API_ERROR, fail
from zc_cli.lease import lease_app
from zc_cli.options import ApiUrl, Json, Token
from zc_cli.output import emit_json, emit_record, table
from zc_cli.policy import get_policy  # noqa: F401 - adds `get policy`, `update policy`
from zc_cli.read import get_app, list_app
from zc_cli.sweep import sweep

app = typer.Typer(
    name="zerocloud-cli",
    help="ZeroCloud from the command line: accounts, cloud accounts, users, invitations, leases, events, sweeps.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would include API tokens
)
verify_app = typer.Typer(help="Check that ZeroCloud can work with something.", no_args_is_help=True)

app.add_typer(create_app, name="create")
app.add_typer(get_app, name="get")
app.add_typer(list_app, name="list")
app.add_typer(update_app, name="update")
app.add_typer(revoke_app, name="revoke")
app.add_typer(delete_app, name="delete")
app.add_typer(lease_app, name="lease")
app.add_typer(verify_app, name="verify")
app.command("sweep")(sweep)


def _sandbox_app() -> typer.Typer | None:
    """The sandbox sub-app, when its module is there. Only its absence is forgiven: an
    error inside it should be seen, not turned into a missing command."""
    try:
        module = importlib.import_module("zc_cli.sandbox")
    except ModuleNotFoundError as error:
        if error.name == "zc_cli.sandbox":
            return None
        raise
    sandbox: Any = getattr(module, "sandbox_app", None)
    return sandbox if isinstance(sandbox, typer.Typer) else None


_sandbox = _sandbox_app()
if _sandbox is not None:
    app.add_typer(_sandbox, name="sandbox")


@verify_app.command("cloudaccount")
def verify_cloudaccount(
    cloud_account_id: Annotated[int, typer.Argument(metavar="ID", help="The cloud account's id.")],
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Assume the cloud account's role (with its external ID) and try what ZeroCloud needs
    there. Exits 1 when a check fails."""
    with connect(api_url, token) as client:
        result = client.post(f"/cloudaccounts/{cloud_account_id}/verify")
    if as_json or not isinstance(result, dict):
        emit_json(result)
    else:
        checks = [check for check in result.get("checks") or [] if isinstance(check, dict)]
        typer.echo(table(checks, [("name", "CHECK"), ("ok", "OK"), ("detail", "DETAIL")]))
        typer.echo("all checks passed" if result.get("ok") else "some checks failed")
    if not (isinstance(result, dict) and result.get("ok")):
        raise typer.Exit(EXIT_API_ERROR)


@app.command("login")
def login(
    token: Annotated[
        str,
        typer.Option(
            metavar="TOKEN", prompt=True, hide_input=True, help="Your API token (asked for when not given)."
        ),
    ],
    api_url: ApiUrl = None,
) -> None:
    """Check a token against the api and store it (mode 0600) for the commands that follow."""
    target = resolve_target(api_url, token)
    with connect(target.api_url, token) as client:
        me = client.get("/users/me")
    path = credentials.save(token, target.api_url)
    who = me.get("email", "?") if isinstance(me, dict) else "?"
    role = me.get("role", "?") if isinstance(me, dict) else "?"
    typer.echo(f"logged in to {target.api_url} as {who} ({role}); token stored in {path}")


@app.command("logout")
def logout() -> None:
    """Forget the stored token."""
    path = credentials.token_path()
    typer.echo(f"removed {path}" if credentials.forget() else "no stored token")


@app.command("whoami")
def whoami(as_json: Json = False, api_url: ApiUrl = None, token: Token = None) -> None:
    """Who the api takes you for."""
    with connect(api_url, token) as client:
        emit_record(client.get("/users/me"), as_json=as_json)


def poll_cloudevent_queue(
    queue_url: Annotated[
        list[str] | None,
        typer.Option(
            "--queue-url",
            metavar="URL",
            help="An SQS queue URL to long-poll for EC2 events (repeat for several). "
            "Default: ZC_EVENT_QUEUE_URLS (comma-separated).",
            show_default=False,
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The api's internal listener, where the ingestor reads cloud accounts (its ZC_INTERNAL_PORT). "
            "Default: ZC_API_URL.",
            show_default=False,
        ),
    ] = None,
    service_token: Annotated[
        str | None,
        typer.Option(
            "--service-token",
            metavar="TOKEN",
            help="The ingestor's own credential (the api's ZC_INGESTOR_TOKEN; not a user token). "
            "Default: ZC_SERVICE_TOKEN, as for the ingestor service.",
            show_default=False,
        ),
    ] = None,
    aws_endpoint_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Send every AWS call here, e.g. a moto server. Default: ZC_AWS_ENDPOINT_URL.",
            show_default=False,
        ),
    ] = None,
    amqp_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="The RabbitMQ the resource changes are published to. Default: ZC_AMQP_URL.",
            show_default=False,
        ),
    ] = None,
    wait_seconds: Annotated[
        int | None,
        typer.Option(
            metavar="SECONDS",
            min=0,
            max=20,
            help="SQS long-poll wait per receive, 0-20 seconds (default 20).",
            show_default=False,
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Poll each queue once, then exit.")] = False,
) -> None:
    """Run the ingestor's queue poller in the foreground: long-poll the SQS queues for
    EventBridge EC2 events (raw or SNS-wrapped), look every instance they name up in AWS
    through its cloud account's role, publish the resource changes, and delete each
    message only after the publish is confirmed. Unusable events and events of accounts
    that are not onboarded are dead-lettered. Settings not given here come from the
    environment (ZC_*) and config.yml (ZC_CONFIG), as for the ingestor service. Stop with Ctrl-C."""
    # Imported here: the poller pulls in aiobotocore and aio-pika, which no other command needs.
    from zc_common.settings import IngestorSettings, load_settings

    from zc_ingestor.main import run_poller

    given: dict[str, Any] = {
        "event_queue_urls": queue_url or None,
        "api_url": api_url,
        "service_token": service_token,
        "aws_endpoint_url": aws_endpoint_url,
        "amqp_url": amqp_url,
        "poll_wait_seconds": wait_seconds,
    }
    overrides = {key: value for key, value in given.items() if value is not None}
    settings = load_settings(IngestorSettings, "ingestor", **overrides)
    if not settings.event_queue_urls:
        fail("no queue to poll: give --queue-url (or set ZC_EVENT_QUEUE_URLS)")
    try:
        run_poller(settings, once=once)
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)
        raise typer.Exit(130) from None


_POLL_HELP = "Run the ingestor's SQS poller in the foreground (see --help)."
app.command("poll_cloudevent_queue", short_help=_POLL_HELP)(poll_cloudevent_queue)
app.command("poll-cloudevent-queue", short_help=_POLL_HELP, hidden=True)(poll_cloudevent_queue)
