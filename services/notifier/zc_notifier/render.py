"""Turning one recipient's notices into a Mail: Jinja2 templates shipped in the package
(a layout, and a text and an HTML template per kind of notice)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import jinja2

from zc_common.internal_api import LeaseAction, LeaseRef, PeopleLink
from zc_common.messages import (
    ActionOnExpiry,
    BlastRadiusHalted,
    CloudAccountMode,
    InvitationCreated,
    LeaseSnapshot,
    LeasesPastTheirEnd,
)

from zc_notifier.mail import Mail
from zc_notifier.notices import Notice, NoticeKind
from zc_notifier.people import PersonalNotice

Links = Mapping[LeaseRef, Mapping[LeaseAction, str]]

# (one, several) for subjects and the digest's headline.
_HEADLINES: dict[NoticeKind, tuple[str, str]] = {
    NoticeKind.blast_radius: ("blast-radius alert", "blast-radius alerts"),
    NoticeKind.past_lease: ("daily list of instances past their lease", "daily lists of instances past their lease"),
    NoticeKind.warning: ("lease expiring soon", "leases expiring soon"),
    NoticeKind.observed: ("lease expired in observe mode", "leases expired in observe mode"),
    NoticeKind.reap_skipped: ("instance not shut down", "instances not shut down"),
    NoticeKind.reaped: ("instance shut down", "instances shut down"),
    NoticeKind.new_lease: ("new lease", "new leases"),
}



def in_words(delta_seconds: float) -> str:
    """A duration as people say it: '2 days 3 hours', '1 hour 5 minutes', '40 minutes'."""
    seconds = int(abs(delta_seconds))
    if seconds >= 60:
        # To the nearest minute: a warning sent 4 min 58 s before the end says "5 minutes".
        seconds = (seconds + 30) // 60 * 60
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60

    def unit(n: int, name: str) -> str:
        return f"{n} {name}{'' if n == 1 else 's'}"

    if days:
        return unit(days, "day") + (f" {unit(hours, 'hour')}" if hours else "")
    if hours:
        return unit(hours, "hour") + (f" {unit(minutes, 'minute')}" if minutes else "")
    if minutes:
        return unit(minutes, "minute")
    return "less than a minute"


def time_left(expires_at: datetime, now: datetime) -> str:
    delta = (expires_at - now).total_seconds()
    return f"{in_words(delta)} left" if delta > 0 else f"expired {in_words(delta)} ago"


def when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _one_line(text: str) -> str:
    """Tag values end up in headers and chat lines: no line breaks, no runaway length."""
    flat = " ".join(text.split())
    return flat if len(flat) <= 80 else flat[:79] + "…"


@dataclass(frozen=True)
class LeaseView:
    """A lease as a mail shows it."""

    lease: LeaseSnapshot
    label: str
    account: str
    instance_type: str
    expires: str
    time_left: str
    action: ActionOnExpiry
    action_done: str  # stopped | terminated
    observe: bool
    what_happens: str
    renew_url: str | None
    shutdown_url: str | None


@dataclass(frozen=True)
class PastLeaseView:
    """A lease in the daily digest of those past their end."""

    label: str
    account: str
    region: str
    owner: str
    ended: str  # "3 days ago"
    why: str
    per_day: str  # "$2.50 a day" or "price not known"


def money(usd: float) -> str:
    return f"${usd:,.2f}"


@dataclass(frozen=True)
class NoticeView:
    kind: str
    lease: LeaseView | None
    reason: str | None
    occurred: str
    notice: Notice
    past: tuple[PastLeaseView, ...] = ()
    past_per_day: str | None = None  # the known total, in words

    @property
    def halted(self) -> BlastRadiusHalted | None:
        return self.notice.halted

    @property
    def digest(self) -> LeasesPastTheirEnd | None:
        return self.notice.past

    @property
    def done(self) -> str:
        """What the reaper did, from the change's reason ('stopped' / 'terminated')."""
        reason = (self.reason or "").lower()
        if "terminat" in reason:
            return "terminated"
        if "stop" in reason:
            return "stopped"
        return self.lease.action_done if self.lease else "shut down"


def lease_view(lease: LeaseSnapshot, now: datetime, links: Mapping[LeaseAction, str]) -> LeaseView:
    name = _one_line(lease.instance_name) if lease.instance_name else None
    done = lease.action_on_expiry.done
    observe = lease.mode != CloudAccountMode.enforce
    if observe:
        what_happens = f"observe mode: nothing will be {done}"
    else:
        what_happens = f"the instance will be {done}"
    account = (
        f"{_one_line(lease.cloud_account_name)} ({lease.upstream_account_id})"
        if lease.cloud_account_name
        else lease.upstream_account_id
    )
    return LeaseView(
        lease=lease,
        label=f"{name} ({lease.instance_id})" if name else lease.instance_id,
        account=account,
        instance_type=lease.instance_type or "unknown type",
        expires=when(lease.expires_at),
        time_left=time_left(lease.expires_at, now),
        action=lease.action_on_expiry,
        action_done=done,
        observe=observe,
        what_happens=what_happens,
        renew_url=links.get(LeaseAction.renew),
        shutdown_url=links.get(LeaseAction.shutdown),
    )


