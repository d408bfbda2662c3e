"""`zerocloud-cli sweep`: ask ZeroCloud to list what AWS holds now — one cloud account, one
region, or everything of your account — and, with --wait, follow the sweeps to their end."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from zc_cli.client import ApiClient, connect
from zc_cli.errors import EXIT_API_ERROR, fail
from zc_cli.options import ApiUrl, Json, Token
from zc_cli.output import Column, emit_page

SWEEP_COLUMNS: list[Column] = [
    ("id", "ID"),
    ("cloud_account_id", "CLOUD ACCOUNT"),
    ("region", "REGION"),
    ("state", "STATE"),
    ("already_running", "ALREADY RUNNING"),
    ("instances_seen", "SEEN"),
    ("instances_gone", "GONE"),
    ("error", "ERROR"),
]
FINISHED = ("done", "failed")
POLL_SECONDS = 2.0  # between looks at sweeps still running (--wait)


def sweep(
    cloud_account: Annotated[
        int | None,
        typer.Option(
            "--cloud-account", metavar="ID", min=1, help="Only this cloud account (its id). Default: all of your account's.",
            show_default=False,
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(metavar="REGION", help="Only this region, e.g. us-east-1. Default: every region watched.",
                     show_default=False),
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every sweep is done, then print its counts.")] = False,
    timeout: Annotated[
        int, typer.Option(metavar="SECONDS", min=1, max=24 * 3600, help="With --wait: give up after this long.")
    ] = 900,
    as_json: Json = False,
    api_url: ApiUrl = None,
    token: Token = None,
) -> None:
    """Sweep now (admins): list every instance AWS holds in the cloud accounts and regions
    asked for, record what events missed, and release the leases of instances that are gone.
    A cloud account and region already being swept is not swept twice: you get that sweep.
    Exits 1 when a sweep failed (with --wait)."""
    body = {key: value for key, value in (("cloud_account_id", cloud_account), ("region", region)) if value is not None}
    with connect(api_url, token) as client:
        answer = client.post("/sweeps", body)
        sweeps = _rows(answer)
        if not wait:
            emit_page(answer, SWEEP_COLUMNS, as_json=as_json)
            if not as_json and sweeps:
                typer.echo(f"\nfollow with: zerocloud-cli get sweep {sweeps[0].get('id')} (or ask again with --wait)")
            return
        if not as_json:
            typer.echo(f"waiting for {len(sweeps)} sweep(s) to finish…", err=True)
        final, finished = _wait(client, sweeps, timeout)
    emit_page({"data": final, "count": len(final)}, SWEEP_COLUMNS, as_json=as_json)
    if not finished:
        fail(f"not finished after {timeout} s: see `zerocloud-cli get sweep ID` later", EXIT_API_ERROR)
    if any(row.get("state") == "failed" for row in final):
        fail("some sweeps failed (see ERROR)", EXIT_API_ERROR)


def _rows(answer: Any) -> list[dict[str, Any]]:
    rows = answer.get("data") if isinstance(answer, Mapping) else None
    return [dict(row) for row in rows or [] if isinstance(row, Mapping)]


def _wait(client: ApiClient, sweeps: list[dict[str, Any]], timeout: int) -> tuple[list[dict[str, Any]], bool]:
    """Each sweep as it ended (or stood at the deadline), and whether all ended."""
    deadline = time.monotonic() + timeout
    latest = {row["id"]: row for row in sweeps}
    while True:
        pending = [sweep_id for sweep_id, row in latest.items() if row.get("state") not in FINISHED]
        if not pending:
            return list(latest.values()), True
        if time.monotonic() >= deadline:
            return list(latest.values()), False
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        for sweep_id in pending:
            seen = client.get(f"/sweeps/{sweep_id}")
            if isinstance(seen, Mapping):
                # already_running is what the request found; keep it beside the sweep's state.
                latest[sweep_id] = {**seen, "already_running": latest[sweep_id].get("already_running")}
