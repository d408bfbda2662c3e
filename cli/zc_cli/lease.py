"""`zerocloud-cli lease ...`: what owners and admins do to a lease — renew it, shut it
down now, exempt it, give it to someone else."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import typer

from zc_cli.client import connect
from zc_cli.errors import EXIT_USAGE, fail
from zc_cli.options import ApiUrl, Json, Token
from zc_cli.output import emit_record

lease_app = typer.Typer(help="Renew, shut down, exempt a lease, or change its owner.", no_args_is_help=True)

LeaseId = Annotated[int, typer.Argument(metavar="ID", help="The lease's id.", show_default=False)]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(option: str, value: str) -> int:
    """'3d', '12h', '90m', '1d12h' or plain seconds, in seconds."""
    text = value.strip().lower()
    if text.isdigit():
        seconds = int(text)
    elif text and _DURATION.sub("", text) == "":
        seconds = sum(int(amount) * _UNITS[unit] for amount, unit in _DURATION.findall(text))
    else:
        fail(f"{option} must be a duration such as 3d, 12h, 90m or 1d12h (s, m, h, d, w); got {value!r}", EXIT_USAGE)
    if seconds <= 0:
        fail(f"{option} must be longer than zero; got {value!r}", EXIT_USAGE)
    return seconds


def parse_time(option: str, value: str) -> str:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        fail(f"{option} must be an ISO 8601 time such as 2030-01-31T12:00:00Z; got {value!r}", EXIT_USAGE)
    return value


@lease_app.command("renew")
def renew(
    lease_id: LeaseId,
    for_: Annotated[
        str | None,
        typer.Option("--for", metavar="DURATION", help="Add this to the lease, e.g. 3d, 12h, 90m.", show_default=False),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="Renew to this time (ISO 8601; UTC when no zone).", show_default=False),
    ] = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Renew a lease by a duration (--for) or to a time (--until), within the maximum lease."""
    if (for_ is None) == (until is None):
        fail("give either --for DURATION or --until TIME", EXIT_USAGE)
    if for_ is not None:
        body: dict[str, object] = {"extend_by_seconds": parse_duration("--for", for_)}
    else:
        assert until is not None
        body = {"until": parse_time("--until", until)}
    with connect(api_url, token) as client:
        emit_record(client.post(f"/leases/{lease_id}/renew", body), as_json=as_json)


@lease_app.command("shutdown")
def shutdown(lease_id: LeaseId, as_json: Json = False, api_url: ApiUrl = None, token: Token = None) -> None:
    """End a lease now; its instance is stopped or terminated per policy.

    In observe mode ZeroCloud changes nothing in AWS and only records what it would have done."""
    with connect(api_url, token) as client:
        emit_record(client.post(f"/leases/{lease_id}/shutdown"), as_json=as_json)


@lease_app.command("exempt")
def exempt(
    lease_id: LeaseId,
    reason: Annotated[str, typer.Option(metavar="TEXT", help="Why this instance may outlive the policy.")],
    until: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="When the exemption ends (ISO 8601); none: no end.", show_default=False),
    ] = None,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Exempt a lease from expiry (admins), with a reason, optionally until a time."""
    body: dict[str, object] = {"reason": reason}
    if until is not None:
        body["until"] = parse_time("--until", until)
    with connect(api_url, token) as client:
        emit_record(client.post(f"/leases/{lease_id}/exempt", body), as_json=as_json)


@lease_app.command("owner")
def owner(
    lease_id: LeaseId,
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="A user of the lease's account.", show_default=False)],
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Give a lease to another user of the account (admins)."""
    with connect(api_url, token) as client:
        emit_record(client.post(f"/leases/{lease_id}/owner", {"email": email}), as_json=as_json)
