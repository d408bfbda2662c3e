"""The pages an action link opens, on the web UI's one layout and stylesheet (no
JavaScript): readable on a phone, usable with the keyboard, never cached or indexed, and
leaking no token — the token is in the URL, so no Referer ever leaves these pages."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request
from fastapi.responses import HTMLResponse

from zc_common.internal_api import LeaseAction
from zc_common.messages import CloudAccountMode, LeaseSnapshot

from zc_api.display import relative, stamp
from zc_api.leases import actions
from zc_api.leases.policy import NEVER_EXPIRES
from zc_api.links.service import Done, Link
from zc_api.single_use import LinkRefused
from zc_api.web import lease_text
from zc_api.web.render import page

# Stricter than the other pages: the token is in the URL, so no Referer at all; no robot
# may index or follow; the one form posts back here only.
HEADERS = {
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
}


def _expiry(lease: LeaseSnapshot, now: datetime) -> str:
    if lease.expires_at >= NEVER_EXPIRES:
        return "no end date"
    verb = "ends" if lease.expires_at > now else "ended"
    return f"{verb} {stamp(lease.expires_at)} ({relative(lease.expires_at, now)})"


def _page(request: Request, template: str, status: int, *, title: str, **context: object) -> HTMLResponse:
    # Nobody is signed in on these pages as far as they care: the link is the credential.
    return page(request, template, viewer=None, title=title, status=status, headers=HEADERS, **context)


def confirmation(request: Request, link: Link, *, now: datetime) -> HTMLResponse:
    """What the lease is and what the button will do."""
    record = link.record
    lease = record.snapshot()
    instance = lease.instance_name or lease.instance_id
    if link.action is LeaseAction.renew:
        until = actions.default_renewal(record, now=now)
        title, button, danger = f"Renew the lease of {instance}?", "Renew the lease", False
        effect = f"The lease will end {stamp(until)} ({relative(until, now)}); you will be reminded before then."
    else:
        shutdown = lease_text.shutdown_effect(record)
        title, button, danger, effect = shutdown.title, shutdown.button, shutdown.danger, shutdown.effect
    return _page(
        request, "action_link_confirm.html", 200, title=title, lease=lease, expiry=_expiry(lease, now),
        effect=effect, button=button, danger=danger, link_expires=stamp(link.token.expires_at),
    )


def outcome(request: Request, done: Done, *, now: datetime) -> HTMLResponse:
    lease = done.record.snapshot()
    instance = lease.instance_name or lease.instance_id
    if done.action is LeaseAction.renew:
        title, text = f"Renewed: {instance}", f"The lease now ends {stamp(lease.expires_at)}."
    elif lease.mode == CloudAccountMode.observe.value:
        title = f"Lease ended: {instance}"
        text = "The lease has ended. This AWS account is in observe mode, so the instance keeps running."
    else:
        title = f"Shutting down: {instance}"
        text = f"The lease has ended; the instance will be {done.record.policy.action_on_expiry.done} within moments."
    return _page(request, "action_link_done.html", 200, title=title, outcome=text, lease=lease,
                 expiry=_expiry(lease, now))


def refused(request: Request, refusal: LinkRefused) -> HTMLResponse:
    return _page(request, "action_link_refused.html", refusal.status_code, title=refusal.title, message=refusal.message)
