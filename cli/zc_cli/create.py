"""`zerocloud-cli create ...`: accounts, cloud accounts, users, API tokens, cloud events."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from zc_common.cloudevents import UnusableEvent, parse_event, state_change_event

from zc_cli.client import connect
from zc_cli.errors import EXIT_USAGE, fail
from zc_cli.options import AccountId, ApiUrl, Json, Payload, Token, account_of_caller
from zc_cli.output import emit_json, emit_record

create_app = typer.Typer(
    help="Create accounts, cloud accounts, users, invitations and API tokens; send a cloud event.", no_args_is_help=True
)

INSTANCE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down", "terminated")
LEASE_UNITS = ("seconds", "minutes", "hours", "days")


def json_error(what: str, text: str, error: json.JSONDecodeError) -> str:
    """Say where the JSON broke, with the line and a caret under the spot."""
    message = f"{what} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
    if text[: error.pos].rstrip().endswith(",") and text[error.pos : error.pos + 1] in ("}", "]"):
        message += " (JSON allows no comma before a closing } or ])"
    elif "double quotes" in error.msg:
        message += " (JSON wants double quotes around names and strings)"
    line = text.splitlines()[error.lineno - 1] if text.splitlines() else ""
    if 0 < len(line) <= 200:
        message += f"\n  {line}\n  {' ' * (error.colno - 1)}^"
    return message


def parse_payload(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        fail(json_error("--payload", text, error), EXIT_USAGE)
    if not isinstance(value, dict):
        fail(f"--payload must be a JSON object ({{...}}), not {type(value).__name__}", EXIT_USAGE)
    return value


def body_of(payload: str | None, **fields: Any) -> dict[str, Any]:
    """The --payload object with the options given on the command line laid over it."""
    body = parse_payload(payload)
    body.update({key: value for key, value in fields.items() if value is not None and value != []})
    return body


def _choice(option: str, value: str | None, allowed: tuple[str, ...]) -> str | None:
    if value is not None and value not in allowed:
        fail(f"{option} must be one of {', '.join(allowed)}; got {value!r}", EXIT_USAGE)
    return value


@create_app.command("account")
def create_account(
    payload: Payload = None,
    name: Annotated[str | None, typer.Option(help="The customer's name, e.g. BigDB.")] = None,
    lease_expires_in: Annotated[
        int | None, typer.Option(min=1, help="Default lease length, in --lease-expires-in-units.")
    ] = None,
    lease_expires_in_units: Annotated[
        str | None, typer.Option(help="seconds, minutes, hours or days.", show_default=False)
    ] = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Create a ZeroCloud account; you become its admin (you must not be in one yet)."""
    body = body_of(
        payload,
        name=name,
        lease_expires_in=lease_expires_in,
        lease_expires_in_units=_choice("--lease-expires-in-units", lease_expires_in_units, LEASE_UNITS),
    )
    with connect(api_url, token) as client:
        created = client.post("/accounts", body)
    emit_record(created, as_json=as_json)


@create_app.command("cloudaccount")
def create_cloudaccount(
    account_id: AccountId = None,
    payload: Payload = None,
    name: Annotated[str | None, typer.Option(help="A name for this AWS account, e.g. dev.")] = None,
    upstream_account_id: Annotated[str | None, typer.Option(help="The 12-digit AWS account id.")] = None,
    assume_role_arn: Annotated[
        str | None, typer.Option(help="The role ZeroCloud assumes, arn:aws:iam::<account>:role/<name>.")
    ] = None,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="A region to watch (repeat for more; default us-east-1)."),
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="observe (default: leases and email only) or enforce (stop/terminate).")
    ] = None,
    cloudprovider: Annotated[str | None, typer.Option(help="Only AWS for now.")] = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Onboard an AWS account. ZeroCloud generates the external ID the role's trust policy must require."""
    body = body_of(
        payload,
        name=name,
        upstream_account_id=upstream_account_id,
        assume_role_arn=assume_role_arn,
        regions=region,
        mode=_choice("--mode", mode, ("observe", "enforce")),
        cloudprovider=cloudprovider,
    )
    with connect(api_url, token) as client:
        created = client.post(f"/accounts/{account_of_caller(client, account_id)}/cloudaccounts", body)
    emit_record(created, as_json=as_json)
    if not as_json and isinstance(created, dict) and created.get("external_id"):
        typer.echo(
            f"\nThe trust policy of {created.get('assume_role_arn')} must require\n"
            f"  sts:ExternalId = {created['external_id']}\n"
            f"then check it with: zerocloud-cli verify cloudaccount {created.get('id')}"
        )


