"""docker-compose.yml and the Dockerfile, held to the code: the file is valid for a real
compose implementation, every service runs a real console script and subcommand,
listens where its settings say, is health-checked on a route its app really has, and
starts only after both migrations."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from zc_common.settings import MigrationSettings

from tests.deploy.codebase import (
    ROOT,
    SERVICES,
    default_port,
    migration_commands,
    package_dirs,
    rejection,
    resolve_settings,
    serves,
    setting_names,
    shutdown_seconds,
)

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
CONFIG_TARGET = "/etc/zerocloud/config.yml"
HEALTH_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):(\d+)(/[\w/-]*)")


def compose_config(credentials: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``docker-compose config`` with these variables (what scripts/compose-credentials.sh
    writes to .env) and no .env of the checkout's own."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (`make tools` installs it from the distribution)")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ZC_")}
    with tempfile.NamedTemporaryFile("w", suffix=".env") as empty:
        return subprocess.run(
            [binary, "-f", str(COMPOSE_FILE), "--env-file", empty.name, "config"], cwd=ROOT, capture_output=True,
            text=True, timeout=60, env={**environment, **credentials},
        )


CREDENTIALS = {f"ZC_{service}_TOKEN": secrets.token_hex(32) for service in ("INGESTOR", "NOTIFIER", "REAPER")}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The file as docker-compose resolves it (anchors, env_file, defaults)."""
    result = compose_config(CREDENTIALS)
    assert result.returncode == 0, f"docker-compose config failed:\n{result.stderr}"
    resolved: dict[str, Any] = yaml.safe_load(result.stdout)
    return resolved


def service_environment(service: dict[str, Any]) -> dict[str, str | None]:
    """The service's environment, with ZC_CONFIG pointing at the file the container
    would see there (the host side of its read-only mount)."""
    environment = dict(service.get("environment") or {})
    config = environment.get("ZC_CONFIG")
    if config is not None:
        mounts = {target: source for source, target, *_ in (v.split(":") for v in service.get("volumes", []))}
        assert config in mounts, f"ZC_CONFIG={config} is not mounted into the container"
        environment["ZC_CONFIG"] = mounts[config]
    return environment


def settings_of(compose: dict[str, Any], name: str) -> Any:
    return resolve_settings(name, service_environment(compose["services"][name]))


def seconds(duration: str | int) -> float:
    """A compose duration ("90s", "1m30s", "2m") in seconds."""
    if isinstance(duration, int):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_file_is_valid(compose: dict[str, Any]) -> None:
    assert set(SERVICES) <= set(compose["services"])


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_its_own_console_script(compose: dict[str, Any], name: str) -> None:
    command = compose["services"][name]["command"]

    assert command[0] == f"zerocloud-{name}"
    assert rejection(command) is None, rejection(command)


@pytest.mark.parametrize("name", SERVICES)
def test_service_publishes_the_port_its_settings_resolve_to(compose: dict[str, Any], name: str) -> None:
    settings = settings_of(compose, name)
    ports = compose["services"][name].get("ports", [])

    targets = {int(p["target"]) if isinstance(p, dict) else int(str(p).split(":")[-1].split("/")[0]) for p in ports}
    assert targets == {settings.http_port}
    assert settings.http_port == default_port(name), "config.yml or the environment moved the service's port"


@pytest.mark.parametrize("name", SERVICES)
def test_healthcheck_gets_a_real_healthz_on_the_service_port(compose: dict[str, Any], name: str) -> None:
    settings = settings_of(compose, name)
    check = compose["services"][name]["healthcheck"]

    match = HEALTH_URL.search(" ".join(check["test"]))
    assert match, f"no health URL in {check['test']}"
    port, path = int(match.group(1)), match.group(2)
    assert check["test"][0] == "CMD"
    assert (port, path) == (settings.http_port, "/healthz")
    assert serves(name, settings, path)


def test_migrations_run_once_before_every_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    command = services["migrate"]["command"]
    assert command[:2] == ["sh", "-c"], "migrate runs its migrations in sequence through sh -c"
    steps = [tuple(shlex.split(step)) for step in command[2].split("&&")]

    for step in steps:
        assert rejection(step) is None, rejection(step)
    assert set(steps) == migration_commands() and len(steps) == len(set(steps))
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in SERVICES:
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully", name


def test_migrations_read_the_same_settings_as_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = service_environment(services["migrate"])

    with pytest.MonkeyPatch.context() as patch:
        # `zerocloud-api migrate` reads only the database: the job holds no service credential.
        patch.setitem(SERVICES, "api", MigrationSettings)
        api_migration = resolve_settings("api", migrate)
    assert api_migration.database_url == settings_of(compose, "api").database_url
    assert resolve_settings("scheduler", migrate).database_url == settings_of(compose, "scheduler").database_url
    assert not any(key.endswith("_TOKEN") for key in migrate), "the migration job holds no credential"


