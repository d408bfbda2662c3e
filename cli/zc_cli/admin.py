"""What an admin changes after onboarding: `zerocloud-cli update cloudaccount` (mode, name,
regions), `delete cloudaccount`, `delete user`, `update account` (name, webhook), and invitations —
`create invitation`, `list invitations`, `revoke invitation`.

The invitation commands join the `create` and `list` sub-apps when this module is
imported, which main.py does."""

from __future__ import annotations

from typing import Annotated

import typer

from zc_cli.client import connect
from zc_cli.create import _choice, body_of, create_app
from zc_cli.errors import EXIT_USAGE, fail
from zc_cli.options import AccountId, ApiUrl, Json, Limit, Offset, Token, account_of_caller
from zc_cli.output import Column, cell, emit_json, emit_page, emit_record
from zc_cli.read import list_app

update_app = typer.Typer(
    help="Change an object: a cloud account's mode, name or regions; your account's name or webhook.",
    no_args_is_help=True,
)
revoke_app = typer.Typer(help="Revoke something so it stops working: an invitation.", no_args_is_help=True)
delete_app = typer.Typer(help="Remove something from ZeroCloud: a cloud account, a user.", no_args_is_help=True)

CLOUDACCOUNT_MODES = ("observe", "enforce")
ROLES = ("admin", "dev")
INVITATION_STATUSES = ("pending", "accepted", "revoked", "expired")
INVITATION_COLUMNS: list[Column] = [
    ("id", "ID"),
    ("email", "EMAIL"),
    ("role", "ROLE"),
    ("status", "STATUS"),
    ("created_at", "CREATED"),
    ("expires_at", "EXPIRES"),
]

ENFORCE_NOTE = (
    "Enforce mode: ZeroCloud will now stop or terminate (per policy) the instances of cloud account {id} "
    "whose lease ends unrenewed, honouring EC2 stop/termination protection and the blast-radius cap."
)


def _regions(value: str | None) -> list[str] | None:
    """'us-east-1,eu-west-1' as a list; the api checks each name."""
    if value is None:
        return None
    regions = [region.strip() for region in value.split(",") if region.strip()]
    if not regions:
        fail(f"--regions needs at least one region, e.g. us-east-1,eu-west-1; got {value!r}", EXIT_USAGE)
    return regions


