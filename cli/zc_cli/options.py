"""Options every command shares, as Annotated aliases, and the account a command is about."""

from __future__ import annotations

from typing import Annotated

import typer

from zc_cli.client import ApiClient
from zc_cli.errors import EXIT_USAGE, fail

CONNECTION = "Connection"

ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        metavar="URL",
        help="The api's base URL. Default: ZC_API_URL, else the api you logged in to, else http://127.0.0.1:8000.",
        show_default=False,
        rich_help_panel=CONNECTION,
    ),
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        help="API token. Default: ZC_API_TOKEN, else the token stored by `zerocloud-cli login`.",
        show_default=False,
        rich_help_panel=CONNECTION,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the api's JSON answer instead of a table.")]
AccountId = Annotated[
    int | None,
    typer.Option(
        "--accountID",
        "--account-id",
        metavar="ID",
        help="The ZeroCloud account (its numeric id). Default: the account you belong to.",
        show_default=False,
    ),
]
Limit = Annotated[int, typer.Option("--limit", metavar="N", min=1, max=500, help="At most this many rows.")]
Offset = Annotated[
    int, typer.Option("--offset", metavar="N", min=0, help="Skip this many rows (the next page).")
]
Cursor = Annotated[
    str | None,
    typer.Option(
        "--cursor", metavar="CURSOR", show_default=False,
        help="Start at the page this cursor names (the previous page's next_cursor, same filters): "
        "as fast at any depth, where a deep --offset slows down.",
    ),
]
Payload = Annotated[
    str | None,
    typer.Option(
        "--payload",
        metavar="JSON",
        help="The request body as a JSON object; the other options override its keys.",
        show_default=False,
    ),
]


def account_of_caller(client: ApiClient, account_id: int | None) -> int:
    """The account named, else the caller's own."""
    if account_id is not None:
        return account_id
    me = client.get("/users/me")
    mine = me.get("account_id") if isinstance(me, dict) else None
    if not isinstance(mine, int):
        fail(
            "you do not belong to an account yet: give --accountID, or create one with "
            "`zerocloud-cli create account --payload '{\"name\": ...}'`",
            EXIT_USAGE,
        )
    return mine
