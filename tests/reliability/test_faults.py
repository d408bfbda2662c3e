"""The fault suite (`make test-reliability`; `make test` runs the short one): steady load on
ZeroCloud's five processes while one fault happens, then every invariant checked from
outside — the database, moto, the mail sink, the broker's dead letters:

- every launched instance has exactly one lease (none lost, none doubled);
- no renewed lease's instance was stopped; every expired, unrenewed one was stopped,
  and reaped exactly once;
- every reaped instance's owner was warned at least the warning's lead before the reap;
- no mail was sent twice; no message was dead-lettered; no timer is overdue.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.notifier.factories import SmtpSink
from tests.reliability.workload import Workload
from tests.support.private_servers import PrivatePostgres, PrivateRabbit
from tests.support.processes import ProcessStack

pytestmark = pytest.mark.reliability

LOAD_SECONDS = 30
RATE = 2.0  # instances launched a second


@dataclass(frozen=True)
class Case:
    fault: Callable[[Workload], None]
    own_rabbit: bool = False  # the stack runs on a RabbitMQ node of the suite's own
    own_postgres: bool = False


@contextlib.contextmanager
def running(case: Case) -> Iterator[Workload]:
    """A stack of its own (its own moto, database and exchange; its own broker or database
    server when the fault kills one) and a mail sink the test can stop."""
    with contextlib.ExitStack() as scope:
        rabbit = scope.enter_context(PrivateRabbit()) if case.own_rabbit else None
        postgres = scope.enter_context(PrivatePostgres()) if case.own_postgres else None
        sink = SmtpSink()
        sink.start()
        scope.callback(sink.stop)
        servers = {
            **({"amqp_url": rabbit.url} if rabbit else {}), **({"postgres_url": postgres.url} if postgres else {}),
        }
        stack = scope.enter_context(ProcessStack(smtp_port=sink.port, overrides={"ZC_LOG_LEVEL": "INFO"}, **servers))
        queue_url = Workload.event_queue(stack)
        stack.per_service["ingestor"] = {"ZC_EVENT_QUEUE_URLS": queue_url, "ZC_POLL_WAIT_SECONDS": "1"}
        stack.per_service["notifier"] = {"ZC_DIGEST_WINDOW": "1", "ZC_SEND_RETRY_DELAY": "0.5"}
        stack.per_service["reaper"] = {"ZC_MESSAGE_RETRY_DELAY": "0.5"}
        stack.start_services()
        load = Workload(stack, sink, queue_url=queue_url, rabbit=rabbit, postgres=postgres)
        load.onboard()
        yield load


def kill_and_restart(*names: str, down: float = 6) -> Callable[[Workload], None]:
    def fault(load: Workload) -> None:
        for name in names:
            load.stack.kill(name)
            time.sleep(down)
            load.stack.start(name)
    return fault


def aws_failing(rate: float, *, seconds: float = 20) -> Callable[[Workload], None]:
    """A share of ZeroCloud's AWS calls throttled or failing; an operator's sweep meanwhile
    (one whose DescribeInstances fails part way must release nothing)."""
    def fault(load: Workload) -> None:
        httpx.put(f"{load.stack.aws_url}/_proxy/faults", json={"rate": rate, "seed": 12}).raise_for_status()
        with load.stack.api(load.admin_token) as http:
            assert http.post("/api/v1/sweeps", json={}).status_code == 202
        time.sleep(seconds)
        httpx.put(f"{load.stack.aws_url}/_proxy/faults", json={"rate": 0}).raise_for_status()
    return fault


def smtp_down(seconds: float = 20) -> Callable[[Workload], None]:
    def fault(load: Workload) -> None:
        load.sink.stop()
        time.sleep(seconds)
        load.sink.start()
    return fault


def replicas_with_one_killed(load: Workload) -> None:
    """A second scheduler and reaper compete for the same timers and queue; the first of
    each is then killed and comes back."""
    load.stack.start("scheduler", 1)
    load.stack.start("reaper", 1)
    kill_and_restart("scheduler", "reaper", down=4)(load)


def rabbit_killed(down: float = 8) -> Callable[[Workload], None]:
    def fault(load: Workload) -> None:
        assert load.rabbit is not None
        load.rabbit.kill()
        time.sleep(down)
        load.rabbit.start()
    return fault


def postgres_crashed(down: float = 8) -> Callable[[Workload], None]:
    def fault(load: Workload) -> None:
        assert load.postgres is not None
        load.postgres.restart_immediately(down=down)
    return fault


CASES = {
    "kill-reaper-then-notifier": pytest.param(
        Case(kill_and_restart("reaper", "notifier")), marks=pytest.mark.reliability_short,
    ),
    # Down for longer than the warning's lead: the warnings due meanwhile arrive late.
    "kill-notifier-past-the-warning": Case(kill_and_restart("notifier", down=25)),
    "kill-api": Case(kill_and_restart("api")),
    "kill-ingestor": Case(kill_and_restart("ingestor")),
    "kill-scheduler": Case(kill_and_restart("scheduler")),
    "replicas": Case(replicas_with_one_killed),
    "rabbitmq-killed": Case(rabbit_killed(), own_rabbit=True),
    "postgres-immediate-restart": Case(postgres_crashed(), own_postgres=True),
    "aws-30-percent-failing": Case(aws_failing(0.3)),
    "smtp-down": Case(smtp_down()),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_every_invariant_holds_through_the_fault(case: Case) -> None:
    with running(case) as load:
        load.run(LOAD_SECONDS, rate=RATE, fault=lambda: case.fault(load))
        load.settle()
        broken = load.check()
        assert not broken, (
            f"{len(broken)} invariants broken ({len(load.launched)} instances, {len(load.renew)} renewed); "
            f"logs in {load.stack.log_dir}:\n" + "\n".join(broken[:40])
        )
