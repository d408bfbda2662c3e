"""/metrics: the bus counts what its consumers settle exactly the same on both transports,
AWS calls are counted by operation and outcome, and the exposition parses as Prometheus
text."""

from __future__ import annotations

import asyncio
import gc
import inspect
import secrets
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from zc_common.aws import AwsAccess
from zc_common.bus import Bus, PermanentFailure, Queue
from zc_common.messages import Message
from zc_common.metrics import KeptCounts
from zc_common.service import add_health_routes

from tests.support.waiting import eventually


class Tick(Message):
    """A message type of this module's own, so no other test moves its counters."""

    type: Literal["zc-test.MetricsTick"] = "zc-test.MetricsTick"
    n: int


TICK = Tick.type_name()


async def publish_raw(bus: Bus, body: bytes, type_name: str) -> None:
    """Put a body on the wire as-is (sync on the in-process bus, async on RabbitMQ)."""
    result = bus.publish_raw(body, type_name)  # type: ignore[attr-defined]
    if inspect.isawaitable(result):
        await result


def aws_calls() -> dict[tuple[str, str, str], float]:
    """zc_aws_calls_total now: (service, operation, outcome) -> calls."""
    return {
        (s.labels["service"], s.labels["operation"], s.labels["outcome"]): s.value
        for family in REGISTRY.collect()
        if family.name == "zc_aws_calls"
        for s in family.samples
        if s.name == "zc_aws_calls_total"
    }


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def consumed(queue: str, outcome: str) -> float:
    return sample("zc_bus_messages_consumed_total", queue=queue, type=TICK, outcome=outcome)


def dead(queue: str, reason: str) -> float:
    return sample("zc_bus_dead_letters_total", queue=queue, reason=reason)


async def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics of an app with the shared routes, parsed: (sample name, labels) -> value."""
    app = FastAPI()
    add_health_routes(app, dict)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


async def test_bus_counts_each_outcome_exactly_on_both_transports(bus: Bus) -> None:
    queue = f"metrics-{secrets.token_hex(3)}"
    failed_once: set[int] = set()

    async def handle(messages: Sequence[Message]) -> None:
        for message in messages:
            assert isinstance(message, Tick)
            if message.n in (1, 3, 5):
                raise PermanentFailure(f"tick {message.n} can never be handled")
            if message.n == 2 and 2 not in failed_once:
                failed_once.add(2)
                raise ConnectionError("not yet")
            if message.n == 6:
                raise ConnectionError("never")
        handled.extend(messages)

    handled: list[Message] = []
    bus.subscribe(Queue(queue, (Tick,)), handle, batch_size=10, max_wait=0.05, max_attempts=2, retry_delay=0.05)
    await bus.start()
    published = sample("zc_bus_messages_published_total", type=TICK)

    await bus.publish(*(Tick(n=n) for n in range(7)))
    await publish_raw(bus, b"\x00 not a message", TICK)

    await eventually(lambda: _settled(bus, queue, handled))
    await asyncio.sleep(0.2)  # nothing more arrives
    assert sample("zc_bus_messages_published_total", type=TICK) - published == 7
    assert consumed(queue, "ok") == 3  # 0, 4, and 2 on its second attempt
    assert consumed(queue, "retried") == 2  # 2 once, 6 once before it gave up
    assert consumed(queue, "dead_lettered") == 5  # 1, 3, 5, 6 and the undecodable body
    assert dead(queue, "permanent") == 3
    assert dead(queue, "exhausted") == 1
    assert dead(queue, "undecodable") == 1

    exposed = await scrape()
    labels = (("outcome", "dead_lettered"), ("queue", queue), ("type", TICK))
    assert exposed[("zc_bus_messages_consumed_total", labels)] == 5
    assert exposed[("zc_bus_dead_letters_total", (("queue", queue), ("reason", "undecodable")))] == 1


async def _settled(bus: Bus, queue: str, handled: list[Message]) -> bool:
    return len(handled) == 3 and len(await bus.dead_letters(queue)) == 5


async def test_metrics_parse_and_carry_help_and_type() -> None:
    app = FastAPI()
    add_health_routes(app, dict)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as http:
        text = (await http.get("/metrics")).text
    families = {family.name: family for family in text_string_to_metric_families(text)}

    for name, kind in [
        ("zc_bus_messages_consumed", "counter"),
        ("zc_bus_messages_published", "counter"),
        ("zc_bus_dead_letters", "counter"),
        ("zc_aws_calls", "counter"),
        ("zc_scheduler_timer_lag_seconds", "histogram"),
        ("zc_notifier_mails", "counter"),
        ("zc_notifier_warnings", "counter"),
        ("zc_api_warning_deferrals", "counter"),
        ("zc_api_warning_reports", "counter"),
    ]:
        assert families[name].type == kind, name
        assert families[name].documentation, f"{name} has no help text"


def test_kept_counts_are_summed_over_live_instances_and_named_per_service() -> None:
    kept = KeptCounts()
    first, second = Counter({"events_received": 3}), Counter({"events_received": 4, "something_new": 1})
    kept.track("ingestor", first)
    kept.track("ingestor", second)

    exported = {family.name: family for family in kept.collect()}

    received = exported["zc_ingestor_events_received"]
    assert received.type == "counter" and received.documentation.startswith("Events received")
    assert [(s.name, s.value) for s in received.samples] == [("zc_ingestor_events_received_total", 7)]
    assert exported["zc_ingestor_sweeps"].samples[0].value == 0  # known, not counted yet
    assert exported["zc_ingestor_something_new"].samples[0].value == 1
    del second
    gc.collect()
    assert next(f for f in kept.collect() if f.name == "zc_ingestor_events_received").samples[0].value == 3


async def test_aws_calls_are_counted_by_operation_and_outcome(moto: str) -> None:
    aws = AwsAccess(endpoint_url=moto, session_name="zc-metrics-test", max_attempts=1)
    before = aws_calls()

    async with aws.client("sqs") as sqs:
        await sqs.create_queue(QueueName=f"metrics-{secrets.token_hex(3)}")
        with pytest.raises(Exception) as raised:
            await sqs.get_queue_url(QueueName="no-such-queue")

    code = raised.value.response["Error"]["Code"]  # type: ignore[attr-defined]
    after = aws_calls()
    changed = {key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key, 0.0)}
    assert changed == {("sqs", "CreateQueue", "ok"): 1, ("sqs", "GetQueueUrl", code): 1}
    exposed = await scrape()
    key = (("operation", "CreateQueue"), ("outcome", "ok"), ("service", "sqs"))
    assert exposed[("zc_aws_calls_total", key)] == after[("sqs", "CreateQueue", "ok")]


async def test_aws_calls_without_an_answer_are_counted_by_error() -> None:
    aws = AwsAccess(endpoint_url="http://127.0.0.1:9", max_attempts=1)
    before = sample("zc_aws_calls_total", service="sts", operation="GetCallerIdentity", outcome="EndpointConnectionError")

    assert await aws.answers() is False

    after = sample("zc_aws_calls_total", service="sts", operation="GetCallerIdentity", outcome="EndpointConnectionError")
    assert after - before == 1


async def test_aws_readiness_is_cached(moto: str) -> None:
    aws = AwsAccess(endpoint_url=moto)
    before = sample("zc_aws_calls_total", service="sts", operation="GetCallerIdentity", outcome="ok")

    assert all(await asyncio.gather(*(aws.answers() for _ in range(5))))
    assert await aws.answers()

    assert sample("zc_aws_calls_total", service="sts", operation="GetCallerIdentity", outcome="ok") - before == 1
