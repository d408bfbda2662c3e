"""`zerocloud-cli get policy` and `update policy`: an account's lease policy, every field
the API takes (POLICY_OPTIONS names the option for each; a test holds it to the API's
update schema). These commands join the `get` and `update` sub-apps when this module is
imported, which main.py does."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from zc_cli.admin import update_app
from zc_cli.client import connect
from zc_cli.create import LEASE_UNITS, _choice
from zc_cli.errors import EXIT_USAGE, fail
from zc_cli.lease import parse_duration
from zc_cli.options import AccountId, ApiUrl, Json, Token, account_of_caller
from zc_cli.output import emit_record
from zc_cli.read import get_app

ACTIONS_ON_EXPIRY = ("stop", "terminate")

# Each field of the API's policy update (AccountPolicyUpdate) -> the option that sets it.
POLICY_OPTIONS = {
    "default_lease_seconds": "--default-lease",
    "lease_expires_in": "--lease-expires-in",
    "lease_expires_in_units": "--lease-expires-in-units",
    "max_lease_seconds": "--max-lease",
    "owner_tag": "--owner-tag",
    "allowed_email_patterns": "--allowed-email-pattern",
    "max_instances_per_user": "--max-instances-per-user",
    "over_quota_grace_seconds": "--over-quota-grace",
    "action_on_expiry": "--action-on-expiry",
    "warning_seconds": "--warning",
    "blast_radius_percent": "--blast-radius-percent",
    "blast_radius_per_hour": "--blast-radius-per-hour",
}



@get_app.command("policy")
def get_policy(account_id: AccountId = None, as_json: Json = False, api_url: ApiUrl = None, token: Token = None) -> None:
    """Show an account's lease policy (yours by default): lease lengths, quota, action on
    expiry, warnings, blast-radius cap, owner tag and allowed email patterns."""
    with connect(api_url, token) as client:
        emit_record(client.get(f"/accounts/{account_of_caller(client, account_id)}/policy"), as_json=as_json)


@update_app.command("policy")
def update_policy(
    account_id: AccountId = None,
    default_lease: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="A new lease's length, e.g. 3d, 12h, 90m.", show_default=False),
    ] = None,
    lease_expires_in: Annotated[
        int | None,
        typer.Option(min=1, help="The same in --lease-expires-in-units, as `create account` takes it.", show_default=False),
    ] = None,
    lease_expires_in_units: Annotated[
        str | None, typer.Option(metavar="UNIT", help="seconds, minutes, hours or days.", show_default=False)
    ] = None,
    max_lease: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="The longest a lease may be renewed to, e.g. 14d.", show_default=False),
    ] = None,
    owner_tag: Annotated[
        str | None,
        typer.Option(metavar="KEY", help="The instance tag naming the owner's email (default owner).", show_default=False),
    ] = None,
    allowed_email_pattern: Annotated[
        list[str] | None,
        typer.Option(
            metavar="PATTERN",
            help="Who may own instances and join by signing in: an address, *@example.com or *@*.example.com "
            "(repeat for more; replaces the list).",
            show_default=False,
        ),
    ] = None,
    no_allowed_email_patterns: Annotated[
        bool,
        typer.Option("--no-allowed-email-patterns", help="Empty the list: any owner email, nobody joins uninvited."),
    ] = False,
    max_instances_per_user: Annotated[
        int | None,
        typer.Option(metavar="N", min=0, help="At most this many leased instances per person.", show_default=False),
    ] = None,
    no_max_instances_per_user: Annotated[
        bool, typer.Option("--no-max-instances-per-user", help="Lift the per-person quota.")
    ] = False,
    over_quota_grace: Annotated[
        str | None,
        typer.Option(metavar="DURATION", help="The short lease an instance over the quota gets, e.g. 1h.",
                     show_default=False),
    ] = None,
    action_on_expiry: Annotated[
        str | None,
        typer.Option(metavar="ACTION", help="stop or terminate, when a lease ends unrenewed (enforce mode).",
                     show_default=False),
    ] = None,
    warning: Annotated[
        list[str] | None,
        typer.Option(
            metavar="DURATION",
            help="Warn the owner this long before the lease ends, e.g. 1d (repeat for more; replaces the list).",
            show_default=False,
        ),
    ] = None,
    no_warnings: Annotated[bool, typer.Option("--no-warnings", help="Send no warning before a lease ends.")] = False,
    blast_radius_percent: Annotated[
        int | None,
        typer.Option(metavar="PERCENT", min=0, max=100,
                     help="Reap at most this share of a cloud account's managed instances per hour.", show_default=False),
    ] = None,
    blast_radius_per_hour: Annotated[
        int | None,
        typer.Option(metavar="N", min=0, help="And at most this many instances per cloud account per hour.",
                     show_default=False),
    ] = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Change your account's lease policy (admins). Only what you give changes; lists
    (patterns, warnings) are replaced as a whole."""
    for given, cleared, pair in (
        (allowed_email_pattern, no_allowed_email_patterns, "--allowed-email-pattern or --no-allowed-email-patterns"),
        (max_instances_per_user, no_max_instances_per_user, "--max-instances-per-user or --no-max-instances-per-user"),
        (warning, no_warnings, "--warning or --no-warnings"),
    ):
        if cleared and given is not None:
            fail(f"give {pair}, not both", EXIT_USAGE)
    body: dict[str, Any] = {
        key: value
        for key, value in {
            "default_lease_seconds": _seconds("--default-lease", default_lease),
            "lease_expires_in": lease_expires_in,
            "lease_expires_in_units": _choice("--lease-expires-in-units", lease_expires_in_units, LEASE_UNITS),
            "max_lease_seconds": _seconds("--max-lease", max_lease),
            "owner_tag": owner_tag,
            "allowed_email_patterns": allowed_email_pattern or None,
            "max_instances_per_user": max_instances_per_user,
            "over_quota_grace_seconds": _seconds("--over-quota-grace", over_quota_grace),
            "action_on_expiry": _choice("--action-on-expiry", action_on_expiry, ACTIONS_ON_EXPIRY),
            "warning_seconds": [parse_duration("--warning", w) for w in warning] if warning else None,
            "blast_radius_percent": blast_radius_percent,
            "blast_radius_per_hour": blast_radius_per_hour,
        }.items()
        if value is not None
    }
    if no_allowed_email_patterns:
        body["allowed_email_patterns"] = []
    if no_max_instances_per_user:
        body["max_instances_per_user"] = None
    if no_warnings:
        body["warning_seconds"] = []
    if not body:
        fail(f"nothing to change: give at least one of {', '.join(POLICY_OPTIONS.values())}", EXIT_USAGE)
    with connect(api_url, token) as client:
        path = f"/accounts/{account_of_caller(client, account_id)}/policy"
        emit_record(client.request("PATCH", path, body=body), as_json=as_json)


def _seconds(option: str, value: str | None) -> int | None:
    return None if value is None else parse_duration(option, value)
