"""`zerocloud-cli sweep` against a real api: it prints each sweep's id and state, answers
the sweep in progress instead of a second one, passes the api's refusals on, and with
--wait follows the sweeps (reported here as the ingestor would) to their counts."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Cli, RunningApi
from tests.support.credentials import bearer
from zc_cli import sweep as sweep_command


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sweep_command, "POLL_SECONDS", 0.05)


def report(api: RunningApi, sweep_id: int, **body: Any) -> None:
    """What the ingestor tells the api, on the internal listener with its own credential."""
    response = httpx.post(f"{api.internal_url}/internal/v1/sweeps/{sweep_id}/report", json=body, headers=bearer("ingestor"))
    assert response.status_code == 204, response.text


def start(reports: list[tuple[int, dict[str, Any]]], api: RunningApi) -> threading.Thread:
    """Send ``reports`` (sweep id, report) a moment after the command started waiting."""

    def send() -> None:
        time.sleep(0.3)
        for sweep_id, body in reports:
            report(api, sweep_id, **body)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_sweep_prints_the_sweep_id_and_state(cli: Cli, onboarded: dict[str, int]) -> None:
    result = cli("sweep", "--cloud-account", str(onboarded["cloud_account"]))

    assert result.exit_code == 0, result.stderr
    [header, row, *_] = result.stdout.splitlines()
    assert header.split()[:3] == ["ID", "CLOUD", "ACCOUNT"]
    assert row.split()[:5] == ["1", str(onboarded["cloud_account"]), "us-east-1", "requested", "no"]
    assert "zerocloud-cli get sweep 1" in result.stdout


def test_a_second_sweep_answers_the_one_in_progress(cli: Cli, onboarded: dict[str, int]) -> None:
    first = cli.json("sweep")
    second = cli.json("sweep", "--cloud-account", str(onboarded["cloud_account"]), "--region", "us-east-1")

    assert [s["id"] for s in first["data"]] == [s["id"] for s in second["data"]]
    assert (first["data"][0]["already_running"], second["data"][0]["already_running"]) == (False, True)


def test_a_region_the_cloud_account_does_not_watch_is_refused(cli: Cli, onboarded: dict[str, int]) -> None:
    result = cli("sweep", "--cloud-account", str(onboarded["cloud_account"]), "--region", "eu-west-1")

    assert result.exit_code == 1
    assert "HTTP 422" in result.stderr and "eu-west-1" in result.stderr and "us-east-1" in result.stderr


def test_an_unknown_cloud_account_is_not_found(cli: Cli, onboarded: dict[str, int]) -> None:
    result = cli("sweep", "--cloud-account", str(onboarded["cloud_account"] + 100))

    assert result.exit_code == 1 and "HTTP 404" in result.stderr


def test_wait_follows_the_sweep_to_its_counts(cli: Cli, api: RunningApi, onboarded: dict[str, int]) -> None:
    [requested] = cli.json("sweep")["data"]
    report(api, requested["id"], state="running")
    thread = start([(requested["id"], {"state": "done", "instances_seen": 7, "instances_gone": 2})], api)

    result = cli("sweep", "--wait")
    thread.join(timeout=10)

    assert result.exit_code == 0, result.stderr
    [_, row] = result.stdout.splitlines()
    assert row.split() == [str(requested["id"]), str(onboarded["cloud_account"]), "us-east-1", "done", "yes", "7", "2", "-"]


def test_wait_with_json_prints_the_finished_sweeps(cli: Cli, api: RunningApi, onboarded: dict[str, int]) -> None:
    [requested] = cli.json("sweep")["data"]
    thread = start([(requested["id"], {"state": "done", "instances_seen": 3, "instances_gone": 0})], api)

    answer = cli.json("sweep", "--wait")
    thread.join(timeout=10)

    [done] = answer["data"]
    assert (done["id"], done["state"], done["instances_seen"], done["instances_gone"]) == (requested["id"], "done", 3, 0)


def test_wait_exits_1_when_a_sweep_failed(cli: Cli, api: RunningApi, onboarded: dict[str, int]) -> None:
    [requested] = cli.json("sweep")["data"]
    thread = start([(requested["id"], {"state": "failed", "error": "us-east-1: AccessDenied"})], api)

    result = cli("sweep", "--wait")
    thread.join(timeout=10)

    assert result.exit_code == 1
    assert "AccessDenied" in result.stdout and "some sweeps failed" in result.stderr


def test_wait_gives_up_after_the_timeout(cli: Cli, onboarded: dict[str, int]) -> None:
    result = cli("sweep", "--wait", "--timeout", "1")

    assert result.exit_code == 1
    assert "requested" in result.stdout and "not finished after 1 s" in result.stderr


def test_get_sweep_shows_its_state(cli: Cli, api: RunningApi, onboarded: dict[str, int]) -> None:
    [requested] = cli.json("sweep")["data"]
    report(api, requested["id"], state="done", instances_seen=5, instances_gone=1)

    shown = cli.json("get", "sweep", str(requested["id"]))

    assert (shown["state"], shown["instances_seen"], shown["instances_gone"]) == ("done", 5, 1)
