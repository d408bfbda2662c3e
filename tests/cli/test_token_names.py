"""Two credentials, two names: a person's API token is ZC_API_TOKEN and only the CLI reads
it; a service's own credential is ZC_SERVICE_TOKEN and only the services (and the CLI's
foreground poller, which runs the ingestor) read it. A file that mixes them fails here."""

from __future__ import annotations

import subprocess
from pathlib import Path

from zc_common.settings import (
    ApiCallerSettings,
    ApiSettings,
    IngestorSettings,
    NotifierSettings,
    ReaperSettings,
)

from zc_cli.client import API_TOKEN_ENV

ROOT = Path(__file__).resolve().parents[2]
USER_TOKEN = "ZC_API_TOKEN"
SERVICE_TOKEN = "ZC_SERVICE_TOKEN"

# Where the services are configured and run: never a person's token there.
SERVICE_SIDE = ("libs", "services", "deploy", "docker-compose.yml", "Makefile", "Dockerfile", "scripts")
# What a person reads about the services' credential (each names the split on purpose).
EXPLAINS_BOTH = {"scripts/config_reference.py", "services/api/zc_api/web/templates/token_created.html"}


def _files_naming(text: str) -> set[str]:
    found = subprocess.run(["git", "grep", "-l", "-F", text], cwd=ROOT, capture_output=True, text=True, check=False)
    return set(found.stdout.split())


def test_the_cli_reads_the_users_token_by_its_own_name() -> None:
    assert API_TOKEN_ENV == USER_TOKEN


def test_no_service_setting_is_read_from_the_users_token_name() -> None:
    for settings in (ApiSettings, IngestorSettings, NotifierSettings, ReaperSettings):
        assert "api_token" not in settings.model_fields, settings.__name__
    assert "service_token" in ApiCallerSettings.model_fields


def test_the_services_side_never_names_the_users_token() -> None:
    mixed = {path for path in _files_naming(USER_TOKEN) if path.startswith(SERVICE_SIDE)} - EXPLAINS_BOTH
    assert mixed == set(), f"{USER_TOKEN} is a person's token, for zerocloud-cli only: {sorted(mixed)}"


def test_the_cli_names_the_service_token_only_for_its_foreground_poller() -> None:
    in_cli = {path for path in _files_naming(SERVICE_TOKEN) if path.startswith("cli/")}
    assert in_cli <= {"cli/zc_cli/main.py"}, sorted(in_cli)
    main = (ROOT / "cli" / "zc_cli" / "main.py").read_text()
    assert main.count(SERVICE_TOKEN) == 1 and "poll_cloudevent_queue" in main
