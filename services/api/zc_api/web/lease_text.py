"""What pages say about a lease's actions — what shutting it down will do, what a renewal
or a shutdown did — in one place, so the web UI and the emailed links say the same."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from zc_common.messages import ActionOnExpiry, CloudAccountMode

from zc_api.display import instance_label, relative, stamp
from zc_api.leases.repository import LeaseRecord


def _observed(record: LeaseRecord) -> bool:
    return record.cloud_account.mode == CloudAccountMode.observe


def _verb(record: LeaseRecord) -> ActionOnExpiry:
    return record.policy.action_on_expiry


@dataclass(frozen=True)
class ShutdownEffect:
    title: str
    button: str
    effect: str
    danger: bool


def shutdown_effect(record: LeaseRecord) -> ShutdownEffect:
    """What the shut-down button will do to this lease's instance."""
    instance = record.resource.name or record.resource.instance_id
    verb = _verb(record)
    if _observed(record):
        effect = ("The lease ends now. This AWS account is in observe mode: ZeroCloud changes nothing in AWS, "
                  f"it only records that it would have {verb.done} the instance.")
    elif verb == ActionOnExpiry.terminate:
        effect = "The lease ends now and the instance is terminated within moments. This cannot be undone."
    else:
        effect = "The lease ends now and the instance is stopped within moments. You can start it again later."
    return ShutdownEffect(
        title=f"Shut down {instance} now?", button=f"Shut down now ({verb})", effect=effect,
        danger=not _observed(record),
    )


def renewed(record: LeaseRecord, now: datetime) -> str:
    expires = record.lease.expires_at
    return f"Renewed {instance_label(record)} until {stamp(expires)} ({relative(expires, now)})."


def shut_down(record: LeaseRecord) -> str:
    instance = instance_label(record)
    if _observed(record):
        return (f"The lease of {instance} has ended. This AWS account is in observe mode, so the instance keeps "
                "running; ZeroCloud records what it would have done.")
    verb = "terminated" if _verb(record) == "terminate" else "stopped"
    return f"Shutting down {instance}: the lease has ended and the instance will be {verb} within moments."
