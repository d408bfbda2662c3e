"""The whole spine, each service its own task with its own RabbitMQ connection: the api
served over HTTP by uvicorn, ingestors polling a real SQS queue in the moto server,
and `zerocloud-cli` run as a real subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zc_common.aws import AwsAccess, CloudAccountRole
from zc_common.settings import (
    ApiSettings,
    IngestorSettings,
    NotifierSettings,
    ReaperSettings,
    SchedulerSettings,
)

from tests.support.confirmations import follow_confirmation_link
from tests.support.credentials import API_CREDENTIALS, INGESTOR_TOKEN, NOTIFIER_TOKEN, REAPER_TOKEN
from tests.support.ports import free_port
from tests.support.serving import serving_api
from tests.support.waiting import eventually as _eventually
from zc_ingestor.main import wired
from zc_ingestor.service import Ingestor

if TYPE_CHECKING:
    from tests.notifier.factories import SmtpSink

CUSTOMER = "111111111111"
ROLE_ARN = f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud"
REGION = "us-east-1"
CLI = str(Path(sys.executable).with_name("zerocloud-cli"))

# The shared wait (tests/support/waiting.py); the spine's probes ask real services over
# HTTP, so they ask every 0.2 s rather than as often as in-process tests do.
eventually = functools.partial(_eventually, interval=0.2)


@dataclass
class Stack:
    api_url: str
    internal_url: str
    admin_token: str
    database_url: str
    amqp_url: str
    exchange: str
    aws_endpoint_url: str
    queue_url: str
    dead_letter_queue_url: str
    aws: AwsAccess
    http: httpx.AsyncClient
    ids: dict[str, int] = field(default_factory=dict)

    # --- the cli, as a person runs it -------------------------------------------------
    async def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "ZC_API_URL": self.api_url, "ZC_API_TOKEN": self.admin_token}
        done = await asyncio.to_thread(
            subprocess.run, [CLI, *args], env=env, capture_output=True, text=True, timeout=60
        )
        if check and done.returncode != 0:
            raise AssertionError(f"zerocloud-cli {' '.join(args)} failed ({done.returncode}): {done.stderr}")
        return done

    async def onboard(self, *, allowed: list[str] | None = None) -> None:
        """The seed's Verify flow: account and cloud account with the cli, plus a developer."""
        account = json.loads((await self.cli(
            "create", "account", "--json", "--payload",
            '{"lease_expires_in": 3, "lease_expires_in_units": "days", "name": "BigDB"}',
        )).stdout)
        self.ids["account"] = account["id"]
        cloud = json.loads((await self.cli(
            "create", "cloudaccount", "--json", "--accountID", str(account["id"]), "--payload",
            json.dumps({"assume_role_arn": ROLE_ARN, "cloudprovider": "AWS", "name": "dev", "upstream_account_id": CUSTOMER}),
        )).stdout)
        self.ids["cloud_account"] = cloud["id"]
        alice = json.loads((await self.cli(
            "create", "user", "--json", "--accountID", str(account["id"]), "--email", "alice@bigdb.com", "--role", "dev",
        )).stdout)
        # Added by an admin, alice owns nothing until she confirms her address from the mail.
        await follow_confirmation_link(self.api_url, self.internal_url, alice["id"])
        if allowed is not None:
            answer = await self.http.patch(
                f"/api/v1/accounts/{account['id']}/policy", json={"allowed_email_patterns": allowed}
            )
            assert answer.status_code == 200, answer.text

    # --- the customer's AWS account ---------------------------------------------------
    async def run_instances(self, count: int = 1, tags: dict[str, str] | None = None) -> list[str]:
        spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
        async with self.aws.client("ec2", REGION, CloudAccountRole(ROLE_ARN, "customer-admin")) as ec2:
            answer = await ec2.run_instances(
                ImageId="ami-12c6146b", MinCount=count, MaxCount=count, InstanceType="t3.micro",
                **({"TagSpecifications": spec} if spec else {}),
            )
        return [i["InstanceId"] for i in answer["Instances"]]

    async def terminate(self, *instance_ids: str) -> None:
        async with self.aws.client("ec2", REGION, CloudAccountRole(ROLE_ARN, "customer-admin")) as ec2:
            await ec2.terminate_instances(InstanceIds=list(instance_ids))

    async def send(self, *bodies: str | dict[str, Any]) -> None:
        """Put messages on the event queue as EventBridge/SNS would."""
        async with self.aws.client("sqs") as sqs:
            for body in bodies:
                await sqs.send_message(QueueUrl=self.queue_url, MessageBody=body if isinstance(body, str) else json.dumps(body))

    async def dead_letters(self) -> list[dict[str, Any]]:
        async with self.aws.client("sqs") as sqs:
            answer = await sqs.receive_message(
                QueueUrl=self.dead_letter_queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                VisibilityTimeout=0,
            )
        return list(answer.get("Messages", []))

    # --- ZeroCloud's view ---------------------------------------------------------------
    async def leases(self, **filters: str) -> list[dict[str, Any]]:
        answer = await self.http.get("/api/v1/leases", params={"limit": 500, **filters})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"])

    async def audit(self, **filters: str) -> list[dict[str, Any]]:
        answer = await self.http.get("/api/v1/audit-events", params={"limit": 500, **filters})
        assert answer.status_code == 200, answer.text
        return list(answer.json()["data"])

    def ingestor_settings(self, **overrides: Any) -> IngestorSettings:
        values: dict[str, Any] = {
            "amqp_url": self.amqp_url, "amqp_exchange": self.exchange, "aws_endpoint_url": self.aws_endpoint_url,
            "api_url": self.internal_url, "service_token": INGESTOR_TOKEN, "event_queue_urls": [self.queue_url],
            "event_dead_letter_queue_url": self.dead_letter_queue_url, "poll_wait_seconds": 1,
            "account_cache_seconds": 0,
        }
        return IngestorSettings(**{**values, **overrides})

    @contextlib.asynccontextmanager
    async def lifecycle(self, *, digest_window: float = 0.5) -> AsyncIterator[SmtpSink]:
        """Scheduler, notifier and reaper, each with its own RabbitMQ connection, and an
        SMTP sink standing in for the mail relay. Yields the sink."""
        from tests.notifier.factories import SmtpSink
        from zc_notifier.main import create_app as create_notifier
        from zc_reaper.main import create_app as create_reaper
        from zc_scheduler.database import migrate as migrate_scheduler
        from zc_scheduler.main import create_app as create_scheduler

        await migrate_scheduler(self.database_url)
        sink = SmtpSink()
        sink.start()
        common = {"amqp_url": self.amqp_url, "amqp_exchange": self.exchange, "aws_endpoint_url": self.aws_endpoint_url}
        caller = {**common, "api_url": self.internal_url}
        apps = [
            create_scheduler(SchedulerSettings(**common, database_url=self.database_url, sweep_interval=0)),
            create_notifier(NotifierSettings(
                **caller, service_token=NOTIFIER_TOKEN, smtp_host="127.0.0.1", smtp_port=sink.port, digest_window=digest_window, send_retry_delay=0.2,
            )),
            create_reaper(ReaperSettings(**caller, service_token=REAPER_TOKEN)),
        ]
        try:
            async with contextlib.AsyncExitStack() as stack:
                for app in apps:
                    await stack.enter_async_context(app.router.lifespan_context(app))
                yield sink
        finally:
            sink.stop()

    async def set_policy(self, **policy: Any) -> None:
        answer = await self.http.patch(f"/api/v1/accounts/{self.ids['account']}/policy", json=policy)
        assert answer.status_code == 200, answer.text

    async def set_mode(self, mode: str) -> None:
        answer = await self.http.patch(f"/api/v1/cloudaccounts/{self.ids['cloud_account']}", json={"mode": mode})
        assert answer.status_code == 200, answer.text

    async def instance_state(self, instance_id: str) -> str:
        async with self.aws.client("ec2", REGION, CloudAccountRole(ROLE_ARN, "customer-admin")) as ec2:
            answer = await ec2.describe_instances(InstanceIds=[instance_id])
        return str(answer["Reservations"][0]["Instances"][0]["State"]["Name"])

    @contextlib.asynccontextmanager
    async def ingestor(self, **overrides: Any) -> AsyncIterator[Ingestor]:
        """A running ingestor with its own RabbitMQ connection."""
        async with wired(self.ingestor_settings(**overrides)) as ingestor:
            await ingestor.start()
            yield ingestor


@pytest.fixture
async def stack(clean_database: str, amqp_url: str, exchange: str, moto: str) -> AsyncIterator[Stack]:
    admin_token = f"zc_{secrets.token_urlsafe(32)}"
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    settings = ApiSettings(
        database_url=clean_database, amqp_url=amqp_url, amqp_exchange=exchange, **API_CREDENTIALS,
        bootstrap_admin_token=admin_token, aws_endpoint_url=moto, http_port=port, internal_port=free_port(),
        public_url=api_url,
    )
    aws = AwsAccess(endpoint_url=moto, session_name="e2e")
    async with aws.client("sqs") as sqs:
        queue_url = (await sqs.create_queue(QueueName=f"events-{exchange}"))["QueueUrl"]
        dlq_url = (await sqs.create_queue(QueueName=f"events-dead-{exchange}"))["QueueUrl"]
    async with (
        serving_api(settings) as served,
        httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30) as http,
    ):
        yield Stack(
            api_url=api_url, internal_url=served.internal_url, admin_token=admin_token, database_url=clean_database,
            amqp_url=amqp_url, exchange=exchange, aws_endpoint_url=moto, queue_url=queue_url,
            dead_letter_queue_url=dlq_url, aws=aws, http=http,
        )
