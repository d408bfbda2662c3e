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

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.notifier.factories import SmtpSink
from tests.reliability.workload import Workload
from tests.support.processes import ProcessStack

pytestmark = pytest.mark.reliability

LOAD_SECONDS = 30
RATE = 2.0  # instances launched a second


@pytest.fixture
def workload() -> Iterator[Workload]:
    """A stack of its own (its own moto, database and exchange) and a mail sink the test can stop."""
    sink = SmtpSink()
    sink.start()
    try:
        with ProcessStack(smtp_port=sink.port, overrides={"ZC_LOG_LEVEL": "INFO"}) as stack:
            queue_url = Workload.event_queue(stack)
            stack.per_service["ingestor"] = {"ZC_EVENT_QUEUE_URLS": queue_url, "ZC_POLL_WAIT_SECONDS": "1"}
            stack.per_service["notifier"] = {"ZC_DIGEST_WINDOW": "1", "ZC_SEND_RETRY_DELAY": "0.5"}
            stack.per_service["reaper"] = {"ZC_MESSAGE_RETRY_DELAY": "0.5"}
            stack.start_services()
            load = Workload(stack, sink, queue_url=queue_url)
            load.onboard()
            yield load
    finally:
        sink.stop()


def kill_and_restart(*names: str, down: float = 6) -> Callable[[Workload], None]:
    def fault(load: Workload) -> None:
        for name in names:
            load.stack.kill(name)
            time.sleep(down)
            load.stack.start(name)
    return fault


def aws_failing(rate: float, *, seconds: float = 20) -> Callable[[Workload], None]:
    def fault(load: Workload) -> None:
        httpx.put(f"{load.stack.aws_url}/_proxy/faults", json={"rate": rate, "seed": 12}).raise_for_status()
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


FAULTS = {
    "kill-reaper-then-notifier": pytest.param(
        kill_and_restart("reaper", "notifier"), marks=pytest.mark.reliability_short,
    ),
    # Down for longer than the warning's lead: the warnings due meanwhile arrive late.
    "kill-notifier-past-the-warning": kill_and_restart("notifier", down=25),
    "kill-api": kill_and_restart("api"),
    "kill-ingestor": kill_and_restart("ingestor"),
    "kill-scheduler": kill_and_restart("scheduler"),
    "replicas": replicas_with_one_killed,
    "aws-30-percent-failing": aws_failing(0.3),
    "smtp-down": smtp_down(),
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=list(FAULTS))
def test_every_invariant_holds_through_the_fault(workload: Workload, fault: Callable[[Workload], None]) -> None:
    workload.run(LOAD_SECONDS, rate=RATE, fault=lambda: fault(workload))
    workload.settle()
    broken = workload.check()
    assert not broken, (
        f"{len(broken)} invariants broken ({len(workload.launched)} instances, {len(workload.renew)} renewed); "
        f"logs in {workload.stack.log_dir}:\n" + "\n".join(broken[:40])
    )