def test_config_yml_loads_through_every_settings_class(compose: dict[str, Any]) -> None:
    config_path = Path(service_environment(compose["services"]["api"])["ZC_CONFIG"] or "")
    config = yaml.safe_load(config_path.read_text())

    # A misspelt key would be ignored without a word (extra="ignore"): every key is a setting.
    assert set(config) <= setting_names(), set(config) - setting_names()
    assert "http_port" not in config, "one config.yml for five services: each keeps its own port"
    for name in SERVICES:
        assert settings_of(compose, name) is not None
    for secret in ("database_url", "amqp_url", "service_token", "ingestor_token", "notifier_token", "reaper_token"):
        assert secret not in config, f"{secret} belongs in secrets.env, not config.yml"


def test_config_yml_is_mounted_read_only_into_every_service(compose: dict[str, Any]) -> None:
    for name in ("migrate", *SERVICES):
        service = compose["services"][name]
        assert service["environment"]["ZC_CONFIG"] == CONFIG_TARGET
        assert any(v.split(":")[1:] == [CONFIG_TARGET, "ro"] for v in service["volumes"]), name


def test_services_restart_and_get_time_to_drain(compose: dict[str, Any]) -> None:
    for name in SERVICES:
        service = compose["services"][name]
        assert service["restart"] in ("always", "unless-stopped", "on-failure"), name
        assert seconds(service["stop_grace_period"]) > shutdown_seconds(), name


def test_infrastructure_is_health_checked_before_use(compose: dict[str, Any]) -> None:
    services = compose["services"]

    assert services["postgres"]["healthcheck"]["test"][1] == "pg_isready"
    assert services["rabbitmq"]["healthcheck"]["test"][1:3] == ["rabbitmq-diagnostics", "-q"]
    for name in ("api", "scheduler"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in SERVICES:
        assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"


def test_notifier_mails_the_catcher(compose: dict[str, Any]) -> None:
    settings = settings_of(compose, "notifier")

    assert settings.delivery == "smtp"
    assert settings.smtp_host in compose["services"]
    assert compose["services"]["notifier"]["depends_on"][settings.smtp_host]["condition"] == "service_healthy"


def test_callers_find_the_api_on_its_internal_listener_with_their_own_credential(compose: dict[str, Any]) -> None:
    api = settings_of(compose, "api")
    for name in ("ingestor", "notifier", "reaper"):
        settings = settings_of(compose, name)
        assert settings.api_url == f"http://api:{api.internal_port}"
        assert settings.service_token == getattr(api, f"{name}_token"), "the credential the api holds for it"
        others = {value for key, value in CREDENTIALS.items() if key != f"ZC_{name.upper()}_TOKEN"}
        assert not others & set(compose["services"][name]["environment"].values()), f"{name} holds another's"
        assert compose["services"][name]["depends_on"]["api"]["condition"] == "service_healthy"


def test_the_internal_listener_is_never_published(compose: dict[str, Any]) -> None:
    api = settings_of(compose, "api")
    published = {str(port.get("published")) for port in compose["services"]["api"]["ports"]}

    assert api.internal_port != api.http_port and str(api.internal_port) not in published
    assert all(str(api.internal_port) not in str(s.get("ports", "")) for s in compose["services"].values())


def test_compose_refuses_to_start_without_the_service_credentials() -> None:
    result = compose_config({})

    assert result.returncode != 0
    assert "scripts/compose-credentials.sh" in result.stderr


# --- the image ---------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.strip().partition(" ") for line in joined.splitlines() if line.strip())
    ]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile_instructions()
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_image_runs_as_a_fixed_non_root_user() -> None:
    users = [args for word, args in final_stage() if word == "USER"]

    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"


def test_image_checks_healthz() -> None:
    checks = [args for word, args in final_stage() if word == "HEALTHCHECK"]

    assert len(checks) == 1 and "/healthz" in checks[0] and "urllib" in checks[0]


def test_image_installs_the_pinned_requirements_then_every_package_without_deps() -> None:
    runs = [args for word, args in dockerfile_instructions() if word == "RUN"]
    pinned = [i for i, run in enumerate(runs) if re.search(r"pip install --no-cache-dir -r \S*requirements/runtime\.txt", run)]
    packages = [i for i, run in enumerate(runs) if "pip install" in run and "--no-deps" in run]

    assert pinned and packages and pinned[0] < packages[0]
    install = runs[packages[0]]
    assert " -e " not in install and "--editable" not in install
    for folder in sorted(p.relative_to(ROOT).as_posix() for p in package_dirs()):
        assert re.search(rf"/{re.escape(folder)}(\s|$)", install), f"{folder} is not installed in the image"


def test_image_base_ports_and_default_command() -> None:
    instructions = dockerfile_instructions()
    froms = [args for word, args in instructions if word == "FROM"]
    exposed = " ".join(args for word, args in final_stage() if word == "EXPOSE")
    commands = [args for word, args in final_stage() if word == "CMD"]

    assert all(base.split()[0] == "python:3.11-slim" for base in froms)
    ports: set[int] = set()
    for item in exposed.split():
        low, _, high = item.split("/")[0].partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    assert {default_port(name) for name in SERVICES} <= ports
    assert yaml.safe_load(commands[-1]) == ["zerocloud-api", "serve"]


def test_image_context_leaves_out_local_state() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}

    assert {".git", ".venv", ".zerocloud", "tests"} <= ignored