class Renderer:
    def __init__(self, *, mail_from: str) -> None:
        self.mail_from = mail_from
        loader = jinja2.PackageLoader("zc_notifier", "templates")
        self.html = jinja2.Environment(
            loader=loader, autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
        )
        self.text = jinja2.Environment(
            loader=loader,
            autoescape=False,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )

    def render(self, recipient: str, notices: Sequence[Notice], links: Links, now: datetime) -> Mail:
        """One mail listing every notice, most urgent kinds first, soonest expiry first."""
        ordered = sorted(notices, key=_order)
        views = [self._view(notice, links, now) for notice in ordered]
        subject = self.subject(ordered, views)
        context = {
            "recipient": recipient,
            "subject": subject,
            "items": views,
            "headline": _headline(ordered),
            "generated": when(now),
        }
        return Mail(
            sender=self.mail_from,
            recipient=recipient,
            subject=subject,
            text=self.text.get_template("mail.txt").render(context),
            html=self.html.get_template("mail.html").render(context),
            keys=tuple(notice.key for notice in ordered),
            summary=tuple(_summary_line(view) for view in views),
        )

    def _view(self, notice: Notice, links: Links, now: datetime) -> NoticeView:
        lease = None
        if notice.lease is not None:
            ref = notice.lease_ref
            lease_links = links.get(ref, {}) if ref is not None and notice.wants_links else {}
            lease = lease_view(notice.lease, now, lease_links)
        past = tuple(
            PastLeaseView(
                label=view.label, account=view.account, region=item.lease.region,
                owner=item.lease.owner_email, ended=in_words((now - item.lease.expires_at).total_seconds()) + " ago",
                why=_one_line(item.why) if item.why else "no reason recorded",
                per_day=f"{money(item.usd_per_day)} a day" if item.usd_per_day is not None else "price not known",
            )
            for item in notice.past_items
            for view in [lease_view(item.lease, now, {})]
        )
        known = [item.usd_per_day for item in notice.past_items if item.usd_per_day is not None]
        return NoticeView(
            kind=notice.kind.value,
            lease=lease,
            reason=notice.reason,
            occurred=when(notice.occurred_at),
            notice=notice,
            past=past,
            past_per_day=(f"about {money(sum(known))} a day" + ("" if len(known) == len(past) else " (some prices not known)"))
            if known else None,
        )

    def personal(self, notice: PersonalNotice, link: PeopleLink, now: datetime) -> Mail:
        """An invitation or an address confirmation: a mail of its own with its one link."""
        message = notice.message
        context: dict[str, object] = {
            "recipient": notice.recipient,
            "url": link.url,
            "expires": when(link.expires_at),
            "time_left": time_left(link.expires_at, now),
            "generated": when(now),
        }
        if isinstance(message, InvitationCreated):
            template = "people/invitation"
            inviter = _one_line(message.invited_by_name or "") or None
            if inviter and message.invited_by_email:
                inviter = f"{inviter} ({message.invited_by_email})"
            inviter = inviter or message.invited_by_email or "An admin"
            account = _one_line(message.account_name)
            role = message.role.in_words
            subject = f"{inviter} invited you to join {account} on ZeroCloud as {role}"
            context.update(inviter=inviter, account=account, role=role)
        else:
            template = "people/email_confirmation"
            subject = "Confirm your address for ZeroCloud"
            context.update(name=_one_line(message.name or "") or None, email=notice.recipient)
        context["subject"] = subject
        return Mail(
            sender=self.mail_from,
            recipient=notice.recipient,
            subject=subject,
            text=self.text.get_template(f"{template}.txt").render(context),
            html=self.html.get_template(f"{template}.html").render(context),
            keys=(notice.key,),
        )

    def subject(self, notices: Sequence[Notice], views: Sequence[NoticeView]) -> str:
        if len(views) == 1:
            return "ZeroCloud: " + _single_subject(views[0])
        return "ZeroCloud: " + _headline(notices)


def _order(notice: Notice) -> tuple[int, datetime, str]:
    expires = notice.lease.expires_at if notice.lease else notice.occurred_at
    return (notice.kind.rank, expires, notice.lease.instance_id if notice.lease else "")


def _headline(notices: Sequence[Notice]) -> str:
    counts = Counter(notice.kind for notice in notices)
    parts = []
    for kind in sorted(counts, key=lambda k: k.rank):
        one, several = _HEADLINES[kind]
        parts.append(f"{counts[kind]} {one if counts[kind] == 1 else several}")
    return ", ".join(parts)


def _single_subject(view: NoticeView) -> str:
    lease = view.lease
    if view.kind == NoticeKind.blast_radius.value:
        halted = view.notice.halted
        assert halted is not None
        return f"reaping halted in AWS account {halted.upstream_account_id} (blast-radius cap)"
    if view.kind == NoticeKind.past_lease.value:
        count = len(view.past)
        cost = f", {view.past_per_day}" if view.past_per_day else ""
        return f"{count} instance{'' if count == 1 else 's'} running past {'its' if count == 1 else 'their'} lease{cost}"
    assert lease is not None
    if view.kind == NoticeKind.new_lease.value:
        return f"new lease on {lease.label}, expires {lease.expires}"
    if view.kind == NoticeKind.warning.value:
        return f"lease on {lease.label} expires in {lease.time_left.removesuffix(' left')}"
    if view.kind == NoticeKind.observed.value:
        return f"observe mode: {lease.label} would have been {lease.action_done}"
    if view.kind == NoticeKind.reap_skipped.value:
        return f"{lease.label} was not shut down"
    return f"{lease.label} was {view.done}"


def _summary_line(view: NoticeView) -> str:
    lease = view.lease
    if view.kind == NoticeKind.past_lease.value:
        return _single_subject(view)
    if lease is None:
        halted = view.notice.halted
        assert halted is not None
        return f"reaping halted in AWS account {halted.upstream_account_id}: {_one_line(halted.cap)}"
    line = f"{_single_subject(view)} — {lease.account}, {lease.lease.region}"
    if lease.renew_url:
        line += f" — renew: {lease.renew_url}"
    return line