@update_app.command("cloudaccount")
def update_cloudaccount(
    cloud_account_id: Annotated[
        int, typer.Argument(metavar="ID", help="The cloud account's id.", show_default=False)
    ],
    mode: Annotated[
        str | None,
        typer.Option(
            metavar="MODE",
            help="observe (leases and mail, no change in AWS) or enforce (stop/terminate when a lease ends).",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="A new name for the AWS account, e.g. dev.", show_default=False),
    ] = None,
    regions: Annotated[
        str | None,
        typer.Option(
            metavar="REGION,...",
            help="The regions to watch, comma-separated, e.g. us-east-1,eu-west-1: replaces the current list.",
            show_default=False,
        ),
    ] = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Switch a cloud account between observe and enforce, rename it, or change its regions
    (admins). Only what you give changes."""
    body = body_of(
        None, mode=_choice("--mode", mode, CLOUDACCOUNT_MODES), name=name, regions=_regions(regions)
    )
    if not body:
        fail("nothing to change: give at least one of --mode, --name, --regions", EXIT_USAGE)
    with connect(api_url, token) as client:
        updated = client.request("PATCH", f"/cloudaccounts/{cloud_account_id}", body=body)
    emit_record(updated, as_json=as_json)
    if mode == "enforce" and isinstance(updated, dict) and updated.get("mode") == "enforce":
        # With --json, stdout stays the api's JSON alone; the person still reads the note.
        typer.echo(ENFORCE_NOTE.format(id=updated.get("id", cloud_account_id)), err=as_json)


@update_app.command("account")
def update_account(
    account_id: AccountId = None,
    name: Annotated[
        str | None, typer.Option(metavar="NAME", help="A new name for the account.", show_default=False)
    ] = None,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="A Slack-compatible webhook the account's lease notices are also posted to "
            "(never with renew or shut-down links).",
            show_default=False,
        ),
    ] = None,
    no_webhook: Annotated[bool, typer.Option("--no-webhook", help="Stop posting to the account's webhook.")] = False,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Rename your account or set its webhook for lease notices (admins). Only what you give changes."""
    if no_webhook and webhook_url is not None:
        fail("give --webhook-url or --no-webhook, not both", EXIT_USAGE)
    body: dict[str, object] = body_of(None, name=name, webhook_url=webhook_url)
    if no_webhook:
        body["webhook_url"] = None
    if not body:
        fail("nothing to change: give at least one of --name, --webhook-url, --no-webhook", EXIT_USAGE)
    with connect(api_url, token) as client:
        updated = client.request("PATCH", f"/accounts/{account_of_caller(client, account_id)}", body=body)
    emit_record(updated, as_json=as_json)


@create_app.command("invitation")
def create_invitation(
    email: Annotated[str, typer.Option(metavar="EMAIL", help="Who to invite; they are mailed a link.")],
    role: Annotated[
        str | None, typer.Option(metavar="ROLE", help="admin or dev (default dev).", show_default=False)
    ] = None,
    account_id: AccountId = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Invite someone into an account with a role (admins). They accept by following the
    mailed link and signing in with GitHub."""
    role = _choice("--role", role, ROLES)
    body = {"email": email} if role is None else {"email": email, "role": role}
    with connect(api_url, token) as client:
        created = client.post(f"/accounts/{account_of_caller(client, account_id)}/invitations", body)
    emit_record(created, as_json=as_json)
    if not as_json and isinstance(created, dict) and created.get("id") is not None:
        until = cell("expires_at", created.get("expires_at"))
        typer.echo(
            f"\n{created.get('email')} is mailed a link to join as {created.get('role')}; "
            f"it works until {until}.\nTake it back with: zerocloud-cli revoke invitation {created['id']}"
        )


@list_app.command("invitations")
def list_invitations(
    account_id: AccountId = None,
    status: Annotated[
        str | None,
        typer.Option(help=f"Only invitations in this status: {', '.join(INVITATION_STATUSES)}."),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """An account's invitations, newest first (admins)."""
    _choice("--status", status, INVITATION_STATUSES)
    with connect(api_url, token) as client:
        path = f"/accounts/{account_of_caller(client, account_id)}/invitations"
        page = client.get(path, {"status": status, "limit": limit, "offset": offset})
    emit_page(page, INVITATION_COLUMNS, as_json=as_json)


@revoke_app.command("invitation")
def revoke_invitation(
    invitation_id: Annotated[
        int, typer.Argument(metavar="ID", help="The invitation's id.", show_default=False)
    ],
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Revoke a pending invitation (admins): its link stops working at once. An accepted
    one cannot be taken back."""
    with connect(api_url, token) as client:
        client.delete(f"/invitations/{invitation_id}")
    typer.echo(f"invitation {invitation_id} revoked: its link no longer works")


@delete_app.command("cloudaccount")
def delete_cloudaccount(
    cloud_account_id: Annotated[
        int, typer.Argument(metavar="ID", help="The cloud account's id.", show_default=False)
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Remove a cloud account (admins): its live leases are released, ZeroCloud no longer
    assumes its role, and its AWS account can be onboarded again. The audit trail is kept."""
    if not yes:
        typer.confirm(
            f"Remove cloud account {cloud_account_id} and release its live leases?", abort=True, err=True
        )
    with connect(api_url, token) as client:
        removed = client.delete(f"/cloudaccounts/{cloud_account_id}")
    if as_json:
        emit_json(removed)
        return
    released = removed.get("leases_released") if isinstance(removed, dict) else None
    typer.echo(
        f"cloud account {cloud_account_id} removed: {released} live lease(s) released, its role is no longer "
        "used; its audit trail is kept"
    )


@delete_app.command("user")
def delete_user(
    user_id: Annotated[int, typer.Argument(metavar="ID", help="The user's id.", show_default=False)],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Remove a user from your account (admins): their live leases become yours, each with
    a fresh notice period; their tokens and sessions end; the audit trail is kept. Their
    address does not rejoin by an allowed email pattern: invite them to bring them back."""
    if not yes:
        typer.confirm(f"Remove user {user_id} and take over their live leases?", abort=True, err=True)
    with connect(api_url, token) as client:
        removed = client.delete(f"/users/{user_id}")
    if as_json:
        emit_json(removed)
        return
    email = removed.get("email") if isinstance(removed, dict) else None
    reowned = removed.get("leases_reowned") if isinstance(removed, dict) else None
    typer.echo(f"user {user_id} ({email}) removed: {reowned} live lease(s) are now yours; the audit trail is kept")
