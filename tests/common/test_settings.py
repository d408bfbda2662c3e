"""Settings: config.yml below the environment, and a process that stops with one clear
line per bad setting instead of a traceback."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from zc_common.settings import (
    ApiSettings,
    IngestorSettings,
    NotifierSettings,
    ReaperSettings,
    ZeroCloudSettings,
    load_settings,
)

TOKEN = secrets.token_hex(32)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No ZC_* variable of the developer's shell leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("ZC_"):
            monkeypatch.delenv(name)
    yield monkeypatch


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.yml"
    monkeypatch.setenv("ZC_CONFIG", str(path))
    return path


def stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_config_file_values_are_used(config_file: Path) -> None:
    config_file.write_text("amqp_url: amqp://mq.internal:5672/\nhttp_port: 9001\nlog_level: DEBUG\n")

    settings = load_settings(ZeroCloudSettings, "scheduler")

    assert settings.amqp_url == "amqp://mq.internal:5672/"
    assert settings.http_port == 9001
    assert settings.log_level == "DEBUG"


def test_environment_overrides_config_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file.write_text("amqp_url: amqp://from-file:5672/\nhttp_port: 9001\n")
    monkeypatch.setenv("ZC_HTTP_PORT", "9002")

    settings = load_settings(ZeroCloudSettings, "scheduler")

    assert settings.http_port == 9002
    assert settings.amqp_url == "amqp://from-file:5672/"


def test_explicit_arguments_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://from-env:5672/")

    settings = load_settings(ZeroCloudSettings, "scheduler", amqp_url="memory://")

    assert settings.amqp_url == "memory://"


def test_missing_required_setting_stops_with_one_line_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        load_settings(ZeroCloudSettings, "scheduler")

    assert stopped.value.code == 2
    [line] = stderr_lines(capsys)
    assert line.startswith("zerocloud-scheduler: ")
    assert "ZC_AMQP_URL" in line
    assert "missing" in line


def test_every_missing_setting_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        load_settings(ApiSettings, "api")

    assert stopped.value.code == 2
    text = "\n".join(stderr_lines(capsys))
    for name in ("ZC_AMQP_URL", "ZC_DATABASE_URL", "ZC_INGESTOR_TOKEN", "ZC_NOTIFIER_TOKEN", "ZC_REAPER_TOKEN"):
        assert name in text
    assert "Traceback" not in text


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("ZC_HTTP_PORT", "99999", "less than or equal to 65535"),
        ("ZC_HTTP_PORT", "eighty", "valid integer"),
        ("ZC_AMQP_URL", "http://mq:5672/", "must start with amqp://"),
        ("ZC_BUS", "kafka", "'rabbitmq' or 'memory'"),
        ("ZC_LOG_LEVEL", "LOUD", "DEBUG"),
    ],
)
def test_invalid_value_is_named_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str, why: str
) -> None:
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")
    monkeypatch.setenv(name, value)

    with pytest.raises(SystemExit) as stopped:
        load_settings(ZeroCloudSettings, "scheduler")

    assert stopped.value.code == 2
    [line] = stderr_lines(capsys)
    assert f"setting {name} is invalid" in line
    assert why in line


def test_database_must_be_postgresql(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")
    set_service_tokens(monkeypatch)
    monkeypatch.setenv("ZC_DATABASE_URL", "sqlite:///zerocloud.db")

    with pytest.raises(SystemExit):
        load_settings(ApiSettings, "api")

    [line] = stderr_lines(capsys)
    assert "ZC_DATABASE_URL" in line and "postgresql://" in line


def set_service_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    for service in ("INGESTOR", "NOTIFIER", "REAPER"):
        monkeypatch.setenv(f"ZC_{service}_TOKEN", secrets.token_hex(32))


SHIPPED_PLACEHOLDERS = [
    "change-me-to-a-long-random-service-token",  # what deploy/ shipped: 41 characters
    "changeme",
    "s" * 48,  # long, one character
    "zc-test-service-token-" + "s" * 24,
    "abcdefghijklmnopqrstuvwxyz0123456789",  # a keyboard walk
    secrets.token_hex(12),  # random, but 96 bits
]
# Stable test ids: every pytest-xdist worker must collect the same names.
PLACEHOLDER_IDS = ["shipped", "changeme", "one-character", "test-token", "keyboard-walk", "random-96-bits"]


@pytest.mark.parametrize("value", SHIPPED_PLACEHOLDERS, ids=PLACEHOLDER_IDS)
@pytest.mark.parametrize("name", ["ZC_INGESTOR_TOKEN", "ZC_NOTIFIER_TOKEN", "ZC_REAPER_TOKEN", "ZC_BOOTSTRAP_ADMIN_TOKEN"])
def test_the_api_refuses_to_start_with_a_placeholder_or_guessable_credential(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str
) -> None:
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")
    monkeypatch.setenv("ZC_DATABASE_URL", "postgresql://zerocloud@db/zerocloud")
    set_service_tokens(monkeypatch)
    monkeypatch.setenv(name, value)

    with pytest.raises(SystemExit) as stopped:
        load_settings(ApiSettings, "api")

    assert stopped.value.code == 2
    [line] = stderr_lines(capsys)
    assert f"setting {name} is invalid" in line and "openssl rand" in line


@pytest.mark.parametrize("value", SHIPPED_PLACEHOLDERS, ids=PLACEHOLDER_IDS)
@pytest.mark.parametrize(("cls", "service"), [(IngestorSettings, "ingestor"), (NotifierSettings, "notifier"),
                                               (ReaperSettings, "reaper")])
def test_no_service_starts_with_a_placeholder_credential(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str,
    cls: type[ZeroCloudSettings], service: str,
) -> None:
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")
    monkeypatch.setenv("ZC_API_URL", "http://api:8010")
    monkeypatch.setenv("ZC_SERVICE_TOKEN", value)

    with pytest.raises(SystemExit):
        load_settings(cls, service)

    [line] = stderr_lines(capsys)
    assert "setting ZC_SERVICE_TOKEN is invalid" in line


def test_one_credential_cannot_serve_two_services(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")
    monkeypatch.setenv("ZC_DATABASE_URL", "postgresql://zerocloud@db/zerocloud")
    set_service_tokens(monkeypatch)
    monkeypatch.setenv("ZC_REAPER_TOKEN", TOKEN)
    monkeypatch.setenv("ZC_NOTIFIER_TOKEN", TOKEN)

    with pytest.raises(SystemExit):
        load_settings(ApiSettings, "api")

    [line] = stderr_lines(capsys)
    assert "ZC_REAPER_TOKEN is invalid" in line and "must all differ" in line


def test_the_internal_listener_is_never_the_public_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")
    monkeypatch.setenv("ZC_DATABASE_URL", "postgresql://zerocloud@db/zerocloud")
    set_service_tokens(monkeypatch)
    monkeypatch.setenv("ZC_HTTP_PORT", "8000")
    monkeypatch.setenv("ZC_INTERNAL_PORT", "8000")

    with pytest.raises(SystemExit):
        load_settings(ApiSettings, "api")

    [line] = stderr_lines(capsys)
    assert "ZC_INTERNAL_PORT is invalid" in line


@pytest.mark.parametrize("name", ["ZC_GITHUB_CLIENT_SECRET", "ZC_SMTP_PASSWORD"])
def test_issued_secrets_are_refused_when_they_are_placeholders(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    cls = ApiSettings if "GITHUB" in name else NotifierSettings
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")
    monkeypatch.setenv("ZC_DATABASE_URL", "postgresql://zerocloud@db/zerocloud")
    monkeypatch.setenv("ZC_API_URL", "http://api:8010")
    monkeypatch.setenv("ZC_SERVICE_TOKEN", TOKEN)
    set_service_tokens(monkeypatch)
    monkeypatch.setenv("ZC_GITHUB_CLIENT_ID", "Iv1.0123")
    monkeypatch.setenv("ZC_SMTP_USERNAME", "zerocloud")
    monkeypatch.setenv(name, "change-me")

    with pytest.raises(SystemExit):
        load_settings(cls, "api")

    assert any(f"setting {name} is invalid" in line for line in stderr_lines(capsys))


def test_event_queue_urls_are_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")
    monkeypatch.setenv("ZC_API_URL", "http://api:8000")
    monkeypatch.setenv("ZC_SERVICE_TOKEN", TOKEN)
    monkeypatch.setenv(
        "ZC_EVENT_QUEUE_URLS",
        " https://sqs.us-east-1.amazonaws.com/111111111111/zc-events ,"
        "https://sqs.eu-west-1.amazonaws.com/111111111111/zc-events,,",
    )

    settings = load_settings(IngestorSettings, "ingestor")

    assert settings.event_queue_urls == [
        "https://sqs.us-east-1.amazonaws.com/111111111111/zc-events",
        "https://sqs.eu-west-1.amazonaws.com/111111111111/zc-events",
    ]


def test_event_queue_urls_can_be_a_yaml_list(config_file: Path) -> None:
    config_file.write_text(
        "amqp_url: amqp://mq:5672/\napi_url: http://api:8000\n"
        f"service_token: {TOKEN}\n"
        "event_queue_urls:\n  - https://sqs.us-east-1.amazonaws.com/111111111111/zc-events\n"
    )

    settings = load_settings(IngestorSettings, "ingestor")

    assert settings.event_queue_urls == ["https://sqs.us-east-1.amazonaws.com/111111111111/zc-events"]


def test_config_file_that_does_not_exist_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZC_CONFIG", str(tmp_path / "nowhere.yml"))
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")

    with pytest.raises(SystemExit) as stopped:
        load_settings(ZeroCloudSettings, "scheduler")

    assert stopped.value.code == 2
    [line] = stderr_lines(capsys)
    assert "ZC_CONFIG" in line and "nowhere.yml" in line


@pytest.mark.parametrize(
    "content", ["amqp_url: [\n", "- just\n- a list\n"], ids=["broken-yaml", "not-a-mapping"]
)
def test_unreadable_config_file_stops_with_one_line_naming_it(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    config_file.write_text(content)
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")

    with pytest.raises(SystemExit) as stopped:
        load_settings(ZeroCloudSettings, "scheduler")

    assert stopped.value.code == 2
    [line] = stderr_lines(capsys)
    assert "ZC_CONFIG" in line and str(config_file) in line


def test_empty_config_file_is_fine(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file.write_text("")
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://mq:5672/")

    assert load_settings(ZeroCloudSettings, "scheduler").amqp_url == "amqp://mq:5672/"
