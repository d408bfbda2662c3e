"""The fault suite's steady load and its checks, from outside the product.

A ``Workload`` drives a ProcessStack (every service its own process): it onboards one
enforcing cloud account whose leases are short (LEASE_SECONDS, one warning WARNING_SECONDS
before the end), launches instances in moto at a steady rate and puts the state-change
event AWS would send for each on the event queue, and renews every third lease as soon
as it exists (far past the end of the run). A fault runs while that goes on. Afterwards
``settle`` waits until every unrenewed lease should have been reaped, and ``check``
reads the database, moto, the mail sink and the broker's dead letters and answers every
invariant that does not hold, in words.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import asyncpg
import boto3
import httpx

from zc_common.bus import topology
from zc_common.bus.rabbit import RabbitBus
from zc_common.cloudevents import state_change_event
from zc_common.messages import LeaseStatus

from tests.notifier.factories import SmtpSink
from tests.support.private_servers import PrivatePostgres, PrivateRabbit
from tests.support.processes import ProcessStack

CUSTOMER = "111111111111"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{CUSTOMER}:role/ZeroCloud"
ADMIN = "ops@reliability.example"
LEASE_SECONDS = 40
WARNING_SECONDS = 20
RENEW_BY_SECONDS = 3600


def aws(stack: ProcessStack, service: str, *, customer: bool = True) -> Any:
    """A client straight to moto (never failed by the proxy, never counted): of the
    customer's own account, or (``customer=False``) of ZeroCloud's, where the event queue is."""
    sts = boto3.client("sts", endpoint_url=stack.moto_url, region_name=REGION,
                       aws_access_key_id="zerocloud", aws_secret_access_key="zerocloud")
    if not customer:
        return boto3.client(service, endpoint_url=stack.moto_url, region_name=REGION,
                            aws_access_key_id="zerocloud", aws_secret_access_key="zerocloud")
    credentials = sts.assume_role(RoleArn=ROLE_ARN, RoleSessionName="customer-admin")["Credentials"]
    return boto3.client(
        service, endpoint_url=stack.moto_url, region_name=REGION, aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["SessionToken"],
    )


@dataclass
class Workload:
    stack: ProcessStack
    sink: SmtpSink
    queue_url: str = ""
    admin_token: str = ""
    cloud_account_id: int = 0
    launched: list[str] = field(default_factory=list)
    renew: set[str] = field(default_factory=set)
    renewed: dict[str, datetime] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    # What the stack runs on, when it is the suite's own (to kill or crash).
    rabbit: PrivateRabbit | None = None
    postgres: PrivatePostgres | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    # --- set up ---------------------------------------------------------------------------
    @classmethod
    def event_queue(cls, stack: ProcessStack) -> str:
        return str(aws(stack, "sqs", customer=False).create_queue(QueueName=f"events-{stack.exchange}")["QueueUrl"])

    def onboard(self) -> None:
        self.admin_token = self.stack.create_admin(ADMIN)
        with self.stack.api(self.admin_token) as http:
            account = _ok(http.post("/api/v1/accounts", json={"name": "reliability"}))
            _ok(http.patch(f"/api/v1/accounts/{account['id']}/policy", json={
                "default_lease_seconds": LEASE_SECONDS, "max_lease_seconds": 2 * RENEW_BY_SECONDS,
                "warning_seconds": [WARNING_SECONDS], "action_on_expiry": "stop",
                "blast_radius_percent": 100, "blast_radius_per_hour": 1_000_000,
            }))
            cloud = _ok(http.post(f"/api/v1/accounts/{account['id']}/cloudaccounts", json={
                "name": "customer", "upstream_account_id": CUSTOMER, "assume_role_arn": ROLE_ARN,
                "regions": [REGION], "mode": "enforce",
            }))
        self.cloud_account_id = int(cloud["id"])

    # --- the load ---------------------------------------------------------------------------
    def run(self, seconds: float, *, rate: float, fault: Callable[[], None] | None = None, fault_at: float = 8) -> None:
        """Launch ``rate`` instances a second for ``seconds``, renewing every third lease as
        soon as it exists; ``fault`` runs in its own thread ``fault_at`` seconds in."""
        renewer = threading.Thread(target=self._renew_loop, name="renewer", daemon=True)
        renewer.start()
        faulting = threading.Thread(target=lambda: (time.sleep(fault_at), fault and fault()), name="fault", daemon=True)
        faulting.start()
        ec2, sqs = aws(self.stack, "ec2"), aws(self.stack, "sqs", customer=False)
        started = time.monotonic()
        launched = 0
        while time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) * rate) + 1
            while launched < due:
                [instance] = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"]
                instance_id = instance["InstanceId"]
                event = state_change_event(account_id=CUSTOMER, region=REGION, instance_id=instance_id, state="running")
                sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(event))
                self.launched.append(instance_id)
                if launched % 3 == 0:
                    self.renew.add(instance_id)
                launched += 1
            time.sleep(0.05)
        faulting.join()
        self._stop.set()
        renewer.join(timeout=120)

    def _renew_loop(self) -> None:
        """Renew each chosen lease once it exists, whatever is down at the time (a person
        retries a page that did not load); gives up 90 s after the load ends."""
        give_up: float | None = None
        with self.stack.api(self.admin_token) as http:
            while True:
                pending = [i for i in list(self.renew) if i not in self.renewed]
                if self._stop.is_set():
                    give_up = give_up or time.monotonic() + 90
                    if not pending or time.monotonic() > give_up:
                        return
                for instance_id in pending:
                    lease = self._lease_of(http, instance_id)
                    if lease is None:
                        continue
                    with contextlib.suppress(httpx.HTTPError):
                        answer = http.post(f"/api/v1/leases/{lease['id']}/renew",
                                           json={"extend_by_seconds": RENEW_BY_SECONDS})
                        if answer.status_code == 200:
                            self.renewed[instance_id] = datetime.fromisoformat(answer.json()["expires_at"])
                        elif answer.status_code < 500:
                            self.errors.append(f"renewing {instance_id}: {answer.status_code} {answer.text}")
                            self.renewed[instance_id] = datetime.max.replace(tzinfo=timezone.utc)
                time.sleep(0.3)

    @staticmethod
    def _lease_of(http: httpx.Client, instance_id: str) -> dict[str, Any] | None:
        with contextlib.suppress(httpx.HTTPError):
            answer = http.get("/api/v1/leases", params={"instance_id": instance_id})
            if answer.status_code == 200 and answer.json()["data"]:
                return dict(answer.json()["data"][0])
        return None

    # --- after -----------------------------------------------------------------------------
    def settle(self, timeout: float = 240) -> None:
        """Until every launched instance has its lease and every unrenewed one is reaped."""
        deadline = time.monotonic() + timeout
        unrenewed = set(self.launched) - self.renew
        while time.monotonic() < deadline:
            rows = asyncio.run(self._leases())
            reaped = {r["instance_id"] for r in rows if r["status"] == "reaped"}
            if len({r["instance_id"] for r in rows}) >= len(self.launched) and unrenewed <= reaped:
                return
            time.sleep(1)

    async def _leases(self) -> list[asyncpg.Record]:
        connection = await asyncpg.connect(self.stack.database_url)
        try:
            return list(await connection.fetch(
                """
                SELECT r.instance_id, l.id, l.status, l.expires_at, l.reaped_at,
                       (SELECT count(*) FROM audit_event a WHERE a.subject_type = 'lease'
                          AND a.subject_id = l.id AND a.action = 'lease.reaped') AS reaped_entries
                FROM lease l JOIN resource r ON r.id = l.resource_id
                WHERE l.cloud_account_id = $1
                """,
                self.cloud_account_id,
            ))
        finally:
            await connection.close()

    async def _overdue_timers(self) -> int:
        connection = await asyncpg.connect(self.stack.database_url)
        try:
            return int(await connection.fetchval(
                "SELECT count(*) FROM scheduler_timer WHERE fire_at < now() - interval '30 seconds'"
            ))
        finally:
            await connection.close()

    async def _dead_letters(self) -> list[str]:
        bus = RabbitBus(self.stack.amqp_url, self.stack.exchange)
        await bus.start()
        try:
            found = []
            for queue in topology.QUEUES:
                with contextlib.suppress(Exception):
                    found += [f"{queue.name}: {dead.reason}" for dead in await bus.dead_letters(queue.name)]
            return found
        finally:
            await bus.close()

    def check(self) -> list[str]:
        """Every invariant that does not hold, in words (empty: all hold)."""
        broken = list(self.errors)
        rows = asyncio.run(self._leases())
        by_instance: dict[str, list[asyncpg.Record]] = {}
        for row in rows:
            by_instance.setdefault(row["instance_id"], []).append(row)
        states = self._moto_states()
        for instance_id in self.launched:
            leases = by_instance.get(instance_id, [])
            live = [r for r in leases if LeaseStatus(r["status"]).is_live]
            if len(leases) != 1:
                broken.append(f"{instance_id} has {len(leases)} leases, not one")
                continue
            lease = leases[0]
            if instance_id in self.renew:
                if instance_id not in self.renewed:
                    broken.append(f"{instance_id}: the renewal never went through")
                if states.get(instance_id) != "running" or len(live) != 1:
                    broken.append(f"{instance_id} was renewed but is {states.get(instance_id)} ({lease['status']})")
            else:
                if lease["status"] != "reaped" or states.get(instance_id) not in ("stopping", "stopped"):
                    broken.append(f"{instance_id} expired unrenewed but is {states.get(instance_id)} ({lease['status']})")
                elif lease["reaped_entries"] != 1:
                    broken.append(f"{instance_id} was reaped {lease['reaped_entries']} times")
        broken += self._mail_problems(by_instance)
        broken += [f"dead letter: {reason}" for reason in asyncio.run(self._dead_letters())]
        overdue = asyncio.run(self._overdue_timers())
        if overdue:
            broken.append(f"{overdue} timers are more than 30 s overdue")
        return broken

    def _moto_states(self) -> dict[str, str]:
        states: dict[str, str] = {}
        for page in aws(self.stack, "ec2").get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    states[instance["InstanceId"]] = instance["State"]["Name"]
        return states

    def _mail_problems(self, by_instance: dict[str, list[asyncpg.Record]]) -> list[str]:
        problems = []
        mails = self.sink.mails
        seen = Counter((tuple(m.rcpt_tos), str(m.message["Subject"]), _text(m.message)) for m in mails)
        problems += [f"mail sent {n} times: {subject}" for (_, subject, _), n in seen.items() if n > 1]
        for instance_id in set(self.launched) - self.renew:
            [lease] = by_instance.get(instance_id, [None])  # type: ignore[list-item]
            if lease is None or lease["reaped_at"] is None:
                continue
            warned = [parsedate_to_datetime(str(m.message["Date"])) for m in mails if _warns_of(m.message, instance_id)]
            # The warning precedes the reap by its lead (the Date header has whole seconds).
            latest_allowed = lease["reaped_at"] - timedelta(seconds=WARNING_SECONDS - 2)
            if not any(at <= latest_allowed for at in warned):
                problems.append(
                    f"{instance_id} reaped at {lease['reaped_at']:%H:%M:%S} without a warning "
                    f"{WARNING_SECONDS} s before (warnings: {[f'{w:%H:%M:%S}' for w in warned]})"
                )
        return problems


def _warns_of(message: Any, instance_id: str) -> bool:
    """Whether the mail holds a warning about this instance (a digest holds one item per
    notice: notices/warning.txt starts its item with '* Lease expiring: <label>')."""
    return any(
        line.startswith("* Lease expiring: ") and instance_id in line for line in _text(message).splitlines()
    )


def _text(message: Any) -> str:
    part = message.get_body(preferencelist=("plain",)) if message.is_multipart() else message
    return str(part.get_content()) if part is not None else ""


def _ok(answer: httpx.Response) -> Any:
    if answer.status_code >= 300:
        raise AssertionError(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}")
    return answer.json()
