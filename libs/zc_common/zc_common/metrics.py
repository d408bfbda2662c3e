"""The metrics every service exports on /metrics (Prometheus text format).

Each metric is created here, once, at import: the embedded sandbox runs all five
services in one process, and a metric registered twice is an error. Where several
services could count the same thing the labels tell them apart (a bus queue is named
after the service consuming it). A service's own metrics live here too so that its
name and help text are in one place; the api's lease gauge, which needs the database,
lives in the api."""

from __future__ import annotations

import weakref
from collections import Counter as Tally
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

__all__ = [
    "AWS_CALLS",
    "CONTENT_TYPE_LATEST",
    "DEAD_LETTERS",
    "KEPT_COUNTS",
    "MAILS",
    "MESSAGES_CONSUMED",
    "MESSAGES_PUBLISHED",
    "TIMER_LAG",
    "WARNINGS",
    "WARNING_DEFERRALS",
    "WARNING_REPORTS",
    "exposition",
]

# A *_created series beside every counter doubles a scrape for a value nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

# --- the bus (both transports count through zc_common.bus.base) ------------------------

MESSAGES_CONSUMED = Counter(
    "zc_bus_messages_consumed",
    "Messages a consumer settled, by queue (the consuming service), message type and outcome: "
    "ok (handled and acknowledged), retried (handed back for another attempt) or dead_lettered.",
    ["queue", "type", "outcome"],
)
MESSAGES_PUBLISHED = Counter(
    "zc_bus_messages_published",
    "Messages the broker confirmed (accepted) on publish, by message type.",
    ["type"],
)
DEAD_LETTERS = Counter(
    "zc_bus_dead_letters",
    "Messages dead-lettered, by queue and reason: undecodable (the body is not a valid message), "
    "permanent (the handler said it can never succeed) or exhausted (every attempt failed).",
    ["queue", "reason"],
)

# --- AWS (every call through zc_common.aws.AwsAccess) -----------------------------------

AWS_CALLS = Counter(
    "zc_aws_calls",
    "AWS API calls made through AwsAccess, by AWS service, operation and outcome: ok, the AWS "
    "error code, or the exception's name when no answer came (after botocore's retries).",
    ["service", "operation", "outcome"],
)

# --- the scheduler -----------------------------------------------------------------------

TIMER_LAG = Histogram(
    "zc_scheduler_timer_lag_seconds",
    "Seconds from a timer's due time until it fired (its message confirmed by the broker and "
    "the timer committed), by timer kind.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0),
)

# --- the notifier ------------------------------------------------------------------------

MAILS = Counter(
    "zc_notifier_mails",
    "Mails handed to a delivery channel, by channel (smtp, ses, webhook) and outcome: ok, or "
    "failed (every try failed, the channel was presumed down, or the recipient was refused).",
    ["channel", "outcome"],
)

WARNINGS = Counter(
    "zc_notifier_warnings",
    "Lease warnings (LeaseExpiringSoon) by what became of them. outcome delivered: mailed and "
    "reported to the api (reason in_time, or redelivered: mailed earlier, reported again); "
    "settled: can never reach the owner, reported so the reap is not held (reason unconfirmed, "
    "not_a_mail_address, recipient_refused, no_channel); deferred: too late for its lead, the "
    "api moved the reap (reason late); dropped: too late and nothing to move (reason superseded, "
    "not_active, no_warning, unknown).",
    ["outcome", "reason"],
)

# --- the api ------------------------------------------------------------------------------

WARNING_DEFERRALS = Counter(
    "zc_api_warning_deferrals",
    "Reaps moved so that a lease's warning still precedes it by its lead, by reason: late_warning "
    "(the notifier could not send it in time) or warning_pending (the reaper's claim found the last "
    "warning of the version not delivered).",
    ["reason"],
)
WARNING_REPORTS = Counter(
    "zc_api_warning_reports",
    "Warnings the notifier reported, by outcome: delivered or settled (the last warning of the "
    "version, now on record: the claim may go ahead), or ignored (an earlier warning, a repeat, or a "
    "version that moved on).",
    ["outcome"],
)


# --- counts a service keeps itself ---------------------------------------------------------


class KeptCounts:
    """Exports the named counts a service keeps in a ``collections.Counter`` (the ingestor's
    and the scheduler's, which their tests read too) as ``zc_<service>_<name>_total``,
    summed over that service's live instances in the process. Read at scrape time."""

    HELP: dict[str, dict[str, str]] = {
        "ingestor": {
            "events_received": "Events received from the SQS event queues.",
            "events_unusable": "Events that could not be read as an EC2 event (dead-lettered).",
            "events_not_onboarded": "Events naming a cloud account or region that is not onboarded.",
            "events_left": "Events left on their queue for a later retry (AWS or the api failed).",
            "events_dead_lettered": "Events sent to the event dead-letter queue with their reason.",
            "events_dropped": "Unusable events deleted because no dead-letter queue is configured.",
            "events_deleted": "Events deleted from their queue once their changes were published.",
            "changes_published": "ResourceChange messages published (from events and sweeps).",
            "poll_errors": "Failed polls of an event queue (polling resumes after a pause).",
            "sweeps": "Inventory sweeps run.",
            "sweep_failures": "(cloud account, region) pairs a sweep could not list.",
        },
        "scheduler": {
            "leases_advanced": "Lease schedules stored (a version newer than any seen).",
            "leases_stale": "Lease schedules ignored because a newer version was already stored.",
            "timers_stored": "Timers stored.",
            "timers_cancelled": "Timers replaced by a newer schedule of their lease.",
            "timers_undecodable": "Timers dropped because their stored message could not be read.",
            "fired_warning": "Warning timers fired (LeaseExpiringSoon).",
            "fired_expiry": "Expiry timers fired (LeaseExpired).",
            "fired_sweep": "Sweep timers fired (SweepRequested).",
        },
    }

    def __init__(self) -> None:
        self._tracked: list[tuple[str, weakref.ref[Tally[str]]]] = []

    def track(self, service: str, counts: Tally[str]) -> None:
        """Export ``counts`` for as long as it lives (no reference is kept)."""
        self._tracked.append((service, weakref.ref(counts)))

    def collect(self) -> Iterator[Metric]:
        totals: dict[str, Tally[str]] = {}
        alive: list[tuple[str, weakref.ref[Tally[str]]]] = []
        for service, ref in self._tracked:
            counts = ref()
            if counts is None:
                continue
            alive.append((service, ref))
            totals.setdefault(service, Tally()).update(counts)
        self._tracked = alive
        for service, counts in sorted(totals.items()):
            known = self.HELP.get(service, {})
            for name in sorted(set(known) | set(counts)):
                help_text = known.get(name, f"The {service}'s count of {name.replace('_', ' ')}.")
                yield CounterMetricFamily(f"zc_{service}_{name}", help_text, value=counts.get(name, 0))


KEPT_COUNTS = KeptCounts()
REGISTRY.register(KEPT_COUNTS)


def exposition() -> bytes:
    """Every metric of the process in Prometheus's text format."""
    return generate_latest(REGISTRY)
