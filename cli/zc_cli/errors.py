"""How the CLI fails: one line on stderr saying what was wrong and what to do, and an
exit code a script can branch on."""

from __future__ import annotations

from typing import NoReturn

import typer

EXIT_API_ERROR = 1  # the api answered with an error (4xx, or 5xx), or a check failed
EXIT_USAGE = 2  # the command line itself was wrong (also click's own code)
EXIT_UNREACHABLE = 3  # no answer from the api

PROG = "zerocloud-cli"


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"{PROG}: {message}", err=True)
    raise typer.Exit(code)