@create_app.command("user")
def create_user(
    account_id: AccountId = None,
    payload: Payload = None,
    email: Annotated[str | None, typer.Option(help="The user's email address.")] = None,
    role: Annotated[str | None, typer.Option(help="admin or dev (default dev).", show_default=False)] = None,
    github_login: Annotated[str | None, typer.Option(help="Their GitHub login, for signing in.")] = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Add a user to an account (admins only); they are mailed a link to confirm their address."""
    role = _choice("--role", role, ("admin", "dev"))
    body = body_of(payload, email=email, role=role, github_login=github_login)
    with connect(api_url, token) as client:
        created = client.post(f"/accounts/{account_of_caller(client, account_id)}/users", body)
    emit_record(created, as_json=as_json)


@create_app.command("token")
def create_token(
    name: Annotated[str, typer.Option(help="What the token is for, e.g. laptop or ci.")],
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Create an API token for yourself. It is shown this once only."""
    with connect(api_url, token) as client:
        created = client.post("/tokens", {"name": name})
    if as_json or not isinstance(created, dict):
        emit_json(created)
        return
    emit_record({key: value for key, value in created.items() if key != "token"}, as_json=False)
    typer.echo(f"\ntoken: {created.get('token')}\nStore it now: it is not shown again.")


def _read_event(file: str | None) -> bytes:
    if file == "-" or file is None:
        if file is None and sys.stdin.isatty():
            fail(
                "no event given: use --file PATH, pipe the event on stdin, or describe it with "
                "--instance-id and --account",
                EXIT_USAGE,
            )
        return sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        return Path(file).read_bytes()
    except OSError as error:
        fail(f"cannot read --file {file}: {error.strerror or error}", EXIT_USAGE)


@create_app.command("cloudevent")
def create_cloudevent(
    file: Annotated[
        str | None,
        typer.Option(
            "--file", "-f", help="An EventBridge event (raw or SNS-wrapped) in a JSON file; - for stdin."
        ),
    ] = None,
    instance_id: Annotated[
        str | None, typer.Option(help="Build a state-change event for this instance.")
    ] = None,
    state: Annotated[
        str | None, typer.Option(help=f"Its new state: {', '.join(INSTANCE_STATES)} (default running).")
    ] = None,
    account: Annotated[str | None, typer.Option(help="The 12-digit AWS account the instance is in.")] = None,
    region: Annotated[str | None, typer.Option(help="Its region (default us-east-1).")] = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Send an EC2 event to ZeroCloud, as EventBridge would: ZeroCloud then looks the
    instances up in AWS. Give a file, pipe it on stdin, or describe a state change with
    --instance-id/--state/--account/--region."""
    described = any(value is not None for value in (instance_id, state, account, region))
    if described:
        if file is not None:
            fail("give either --file or --instance-id/--state/--account/--region, not both", EXIT_USAGE)
        if instance_id is None or account is None:
            fail("a state-change event needs --instance-id and --account", EXIT_USAGE)
        event = state_change_event(
            account_id=account,
            region=region or "us-east-1",
            instance_id=instance_id,
            state=_choice("--state", state, INSTANCE_STATES) or "running",
        )
        try:
            parse_event(event)
        except UnusableEvent as error:
            fail(f"that event would be refused: {error}", EXIT_USAGE)
        content = json.dumps(event).encode()
    else:
        content = _read_event(file)
        if not content.strip():
            fail("the event is empty: give --file PATH, pipe JSON on stdin, or use --instance-id", EXIT_USAGE)
        text = content.decode("utf-8", errors="replace")
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            fail(json_error("the event", text, error), EXIT_USAGE)
    with connect(api_url, token) as client:
        answer = client.post("/cloudevents", content=content)
    if as_json or not isinstance(answer, dict):
        emit_json(answer)
        return
    instances = ", ".join(answer.get("instance_ids") or []) or "-"
    typer.echo(
        f"accepted: AWS account {answer.get('account_id')}, region {answer.get('region')}, "
        f"instances {instances} (message {answer.get('message_id')})"
    )
