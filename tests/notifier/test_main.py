"""The notifier's process: create_app on a given bus (the embedded sandbox's way), the
api reached over HTTP, /readyz reporting the bus and the mail server, and settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from zc_common.bus.memory import InProcessBus
from zc_common.messages import LeaseChange
from zc_common.settings import NotifierSettings, load_settings

from tests.notifier.factories import (
    OWNER,
    FakeApi,
    SmtpSink,
    lease_changed,
    notifier_settings,
)
from tests.support.credentials import NOTIFIER_TOKEN
from tests.support.ports import free_port
from tests.support.waiting import eventually
from zc_cli.local_server import serving
from zc_notifier.main import create_app


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notifier") as client:
            yield client


async def test_create_app_on_a_shared_bus_mails_through_the_api_over_http(
    fake_api: FakeApi, smtp_sink: SmtpSink
) -> None:
    bus = InProcessBus()
    async with serving(fake_api.app) as api_url:
        app = create_app(notifier_settings(smtp_sink, api_url=api_url), bus=bus)
        async with running(app):
            await bus.publish(lease_changed(LeaseChange.created))

            await eventually(lambda: len(smtp_sink.mails) == 1)
            assert smtp_sink.mails[0].to == OWNER
            await eventually(lambda: fake_api.requests["sent"] == 1)
            assert fake_api.requests == {"recipients": 1, "reserve": 1, "action_links": 1, "sent": 1}
    await bus.close()


async def test_readyz_checks_the_bus_and_that_the_smtp_server_answers(smtp_sink: SmtpSink) -> None:
    bus = InProcessBus()
    app = create_app(notifier_settings(smtp_sink), bus=bus)
    async with running(app) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"bus": True, "smtp": True}

        smtp_sink.stop()
        down = await client.get("/readyz")
        assert down.status_code == 503
        assert down.json()["checks"] == {"bus": True, "smtp": False}

        assert (await client.get("/healthz")).status_code == 200
    await bus.close()


async def test_readyz_reports_an_unreachable_ses_endpoint() -> None:
    bus = InProcessBus()
    settings = notifier_settings(delivery="ses", aws_endpoint_url=f"http://127.0.0.1:{free_port()}", aws_max_attempts=1)
    app = create_app(settings, bus=bus)
    async with running(app) as client:
        answer = await client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"] == {"bus": True, "ses": False}
    await bus.close()


async def test_readyz_reports_ses_reachable(moto: str) -> None:
    bus = InProcessBus()
    app = create_app(notifier_settings(delivery="ses", aws_endpoint_url=moto), bus=bus)
    async with running(app) as client:
        answer = await client.get("/readyz")
        assert answer.status_code == 200, answer.text
    await bus.close()


def test_smtp_login_needs_both_username_and_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {
        "ZC_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/", "ZC_API_URL": "http://api:8000",
        "ZC_SERVICE_TOKEN": NOTIFIER_TOKEN, "ZC_SMTP_USERNAME": "zerocloud",
    }.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SystemExit):
        load_settings(NotifierSettings, "notifier")

    assert "setting ZC_SMTP_PASSWORD is invalid" in capsys.readouterr().err


def test_settings_defaults_follow_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZC_CONFIG", raising=False)
    settings = NotifierSettings(amqp_url="amqp://x/", api_url="http://api:8010", service_token=NOTIFIER_TOKEN)
    assert (settings.delivery, settings.digest_window, settings.send_attempts) == ("smtp", 30.0, 6)
    assert settings.webhook_url is None and settings.smtp_starttls is False
