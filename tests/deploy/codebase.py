"""What the code says, for the deployment tests to hold manifests to: the console scripts
and the command lines they accept, each service's settings class and what it resolves
to in a given environment, the routes of each service's app, and how long a service
takes to shut down."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import io
import os
import tomllib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from zc_common.service import SHUTDOWN_GRACE
from zc_common.settings import (
    ApiSettings,
    IngestorSettings,
    NotifierSettings,
    ReaperSettings,
    SchedulerSettings,
    ZeroCloudSettings,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[2]

# The five services: a service is `zerocloud-<name>` and reads `<Name>Settings`.
SERVICES: dict[str, type[ZeroCloudSettings]] = {
    "api": ApiSettings,
    "ingestor": IngestorSettings,
    "scheduler": SchedulerSettings,
    "notifier": NotifierSettings,
    "reaper": ReaperSettings,
}


def package_dirs() -> list[Path]:
    """Every installable package of the repository: libs/*, services/*, cli."""
    found = [*ROOT.glob("libs/*/pyproject.toml"), *ROOT.glob("services/*/pyproject.toml"), ROOT / "cli/pyproject.toml"]
    return sorted(path.parent for path in found if path.is_file())


@cache
def console_scripts() -> dict[str, str]:
    """Console script name -> "module:attribute", from every package's pyproject.toml."""
    scripts: dict[str, str] = {}
    for folder in package_dirs():
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        scripts.update(project.get("scripts", {}))
    return scripts


def rejection(argv: Sequence[str]) -> str | None:
    """Why ``argv`` is not a command line our console scripts accept, or None if it is.
    Nothing is run: Typer apps and argparse entry points are asked for ``--help`` of the
    given subcommand (an unknown one exits non-zero); an entry point without parameters
    takes no arguments at all."""
    script, *args = argv
    if script not in console_scripts():
        return f"{script} is not a console script of any package (have: {sorted(console_scripts())})"
    module, _, attribute = console_scripts()[script].partition(":")
    entry = getattr(importlib.import_module(module), attribute)
    if isinstance(entry, typer.Typer):
        result = CliRunner().invoke(entry, [*args, "--help"], prog_name=script)
        return None if result.exit_code == 0 else f"{script} refuses {args}: {result.output.strip()}"
    if not inspect.signature(entry).parameters:
        return None if not args else f"{script} takes no arguments, given {args}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            entry([*args, "--help"])
        except SystemExit as stop:
            return None if stop.code in (0, None) else f"{script} refuses {args}: {out.getvalue().strip()}"
    return f"{script} {args} --help did not stop: not an argparse entry point?"


def migration_commands() -> set[tuple[str, ...]]:
    """Every `<script> migrate` the code has: each must run before the services start."""
    return {(script, "migrate") for script in console_scripts() if rejection([script, "migrate"]) is None}


def resolve_settings(service: str, environment: Mapping[str, str | None]) -> ZeroCloudSettings:
    """The service's settings exactly as its process would load them with this
    environment (ZC_CONFIG included), none of the test runner's ZC_* variables leaking in."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("ZC_"):
                patch.delenv(name)
        for name, value in environment.items():
            if value is not None:
                patch.setenv(name, value)
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                return load_settings(SERVICES[service], service)
        except SystemExit:
            raise AssertionError(f"{service} would not start: {err.getvalue().strip()}") from None


def default_port(service: str) -> int:
    return int(SERVICES[service].model_fields["http_port"].default)


def serves(service: str, settings: ZeroCloudSettings, path: str, *, internal: bool = False) -> bool:
    """Whether the service's app (the api's internal one when ``internal``) has a GET route
    at ``path``: the app is built and asked, its lifespan never started (a handler that
    needs it fails, but not with a 404)."""
    main = importlib.import_module(f"zc_{service}.main")
    app = main.create_app(settings)
    if internal:
        app = main.internal_app(app)

    async def status() -> int:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
            return (await client.get(path)).status_code

    # A loop of its own in a thread of its own: the test session's loop is left alone.
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, status()).result() not in (404, 405)


def setting_names() -> set[str]:
    """Every setting any service reads (config.yml key; ZC_<KEY> upper-cased)."""
    return {name for cls in SERVICES.values() for name in cls.model_fields}


def shutdown_seconds() -> float:
    """How long a stopping service may take before it exits: uvicorn's HTTP drain, then in
    its lifespan the work in hand (a bus batch, a poll, a batch of timers), then flushing
    what that work produced (the api's outbox): each bounded by SHUTDOWN_GRACE
    (zc_common.service.serve, zc_common.bus.base)."""
    return 3 * SHUTDOWN_GRACE
