"""The lease lifecycle across all five services: notice, warnings, reaping, renewal by
the emailed link, observe mode. Leases of seconds; time is never slept away in days."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timezone

import httpx

from zc_common.cloudevents import state_change_event

from tests.e2e.conftest import CUSTOMER, REGION, Stack, eventually

ALICE = "alice@bigdb.com"
LINK = re.compile(r"https?://[^\s\"'<>]+/a/[A-Za-z0-9_\-]+")


async def launch_and_lease(stack: Stack) -> tuple[str, dict[str, object]]:
    [instance] = await stack.run_instances(tags={"owner": ALICE, "Name": "ci-runner"})
    await stack.send(state_change_event(account_id=CUSTOMER, region=REGION, instance_id=instance, state="running"))
    [lease] = await eventually(lambda: stack.leases(instance_id=instance))
    return instance, lease


def subjects(sink: object, recipient: str) -> list[str]:
    return [str(mail.message["Subject"]) for mail in sink.mails_to(recipient)]  # type: ignore[attr-defined]


async def test_an_unrenewed_lease_is_warned_then_stopped_and_its_owner_told(stack: Stack) -> None:
    await stack.onboard()
    await stack.set_policy(default_lease_seconds=8, warning_seconds=[6])
    await stack.set_mode("enforce")
    async with stack.lifecycle() as sink, stack.ingestor():
        instance, lease = await launch_and_lease(stack)
        await eventually(lambda: _state_is(stack, instance, "stopped"), timeout=40)
        await eventually(lambda: _status_is(stack, instance, "reaped"), timeout=20)
        mails = await eventually(lambda: _at_least(sink, ALICE, 3), timeout=20)
    texts = [mail.text for mail in mails]
    assert sum("expires" in t.lower() and instance in t for t in texts) >= 2, texts
    assert sum("stopped" in t.lower() for t in texts) >= 1
    assert len(mails) == 3, f"one notice, one warning, one reap notice: {subjects(sink, ALICE)}"
    actions = [event["action"] for event in reversed(await stack.audit(subject_type="lease"))]
    assert actions[0] == "lease.created" and actions[-1] == "lease.reaped", actions


async def test_renewing_by_the_emailed_link_beats_the_old_timer(stack: Stack) -> None:
    await stack.onboard()
    await stack.set_policy(default_lease_seconds=10, warning_seconds=[])
    await stack.set_mode("enforce")
    async with stack.lifecycle() as sink, stack.ingestor():
        instance, lease = await launch_and_lease(stack)
        [notice] = await eventually(lambda: _at_least(sink, ALICE, 1))
        links = LINK.findall(notice.text)
        assert links, notice.text
        async with httpx.AsyncClient(timeout=10) as browser:
            for link in links:
                page = await browser.get(link)
                assert page.status_code == 200
            [unchanged] = await stack.leases(instance_id=instance)
            assert unchanged["version"] == lease["version"], "GET never changes state"
            renew = _link_for(notice.text, "renew")
            renewed = await browser.post(renew)
            assert renewed.status_code == 200, renewed.text
        [after] = await stack.leases(instance_id=instance)
        assert after["version"] == int(lease["version"]) + 1 and after["status"] == "active"
        # Past the first expiry the old timer has fired; the claim refused it (stale version).
        first_expiry = datetime.fromisoformat(str(lease["expires_at"]))
        await asyncio.sleep(max(0.0, (first_expiry - datetime.now(timezone.utc)).total_seconds()) + 3)
        assert await stack.instance_state(instance) == "running"
        [still] = await stack.leases(instance_id=instance)
        assert still["status"] == "active" and still["version"] == after["version"]
        # The new timers fire for the new expiry.
        await eventually(lambda: _state_is(stack, instance, "stopped"), timeout=40)


async def test_observe_mode_stops_nothing_and_says_what_would_have_happened(stack: Stack) -> None:
    await stack.onboard()
    await stack.set_policy(default_lease_seconds=4, warning_seconds=[])
    async with stack.lifecycle() as sink, stack.ingestor():
        instance, _ = await launch_and_lease(stack)
        await eventually(lambda: _status_is(stack, instance, "expired"), timeout=30)
        mails = await eventually(lambda: _at_least(sink, ALICE, 2), timeout=20)
    assert await stack.instance_state(instance) == "running"
    assert any("would have" in mail.text.lower() for mail in mails), [m.text for m in mails]


def _link_for(text: str, action: str) -> str:
    """The link on the line (or just after the word) naming the action."""
    for line in text.splitlines():
        if action in line.lower():
            found = LINK.search(line)
            if found:
                return found.group(0)
    position = text.lower().find(action)
    found = LINK.search(text, position)
    assert found, f"no {action} link in: {text}"
    return found.group(0)


async def _state_is(stack: Stack, instance_id: str, state: str) -> bool:
    return await stack.instance_state(instance_id) == state


async def _status_is(stack: Stack, instance_id: str, status: str) -> bool:
    return any(lease["status"] == status for lease in await stack.leases(instance_id=instance_id))


async def _at_least(sink: object, recipient: str, count: int) -> list[object]:
    found = sink.mails_to(recipient)  # type: ignore[attr-defined]
    return found if len(found) >= count else []

