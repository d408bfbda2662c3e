"""`zerocloud-api`: serve, migrate, create-admin."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from zc_common.logging import configure_logging
from zc_common.service import Listener
from zc_common.service import serve as serve_app
from zc_common.settings import ApiSettings, MigrationSettings, load_settings

from zc_api.database import create_engine, migrate, session_maker, transaction

app = typer.Typer(help="The ZeroCloud api service.", no_args_is_help=True)


@app.command()
def serve() -> None:
    """Serve the REST API, the web UI and the mailed links on ZC_HTTP_PORT, and the other
    services' routes and /metrics on ZC_INTERNAL_PORT (refuses an unmigrated database)."""
    from zc_api.main import create_app, internal_app

    settings = load_settings(ApiSettings, "api")
    app = create_app(settings)
    # The shared runner: JSON logs, a graceful SIGTERM that exits 0 like every service's.
    serve_app(app, settings, "api", also=[Listener(internal_app(app), settings.internal_host, settings.internal_port)])


@app.command("migrate")
def migrate_command() -> None:
    """Apply the database migrations (safe to run again)."""
    settings = load_settings(MigrationSettings, "api")
    configure_logging("api", settings.log_level)
    asyncio.run(migrate(settings.database_url))
    typer.echo("database migrated")


@app.command("create-admin")
def create_admin_command(
    email: str = typer.Option(..., help="The admin's email address."),
    as_json: bool = typer.Option(False, "--json", help="Print the admin and the token as JSON (for scripts)."),
) -> None:
    """Create an admin and print their API token (shown only this once)."""
    from zc_api.auth.bootstrap import create_admin

    settings = load_settings(ApiSettings, "api")

    async def create() -> dict[str, Any]:
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with transaction(session_maker(engine)) as session:
                user, token = await create_admin(session, email, token_name=TOKEN_NAME)
            return {"id": user.id, "email": user.email, "role": user.role, "account_id": user.account_id,
                    "token_name": TOKEN_NAME, "token": token}
        finally:
            await engine.dispose()

    created = asyncio.run(create())
    if as_json:
        # As `zerocloud-cli ... --json` prints: the object alone on stdout, indented.
        typer.echo(json.dumps(created, indent=2, ensure_ascii=False))
        return
    typer.echo(f"admin {created['email']} created; API token (shown once): {created['token']}")


TOKEN_NAME = "create-admin"
