"""Long-polling the SQS event queues: each receive batch is parsed, followed with one
DescribeInstances per (cloud account, region), published, and only then deleted.
Unusable events and events of accounts that are not onboarded are dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from math import inf
from typing import Any

from zc_common.aws import AwsAccess
from zc_common.bus import Bus
from zc_common.cloudevents import EventProbe, InstanceHint, UnusableEvent, read_event
from zc_common.internal_api import EventArrival, InternalApi
from zc_common.logging import log_context
from zc_common.messages import utcnow
from zc_common.settings import IngestorSettings

from zc_ingestor.hints import HintFollower, Verdict

log = logging.getLogger("zc.ingestor.poller")

RECEIVE_BATCH = 10  # SQS's maximum per ReceiveMessage
REASON_ATTRIBUTE = "zc_reason"
MAX_REASON_CHARS = 1000
MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0
# An event's arrival through a topic is told to the api at most this often per topic
# (probes always, at once): at hundreds of events a second a report per receive batch
# was an api request and an upsert per batch, for a time only kept as "recently".
ARRIVAL_REPORT_SECONDS = 10.0

_QUEUE_HOST = re.compile(r"^https?://(?:sqs[.-]([a-z0-9-]+)|([a-z0-9-]+)\.queue)\.amazonaws\.com")

_Message = dict[str, Any]
_Event = InstanceHint | EventProbe


def queue_region(queue_url: str, default: str) -> str:
    """The region in an SQS queue URL; ``default`` for URLs without one (moto, legacy)."""
    match = _QUEUE_HOST.match(queue_url)
    if match is None:
        return default
    return match.group(1) or match.group(2)


@dataclass
class PollResult:
    """What one receive batch became."""

    received: int = 0
    published: int = 0  # ResourceChanges
    deleted: int = 0  # messages whose changes were published
    dead_lettered: int = 0  # unusable or not onboarded: sent to the dead-letter queue or dropped
    left: int = 0  # could not be followed now; they come back after the visibility timeout


class QueuePoller:
    def __init__(
        self,
        settings: IngestorSettings,
        aws: AwsAccess,
        bus: Bus,
        follower: HintFollower,
        counters: Counter[str],
        api: InternalApi | None = None,
    ) -> None:
        self.settings = settings
        self.aws = aws
        self.bus = bus
        self.follower = follower
        self.counters = counters
        self.api = api  # told which bound topics events came through (verify's probes among them)
        self.clock: Callable[[], float] = time.monotonic
        self._reported: dict[str, float] = {}  # topic ARN -> when its last arrival was told (self.clock)

    def client(self, queue_url: str) -> contextlib.AbstractAsyncContextManager[Any]:
        """An SQS client, as ZeroCloud itself, for the queue's region."""
        return self.aws.client("sqs", queue_region(queue_url, self.settings.aws_region))

    async def run(self, queue_url: str, stopping: asyncio.Event) -> None:
        """Poll until ``stopping`` is set. Nothing a queue or AWS does ends the loop: a
        failure is logged and polling resumes after a growing pause."""
        delay = MIN_BACKOFF
        while not stopping.is_set():
            try:
                async with self.client(queue_url) as sqs:
                    while not stopping.is_set():
                        result = await self.poll_once(sqs, queue_url, stopping)
                        delay = MIN_BACKOFF
                        if not result.received and not self.settings.poll_wait_seconds:
                            # Without long polling an empty queue would be asked in a tight loop.
                            await pause(stopping, MIN_BACKOFF)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the loop must outlive any failure
                self.counters["poll_errors"] += 1
                log.warning(
                    "polling %s failed (%s: %s); retrying in %.0fs",
                    queue_url, type(error).__name__, error, delay,
                )
                await pause(stopping, delay)
                delay = min(delay * 2, MAX_BACKOFF)

    async def poll_once(self, sqs: Any, queue_url: str, stopping: asyncio.Event | None = None) -> PollResult:
        """Receive one batch and see it through. Raises when the changes could not be
        published; then none of the batch's followed messages is deleted."""
        messages = await self._receive(sqs, queue_url, stopping)
        result = PollResult(received=len(messages))
        if not messages:
            return result
        self.counters["events_received"] += len(messages)

        read: list[tuple[_Message, _Event]] = []
        dead: list[tuple[_Message, str]] = []
        for message in messages:
            try:
                event = read_event(message.get("Body", ""), max_bytes=self.settings.max_event_bytes)
            except UnusableEvent as error:
                self.counters["events_unusable"] += 1
                dead.append((message, str(error)))
            else:
                if isinstance(event, EventProbe) and not event.via_sns:
                    dead.append((message, "a ZeroCloud probe is taken only through a topic verify bound"))
                else:
                    read.append((message, event))

        read = await self._bound_to_their_topic(read, dead, result)
        probes = [(message, event) for message, event in read if isinstance(event, EventProbe)]
        hinted = [(message, event) for message, event in read if isinstance(event, InstanceHint)]
        await self._report_arrivals([event for _, event in read])
        self.counters["probes_received"] += len(probes)
        followed = await self.follower.follow([hint for _, hint in hinted])
        done: list[_Message] = [message for message, _ in probes]  # told to the api: nothing more to do
        for (message, _), outcome in zip(hinted, followed.outcomes):
            if outcome.verdict is Verdict.observed:
                done.append(message)
            elif outcome.verdict is Verdict.rejected:
                self.counters["events_not_onboarded"] += 1
                dead.append((message, outcome.reason or "rejected"))
            else:
                self.counters["events_left"] += 1
                result.left += 1
                with log_context(message_id=message.get("MessageId")):
                    log.warning("event left on %s for a retry: %s", queue_url, outcome.reason)

        # Dead letters do not depend on the publish below, so they are settled first.
        result.dead_lettered = await self._dead_letter(sqs, queue_url, dead)
        if followed.changes:
            await self.bus.publish(*followed.changes)
            self.counters["changes_published"] += len(followed.changes)
            result.published = len(followed.changes)
        result.deleted = await self._delete(sqs, queue_url, done)
        return result

    async def _report_arrivals(self, events: list[_Event]) -> None:
        """Tell the api which bound topics events came through (the latest per topic, at
        most every ARRIVAL_REPORT_SECONDS, and every probe at once). Best effort: events are
        followed whether or not the api heard."""
        if self.api is None:
            return
        now, clock = utcnow(), self.clock()
        probes = [EventArrival(topic_arn=event.topic_arn, at=now, probe=event.nonce)
                  for event in events if isinstance(event, EventProbe) and event.topic_arn]
        probed = {probe.topic_arn for probe in probes}
        arrivals = {
            event.topic_arn: EventArrival(topic_arn=event.topic_arn, at=now)
            for event in events
            if event.via_sns and event.topic_arn and isinstance(event, InstanceHint)
            and (event.topic_arn in probed or clock - self._reported.get(event.topic_arn, -inf) >= ARRIVAL_REPORT_SECONDS)
        }
        reports = [*arrivals.values(), *probes][:100]
        if not reports:
            return
        try:
            await self.api.events_arrived(reports)
        except Exception as error:  # noqa: BLE001 - the api hears of the next ones
            log.warning("could not tell the api which topics events came through: %s", error)
            return
        for topic in arrivals:
            self._reported[topic] = clock

    async def _topics(self, named: list[str]) -> dict[str, frozenset[str] | BaseException | None]:
        answers = await asyncio.gather(*(self.follower.accounts.lookup(a) for a in named), return_exceptions=True)
        topics: dict[str, frozenset[str] | BaseException | None] = {}
        for account, answer in zip(named, answers):
            if isinstance(answer, BaseException):
                topics[account] = answer
            elif not answer:
                topics[account] = None  # not onboarded: the follower says so
            else:
                topics[account] = frozenset(arn for record in answer for arn in record.topic_arns.values())
        return topics

    async def _bound_to_their_topic(
        self, hinted: list[tuple[_Message, _Event]], dead: list[tuple[_Message, str]], result: PollResult
    ) -> list[tuple[_Message, _Event]]:
        """The events to take: an SNS-wrapped event is taken only from a topic bound to the
        cloud account it names (another tenant's topic could name any account); the others
        join ``dead``. Raw events, from ZeroCloud's own queue, are kept as they are."""
        named = sorted({hint.account_id for _, hint in hinted if hint.via_sns})
        if not named:
            return hinted
        topics = await self._topics(named)
        # A topic bound since the answer was cached (a verify a moment ago): ask afresh once.
        stale = sorted({hint.account_id for _, hint in hinted if _unbound(hint, topics.get(hint.account_id))})
        if stale:
            for account in stale:
                self.follower.accounts.forget(account)
            topics.update(await self._topics(stale))
        kept: list[tuple[_Message, _Event]] = []
        for message, hint in hinted:
            bound = topics.get(hint.account_id) if hint.via_sns else None
            if bound is None or (isinstance(bound, frozenset) and hint.topic_arn in bound):
                kept.append((message, hint))
            elif isinstance(bound, BaseException):
                self.counters["events_left"] += 1
                result.left += 1
                with log_context(message_id=message.get("MessageId")):
                    log.warning("event left on the queue for a retry: cloud account lookup failed: %s", bound)
            else:
                self.counters["events_wrong_topic"] += 1
                topic = hint.topic_arn or "an SNS notification without a TopicArn"
                dead.append((message, (
                    f"{topic} is not bound to the cloud account of AWS account {hint.account_id}: events "
                    "through SNS are taken only from the topics its verify bound (the stack's TopicArn)"
                )))
        return kept

    async def _receive(self, sqs: Any, queue_url: str, stopping: asyncio.Event | None) -> list[_Message]:
        """One long-poll receive, abandoned as soon as ``stopping`` is set (a message taken
        by an abandoned receive simply reappears after the visibility timeout)."""
        receiving = asyncio.ensure_future(
            sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=RECEIVE_BATCH,
                WaitTimeSeconds=self.settings.poll_wait_seconds,
                VisibilityTimeout=self.settings.visibility_timeout,
            )
        )
        waits = {receiving}
        if stopping is not None:
            waits.add(asyncio.ensure_future(stopping.wait()))
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        if receiving not in done:
            return []
        messages: list[_Message] = receiving.result().get("Messages", [])
        return messages

    async def _dead_letter(self, sqs: Any, queue_url: str, dead: list[tuple[_Message, str]]) -> int:
        """Send each message with its reason to the dead-letter queue, or drop it when there
        is none; either way it leaves the event queue. Returns how many left it."""
        if not dead:
            return 0
        for message, reason in dead:
            with log_context(message_id=message.get("MessageId")):
                log.warning("event from %s dead-lettered: %s", queue_url, reason)
        dead_letter_url = self.settings.event_dead_letter_queue_url
        if dead_letter_url is None:
            self.counters["events_dropped"] += len(dead)
            return await self._delete(sqs, queue_url, [message for message, _ in dead])
        entries = [
            {
                "Id": str(index),
                "MessageBody": message.get("Body", ""),
                "MessageAttributes": {
                    REASON_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:MAX_REASON_CHARS]}
                },
            }
            for index, (message, reason) in enumerate(dead)
        ]
        try:
            async with self.client(dead_letter_url) as dead_sqs:
                answer = await dead_sqs.send_message_batch(QueueUrl=dead_letter_url, Entries=entries)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - they stay on the event queue and come back
            log.warning("dead-letter queue %s refused the batch: %s", dead_letter_url, error)
            return 0
        for failure in answer.get("Failed", []):
            log.warning("dead-letter queue %s refused one event: %s", dead_letter_url, failure.get("Message"))
        sent = [dead[int(entry["Id"])][0] for entry in answer.get("Successful", [])]
        self.counters["events_dead_lettered"] += len(sent)
        return await self._delete(sqs, queue_url, sent)

    async def _delete(self, sqs: Any, queue_url: str, messages: list[_Message]) -> int:
        """Delete these messages from the event queue; returns how many went."""
        if not messages:
            return 0
        answer = await sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        for failure in answer.get("Failed", []):
            # It will be received again and followed again: harmless, the api is idempotent.
            log.warning("could not delete a message from %s: %s", queue_url, failure.get("Message"))
        deleted = len(answer.get("Successful", []))
        self.counters["events_deleted"] += deleted
        return deleted


def _unbound(event: _Event, bound: frozenset[str] | BaseException | None) -> bool:
    return event.via_sns and isinstance(bound, frozenset) and event.topic_arn not in bound


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep for ``seconds`` or until ``stopping`` is set, whichever comes first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
