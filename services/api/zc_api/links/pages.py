"""The pages an action link opens: server-rendered HTML (Jinja2, no JavaScript), readable
on a phone, usable with the keyboard, never cached or indexed, leaking no token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from zc_common.internal_api import CloudAccountMode, LeaseAction
from zc_common.messages import LeaseSnapshot

from zc_api.leases import actions
from zc_api.leases.policy import NEVER_EXPIRES
from zc_api.links.service import Done, Link, LinkRefused
from zc_api.policies.service import human_duration

_templates = Environment(
    loader=PackageLoader("zc_api.links", "templates"), autoescape=select_autoescape(default=True)
)

HEADERS = {
    "Cache-Control": "no-store",
    # The token is in the URL: no other site may learn it from a Referer.
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def _stamp(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _relative(moment: datetime, now: datetime) -> str:
    seconds = int((moment - now).total_seconds())
    if abs(seconds) < 60:
        return "now"
    # Round to what a person reads: minutes below two hours, hours below two days, else days.
    span = abs(seconds)
    unit = 60 if span < 7200 else 3600 if span < 2 * 86400 else 86400
    words = human_duration(span // unit * unit)
    return f"in {words}" if seconds > 0 else f"{words} ago"


def _expiry(lease: LeaseSnapshot, now: datetime) -> str:
    if lease.expires_at >= NEVER_EXPIRES:
        return "no end date"
    verb = "ends" if lease.expires_at > now else "ended"
    return f"{verb} {_stamp(lease.expires_at)} ({_relative(lease.expires_at, now)})"


def _page(template: str, status: int, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(template).render(**context), status_code=status, headers=HEADERS)


def confirmation(link: Link, *, now: datetime) -> HTMLResponse:
    """What the lease is and what the button will do."""
    record = link.record
    lease = record.snapshot()
    instance = lease.instance_name or lease.instance_id
    verb = "terminate" if record.policy.action_on_expiry == "terminate" else "stop"
    observe = lease.mode == CloudAccountMode.observe.value
    if link.action is LeaseAction.renew:
        until = actions.default_renewal(record, now=now)
        title, button, danger = f"Renew the lease of {instance}?", "Renew the lease", False
        effect = (f"The lease will end {_stamp(until)} ({_relative(until, now)}); "
                  "you will be reminded before then.")
    else:
        title, button, danger = f"Shut down {instance} now?", f"Shut down now ({verb})", not observe
        if observe:
            past = "stopped" if verb == "stop" else "terminated"
            effect = ("The lease ends now. This AWS account is in observe mode: ZeroCloud changes nothing in AWS, "
                      f"it only records that it would have {past} the instance.")
        elif verb == "terminate":
            effect = "The lease ends now and the instance is terminated within moments. This cannot be undone."
        else:
            effect = "The lease ends now and the instance is stopped within moments. You can start it again later."
    return _page(
        "confirm.html", 200, title=title, lease=lease, expiry=_expiry(lease, now), effect=effect, button=button,
        danger=danger, link_expires=_stamp(link.token.expires_at),
    )


def outcome(done: Done, *, now: datetime) -> HTMLResponse:
    lease = done.record.snapshot()
    instance = lease.instance_name or lease.instance_id
    if done.action is LeaseAction.renew:
        title, text = f"Renewed: {instance}", f"The lease now ends {_stamp(lease.expires_at)}."
    elif lease.mode == CloudAccountMode.observe.value:
        title = f"Lease ended: {instance}"
        text = "The lease has ended. This AWS account is in observe mode, so the instance keeps running."
    else:
        title = f"Shutting down: {instance}"
        verb = "terminated" if done.record.policy.action_on_expiry == "terminate" else "stopped"
        text = f"The lease has ended; the instance will be {verb} within moments."
    return _page("done.html", 200, title=title, outcome=text, lease=lease, expiry=_expiry(lease, now))


def refused(refusal: LinkRefused) -> HTMLResponse:
    return _page("refused.html", refusal.status, title=refusal.title, message=refusal.message)
