"""What the CLI decides before (or instead of) talking to the api: bad JSON, no api, help,
and how poll_cloudevent_queue builds the ingestor's settings."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from tests.cli.conftest import SEED_ACCOUNT, Cli
from tests.support.credentials import INGESTOR_TOKEN


def test_invalid_payload_json_exits_2_saying_where(offline_cli: Cli) -> None:
    result = offline_cli("create", "account", "--payload", '{"name": "BigDB",}')

    assert result.exit_code == 2
    assert "--payload is not valid JSON" in result.stderr
    assert "line 1, column 18" in result.stderr
    assert '{"name": "BigDB",}' in result.stderr  # the line, with a caret under the spot
    assert "no comma before a closing" in result.stderr


def test_single_quoted_payload_gets_a_hint(offline_cli: Cli) -> None:
    result = offline_cli("create", "account", "--payload", "{'name': 'BigDB'}")

    assert result.exit_code == 2
    assert "double quotes" in result.stderr


def test_payload_must_be_an_object(offline_cli: Cli) -> None:
    result = offline_cli("create", "user", "--accountID", "1", "--payload", '["alice@bigdb.com"]')

    assert result.exit_code == 2
    assert "--payload must be a JSON object" in result.stderr


def test_unreachable_api_exits_3_naming_the_url(offline_cli: Cli) -> None:
    result = offline_cli("create", "account", "--payload", SEED_ACCOUNT)

    assert result.exit_code == 3
    assert f"could not reach the ZeroCloud api at {offline_cli.api_url}" in result.stderr
    assert result.stdout == ""


def test_api_url_option_beats_the_environment(offline_cli: Cli) -> None:
    result = offline_cli("list", "accounts", "--api-url", "http://127.0.0.1:9/")

    assert result.exit_code == 3
    assert "at http://127.0.0.1:9:" in result.stderr


def test_api_url_must_be_http(offline_cli: Cli) -> None:
    result = offline_cli("list", "accounts", "--api-url", "127.0.0.1:8000")

    assert result.exit_code == 2
    assert "not an http:// or https:// URL" in result.stderr


def test_lease_filters_are_checked_before_asking(offline_cli: Cli) -> None:
    assert offline_cli("list", "leases", "--status", "alive").exit_code == 2
    result = offline_cli("list", "leases", "--expires-before", "tomorrow")
    assert result.exit_code == 2
    assert "ISO 8601" in result.stderr


def test_cloudevent_flags_need_an_instance_and_an_account(offline_cli: Cli) -> None:
    result = offline_cli("create", "cloudevent", "--instance-id", "i-0123456789abcdef0")

    assert result.exit_code == 2
    assert "--instance-id and --account" in result.stderr


def test_cloudevent_flags_are_validated_like_the_api_would(offline_cli: Cli) -> None:
    result = offline_cli("create", "cloudevent", "--instance-id", "i-0123456789abcdef0", "--account", "1234")

    assert result.exit_code == 2
    assert "12-digit AWS account id" in result.stderr


def test_cloudevent_that_is_not_json_exits_2(offline_cli: Cli) -> None:
    result = offline_cli("create", "cloudevent", "--file", "-", input="detail-type: nope\n")

    assert result.exit_code == 2
    assert "the event is not valid JSON" in result.stderr


@pytest.mark.parametrize("name", ["poll_cloudevent_queue", "poll-cloudevent-queue"])
def test_poll_cloudevent_queue_help_lists_its_parameters(offline_cli: Cli, name: str) -> None:
    result = offline_cli(name, "--help")

    assert result.exit_code == 0
    for option in ("--queue-url", "--api-url", "--service-token", "--aws-endpoint-url", "--amqp-url",
                   "--wait-seconds", "--once"):
        assert option in result.stdout
    assert "long-poll" in result.stdout  # says what the command does


def test_root_help_lists_the_poller_with_underscores(offline_cli: Cli) -> None:
    result = offline_cli("--help")

    assert "poll_cloudevent_queue" in result.stdout
    assert "poll-cloudevent-queue" not in result.stdout  # the alias is accepted, not advertised


def test_poll_cloudevent_queue_runs_the_ingestors_poller_with_its_options(
    offline_cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, bool]] = []
    fake = types.ModuleType("zc_ingestor.main")
    fake.run_poller = lambda settings, *, once=False: calls.append((settings, once))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "zc_ingestor.main", fake)
    monkeypatch.setenv("ZC_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

    result = offline_cli(
        "poll_cloudevent_queue",
        "--queue-url", "http://127.0.0.1:5000/123456789012/events-a",
        "--queue-url", "http://127.0.0.1:5000/123456789012/events-b",
        "--api-url", "http://api:8010", "--service-token", INGESTOR_TOKEN,
        "--aws-endpoint-url", "http://127.0.0.1:5000", "--wait-seconds", "1", "--once",
    )

    assert result.exit_code == 0, result.stderr
    [(settings, once)] = calls
    assert once is True
    assert settings.event_queue_urls == [
        "http://127.0.0.1:5000/123456789012/events-a",
        "http://127.0.0.1:5000/123456789012/events-b",
    ]
    assert (settings.api_url, settings.service_token) == ("http://api:8010", INGESTOR_TOKEN)
    assert settings.aws_endpoint_url == "http://127.0.0.1:5000"
    assert settings.amqp_url == "amqp://guest:guest@127.0.0.1:5672/"  # from the environment
    assert settings.poll_wait_seconds == 1


def test_poll_cloudevent_queue_without_settings_names_what_is_missing() -> None:
    result = Cli()("poll_cloudevent_queue", "--queue-url", "http://q/1/events")  # no ZC_API_* set

    assert result.exit_code == 2
    assert "ZC_SERVICE_TOKEN is missing" in result.stderr
    assert "ZC_AMQP_URL is missing" in result.stderr


def test_poll_cloudevent_queue_without_a_queue_exits_2(offline_cli: Cli) -> None:
    result = offline_cli(
        "poll_cloudevent_queue", "--api-url", "http://api:8010", "--service-token", INGESTOR_TOKEN,
        "--amqp-url", "amqp://127.0.0.1/",
    )

    assert result.exit_code == 2
    assert "no queue to poll" in result.stderr
