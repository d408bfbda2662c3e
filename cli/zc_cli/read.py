"""`zerocloud-cli get KIND ID` and `zerocloud-cli list KINDS`: reading what the api holds."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from zc_cli.client import connect
from zc_cli.errors import EXIT_USAGE, fail
from zc_cli.options import AccountId, ApiUrl, Cursor, Json, Limit, Offset, Token, account_of_caller
from zc_cli.output import Column, emit_page, emit_record

get_app = typer.Typer(help="Show one object by its id.", no_args_is_help=True)
list_app = typer.Typer(help="List objects, a page at a time (--limit, --offset; --cursor for leases, resources and audit).", no_args_is_help=True)

ACCOUNT_COLUMNS: list[Column] = [("id", "ID"), ("name", "NAME"), ("created_at", "CREATED")]
CLOUDACCOUNT_COLUMNS: list[Column] = [
    ("id", "ID"),
    ("account_id", "ACCOUNT"),
    ("name", "NAME"),
    ("cloudprovider", "PROVIDER"),
    ("upstream_account_id", "AWS ACCOUNT"),
    ("mode", "MODE"),
    ("regions", "REGIONS"),
    ("external_id", "EXTERNAL ID"),
]
USER_COLUMNS: list[Column] = [
    ("id", "ID"),
    ("email", "EMAIL"),
    ("role", "ROLE"),
    ("github_login", "GITHUB"),
    ("account_id", "ACCOUNT"),
]
LEASE_COLUMNS: list[Column] = [
    ("id", "ID"),
    ("instance_id", "INSTANCE"),
    ("instance_name", "NAME"),
    ("region", "REGION"),
    ("owner_email", "OWNER"),
    ("status", "STATUS"),
    ("expires_at", "EXPIRES"),
    ("version", "VERSION"),
    ("over_quota", "OVER QUOTA"),
]
RESOURCE_COLUMNS: list[Column] = [
    ("id", "ID"),
    ("instance_id", "INSTANCE"),
    ("name", "NAME"),
    ("cloud_account_id", "CLOUD ACCOUNT"),
    ("region", "REGION"),
    ("instance_type", "TYPE"),
    ("state", "STATE"),
    ("gone", "GONE"),
    ("launch_time", "LAUNCHED"),
    ("observed_at", "SEEN"),
]
AUDIT_COLUMNS: list[Column] = [
    ("id", "ID"),
    ("at", "TIME"),
    ("actor", "ACTOR"),
    ("action", "ACTION"),
    ("subject_type", "SUBJECT"),
    ("subject_id", "SUBJECT ID"),
    ("reason", "REASON"),
]
TOKEN_COLUMNS: list[Column] = [
    ("id", "ID"),
    ("name", "NAME"),
    ("prefix", "PREFIX"),
    ("created_at", "CREATED"),
    ("last_used_at", "LAST USED"),
]

LEASE_STATUSES = ("active", "expired", "reaping", "reaped", "released", "exempt")

# kind -> (path of one object, what it is)
_OBJECTS = {
    "account": ("/accounts/{id}", "a ZeroCloud account, with its policy"),
    "cloudaccount": ("/cloudaccounts/{id}", "an onboarded AWS account"),
    "user": ("/users/{id}", "a user"),
    "lease": ("/leases/{id}", "a lease"),
    "resource": ("/resources/{id}", "a resource (an EC2 instance)"),
    "sweep": ("/sweeps/{id}", "a sweep (admins): its state and, once done, what it counted"),
}


ObjectId = Annotated[int, typer.Argument(metavar="ID", help="Its numeric id.", show_default=False)]


def _register_get(kind: str, path: str, what: str) -> None:
    # Annotations here are strings evaluated in the module's globals: no local names in them.
    def command(
        object_id: ObjectId,
        as_json: Json = False,
        api_url: ApiUrl = None,
        token: Token = None,
    ) -> None:
        with connect(api_url, token) as client:
            emit_record(client.get(path.format(id=object_id)), as_json=as_json)

    command.__doc__ = f"Show {what}."
    get_app.command(kind)(command)


for _kind, (_path, _what) in _OBJECTS.items():
    _register_get(_kind, _path, _what)


def _time_option(option: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} must be an ISO 8601 time such as 2030-01-31T12:00:00Z; got {value!r}", EXIT_USAGE)
    return value


@list_app.command("accounts")
def list_accounts(
    limit: Limit = 50, offset: Offset = 0, as_json: Json = False, api_url: ApiUrl = None, token: Token = None
) -> None:
    """The accounts you belong to."""
    with connect(api_url, token) as client:
        page = client.get("/accounts", {"limit": limit, "offset": offset})
    emit_page(page, ACCOUNT_COLUMNS, as_json=as_json)


@list_app.command("cloudaccounts")
def list_cloudaccounts(
    account_id: AccountId = None,
    limit: Limit = 50,
    offset: Offset = 0,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """The AWS accounts onboarded in an account."""
    with connect(api_url, token) as client:
        path = f"/accounts/{account_of_caller(client, account_id)}/cloudaccounts"
        emit_page(client.get(path, {"limit": limit, "offset": offset}), CLOUDACCOUNT_COLUMNS, as_json=as_json)


@list_app.command("users")
def list_users(
    account_id: AccountId = None,
    limit: Limit = 50,
    offset: Offset = 0,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """The users of an account."""
    with connect(api_url, token) as client:
        path = f"/accounts/{account_of_caller(client, account_id)}/users"
        emit_page(client.get(path, {"limit": limit, "offset": offset}), USER_COLUMNS, as_json=as_json)


@list_app.command("leases")
def list_leases(
    owner: Annotated[str | None, typer.Option(help="Only leases of this owner (email).")] = None,
    status: Annotated[
        str | None, typer.Option(help=f"Only leases in this status: {', '.join(LEASE_STATUSES)}.")
    ] = None,
    cloud_account: Annotated[int | None, typer.Option(help="Only this cloud account's (its id).")] = None,
    expires_before: Annotated[
        str | None, typer.Option(help="Only leases ending before this ISO 8601 time.")
    ] = None,
    instance_id: Annotated[str | None, typer.Option(help="Only the lease of this instance.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Leases: an admin sees the account's, a developer their own."""
    if status is not None and status not in LEASE_STATUSES:
        fail(f"--status must be one of {', '.join(LEASE_STATUSES)}; got {status!r}", EXIT_USAGE)
    params = {
        "owner": owner,
        "status": status,
        "cloud_account_id": cloud_account,
        "expires_before": _time_option("--expires-before", expires_before),
        "instance_id": instance_id,
        "limit": limit,
        "offset": offset,
        "cursor": cursor,
    }
    with connect(api_url, token) as client:
        emit_page(client.get("/leases", params), LEASE_COLUMNS, as_json=as_json)


