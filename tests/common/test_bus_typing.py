"""The bus's contract is checked before anything runs: mypy refuses a handler whose
parameter type is not what its queue carries, and ``subscribe`` refuses routes that do
not cover exactly the queue's types."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest
from mypy import api as mypy_api

from zc_common.bus import Queue, Route, Routes, topology
from zc_common.bus.memory import InProcessBus
from zc_common.messages import CloudEventReceived, LeaseChanged, LeaseExpired, SweepRequested

from tests.support.waiting import eventually

ROOT = Path(__file__).resolve().parents[2]

WIRING = """
from collections.abc import Sequence
from zc_common.bus import Bus, Route, Routes, topology
from zc_common.messages import CloudEventReceived, LeaseExpired, SweepRequested

async def reap(expired: Sequence[LeaseExpired]) -> None: ...
async def sweeps(requests: Sequence[SweepRequested]) -> None: ...
async def events(received: Sequence[CloudEventReceived]) -> None: ...

def wire(bus: Bus) -> None:
    bus.subscribe(topology.REAPER, reap)
    bus.subscribe(topology.INGESTOR, Routes(Route(CloudEventReceived, events), Route(SweepRequested, sweeps)))
"""


def type_check(tmp_path: Path, source: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    module = tmp_path / "wiring.py"
    module.write_text(textwrap.dedent(source))
    monkeypatch.setenv("MYPYPATH", str(ROOT / "libs" / "zc_common"))
    out, err, status = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(ROOT / ".mypy_cache"), str(module)]
    )
    return out + err, status


def test_mypy_accepts_handlers_that_take_what_their_queue_carries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out, status = type_check(tmp_path, WIRING, monkeypatch)
    assert status == 0, out


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("bus.subscribe(topology.SCHEDULER, reap)", "LeaseChanged"),
        # A handler of one of the queue's types would silently get the other's messages.
        ("bus.subscribe(topology.INGESTOR, sweeps)", "SweepRequested | CloudEventReceived"),
        ("Route(CloudEventReceived, sweeps)", "CloudEventReceived"),
    ],
)
def test_mypy_refuses_a_handler_of_other_types(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str, refused: str
) -> None:
    out, status = type_check(tmp_path, WIRING + f"    {line}\n", monkeypatch)
    assert status == 1
    assert "[arg-type]" in out and refused in out, out


async def noop(messages: Sequence[object]) -> None:
    pass


def test_routes_must_cover_exactly_the_queue_types() -> None:
    bus = InProcessBus()
    with pytest.raises(ValueError, match="do not match queue 'ingestor'"):
        bus.subscribe(topology.INGESTOR, Routes(Route(SweepRequested, noop)))
    with pytest.raises(ValueError, match="do not match"):
        bus.subscribe(
            topology.INGESTOR,
            Routes(Route(SweepRequested, noop), Route(CloudEventReceived, noop), Route(LeaseExpired, noop)),
        )
    with pytest.raises(ValueError, match="twice"):
        Routes(Route(SweepRequested, noop), Route(SweepRequested, noop))
    assert bus.subscriptions == []


def test_a_queue_names_its_types_once() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Queue[LeaseChanged]("empty", ())
    with pytest.raises(ValueError, match="twice"):
        Queue[LeaseChanged]("twice", (LeaseChanged, LeaseChanged))


async def test_routes_hand_each_type_its_part_in_route_order() -> None:
    seen: list[tuple[str, list[object]]] = []

    async def events(received: Sequence[CloudEventReceived]) -> None:
        seen.append(("events", [m.event["id"] for m in received]))

    async def sweeps(requests: Sequence[SweepRequested]) -> None:
        seen.append(("sweeps", [m.region for m in requests]))

    bus = InProcessBus()
    bus.subscribe(
        topology.INGESTOR, Routes(Route(CloudEventReceived, events), Route(SweepRequested, sweeps)),
        batch_size=10, max_wait=0.3,
    )
    await bus.start()
    try:
        await bus.publish(
            SweepRequested(cloud_account_id=1, region="eu-west-1"),
            CloudEventReceived(event={"id": "a"}),
            SweepRequested(cloud_account_id=1, region="us-east-1"),
            CloudEventReceived(event={"id": "b"}),
        )
        await eventually(lambda: len(seen) == 2)
    finally:
        await bus.close()
    assert seen == [("events", ["a", "b"]), ("sweeps", ["eu-west-1", "us-east-1"])]