@list_app.command("resources")
def list_resources(
    cloud_account: Annotated[int | None, typer.Option(help="Only this cloud account's (its id).")] = None,
    region: Annotated[str | None, typer.Option(help="Only this region's.")] = None,
    state: Annotated[str | None, typer.Option(help="Only instances in this state, e.g. running.")] = None,
    instance_id: Annotated[str | None, typer.Option(help="Only this instance.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Resources (EC2 instances): an admin sees the account's, a developer those they hold a lease on."""
    params = {
        "cloud_account_id": cloud_account,
        "region": region,
        "state": state,
        "instance_id": instance_id,
        "limit": limit,
        "offset": offset,
        "cursor": cursor,
    }
    with connect(api_url, token) as client:
        emit_page(client.get("/resources", params), RESOURCE_COLUMNS, as_json=as_json)


@list_app.command("audit")
def list_audit(
    subject_type: Annotated[str | None, typer.Option(help="Only events about this kind, e.g. lease.")] = None,
    subject_id: Annotated[str | None, typer.Option(help="Only events about this object.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. lease.renewed.")] = None,
    since: Annotated[str | None, typer.Option(help="Only events after this ISO 8601 time.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    cursor: Cursor = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """The audit log of your account, newest first (admins only)."""
    params = {
        "subject_type": subject_type,
        "subject_id": subject_id,
        "action": action,
        "since": _time_option("--since", since),
        "limit": limit,
        "offset": offset,
        "cursor": cursor,
    }
    with connect(api_url, token) as client:
        emit_page(client.get("/audit-events", params), AUDIT_COLUMNS, as_json=as_json)


@list_app.command("tokens")
def list_tokens(
    limit: Limit = 50, offset: Offset = 0, as_json: Json = False, api_url: ApiUrl = None, token: Token = None
) -> None:
    """Your API tokens (never their secrets)."""
    with connect(api_url, token) as client:
        page = client.get("/tokens", {"limit": limit, "offset": offset})
    emit_page(page, TOKEN_COLUMNS, as_json=as_json)
