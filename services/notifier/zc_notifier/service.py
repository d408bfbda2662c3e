"""The notifier as a plain object: a batch of lease messages in, one mail per recipient
out (a digest when there are several notices), each notice delivered once per channel."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from zc_common.bus import Bus, PermanentFailure
from zc_common.bus.topology import NotifierMessage
from zc_common.internal_api import (
    InternalApi,
    InternalApiError,
    LeaseAction,
    LeaseRef,
    NoticeRecipient,
    WarningUndelivered,
)
from zc_common.messages import LeaseExpiringSoon, utcnow
from zc_common.service import ReadinessCheck
from zc_common.settings import NotifierSettings

from zc_notifier import warned
from zc_notifier.channels import Channel, RecipientRefused, SendFailed, build_channels
from zc_notifier.delivery import Delivery
from zc_notifier.mail import Mail
from zc_notifier.notices import (
    Notice,
    NoticeKind,
    as_warning,
    is_mail_address,
    late_warnings,
    notices_for,
    unique,
)
from zc_notifier.people import PersonalNotice, personal_notices
from zc_notifier.render import Renderer

log = logging.getLogger("zc.notifier")

# Mails in flight at once per batch: enough to clear a digest round quickly, few enough
# not to look like a flood to the mail server.
SEND_CONCURRENCY = 8
MARK_SENT_ATTEMPTS = 4


class DeliveryIncomplete(Exception):
    """Some mails of the batch did not go out; the bus hands their messages back."""


@dataclass(frozen=True)
class _Targets:
    """Where this batch's lease notices may go."""

    confirmed: set[tuple[int, str]]
    webhooks: dict[int, str]

    def reaches(self, channel: Channel, notice: Notice) -> bool:
        if channel.private:
            return (notice.account_id, notice.recipient) in self.confirmed
        if channel.per_account:
            return notice.account_id in self.webhooks
        return True  # the operator's webhook: every account's notices


@dataclass
class _Round:
    """What one batch sent and what it could not."""

    sent_keys: list[str] = field(default_factory=list)
    retryable: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    refused_keys: list[str] = field(default_factory=list)

    def raise_for(self, mails: int) -> None:
        """Raise for what did not go out: retried, or dead-lettered when refused for good."""
        if self.retryable:
            raise DeliveryIncomplete(f"{len(self.retryable)} of {mails} mails not delivered: {self.retryable[0]}")
        if self.refused:
            raise PermanentFailure(f"recipient refused: {'; '.join(self.refused)}")


class Notifier:
    def __init__(
        self,
        settings: NotifierSettings,
        api: InternalApi,
        channels: Sequence[Channel] | None = None,
        *,
        bus: Bus | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.api = api
        self.clock = clock
        self.renderer = Renderer(mail_from=settings.mail_from)
        self.bus = bus  # the one it consumes (handlers.py), for /readyz
        # Every warning waits through the digest window on purpose: not counted as late.
        self.batching = timedelta(seconds=settings.digest_window)
        self.deliveries = [
            Delivery(
                channel,
                attempts=settings.send_attempts,
                retry_delay=settings.send_retry_delay,
                cooldown=settings.redelivery_delay,
            )
            for channel in (build_channels(settings) if channels is None else channels)
        ]

    def readiness_checks(self) -> dict[str, ReadinessCheck]:
        """For /readyz: the bus it consumes, and each channel's server answering."""
        # An account's webhook is one of many servers, none of them ZeroCloud's to wait for.
        checks: dict[str, ReadinessCheck] = {
            delivery.name: delivery.channel.ready for delivery in self.deliveries if not delivery.channel.per_account
        }
        if self.bus is not None:
            checks = {"bus": self.bus.ping, **checks}
        return checks

    async def close(self) -> None:
        for delivery in self.deliveries:
            await delivery.channel.close()

    async def handle(self, messages: Sequence[NotifierMessage]) -> None:
        """Mail one batch. Returns once every notice of it is delivered and recorded as
        sent, the api told of the warnings that went out (or never can) and has moved the
        reap of those too late for their lead; raises (so the bus retries or dead-letters)
        when some could not be."""
        now = self.clock()
        found = unique(notice for message in messages for notice in notices_for(message, now, batching=self.batching))
        late = late_warnings(messages, now, batching=self.batching)
        notices = [notice for notice in found if is_mail_address(notice.recipient)]
        personal = personal_notices(messages)
        mailable = [notice for notice in personal if is_mail_address(notice.recipient)]
        everyone = {notice.recipient for notice in found} | {notice.recipient for notice in personal}
        unmailable = sorted(everyone - {n.recipient for n in notices} - {n.recipient for n in mailable})
        settled = [
            warned.undeliverable(notice, WarningUndelivered.not_a_mail_address, now=now)
            for notice in found if notice.kind is NoticeKind.warning and not is_mail_address(notice.recipient)
        ]
        # Lease mail, the api's warning records and people mail fail apart: one's trouble
        # does not hold the others.
        failure: Exception | None = None
        if notices:
            try:
                await self._mail(notices, settled, late)
            except Exception as error:  # noqa: BLE001 - raised below, after the rest had its go
                failure = error
        try:
            if settled:
                await warned.report(self.api, settled)
            if late:
                await warned.defer(self.api, late, now=now)
        except Exception as error:  # noqa: BLE001 - raised below, after the people mail had its go
            failure = failure or error
        if mailable:
            await self._mail_people(mailable)
        if failure is not None:
            raise failure
        if unmailable:
            # Nothing to retry: dead-lettered with the reason, for someone to fix the address.
            raise PermanentFailure(f"not a mail address: {', '.join(repr(a) for a in unmailable)}")

    async def _mail(
        self, notices: Sequence[Notice], settled: list[warned.Warned], late: list[LeaseExpiringSoon]
    ) -> None:
        """Lease notices: mail (to confirmed addresses only, with renew / shut-down links)
        and chat webhooks (the operator's and each account's own, never with links).
        Appends to ``settled`` the warnings that went out (or never can), once the mail
        server accepted them and they are marked sent; to ``late`` those the mail server
        accepted too late for their lead (slow tries): their reap must move all the same."""
        targets = await self._targets(notices)
        wanted = [(index, notice) for index, delivery in enumerate(self.deliveries)
                  for notice in notices if targets.reaches(delivery.channel, notice)]
        all_keys = [self.deliveries[index].key(notice.key) for index, notice in wanted]
        pending = set(await self.api.reserve_notifications(all_keys)) if all_keys else set()
        if len(pending) < len(all_keys):
            log.info("%d of %d notifications already sent; not sending them again",
                     len(all_keys) - len(pending), len(all_keys))
        earlier = set(all_keys) - pending
        work: dict[tuple[int, str, int | None], list[Notice]] = defaultdict(list)
        for index, notice in wanted:
            if self.deliveries[index].key(notice.key) in pending:
                work[(index, notice.recipient, notice.account_id)].append(notice)
        if not work:
            settled.extend(self._warnings_settled(notices, wanted, targets, earlier=earlier))
            return
        if not any(self.deliveries[index].breaker.allows() for index, _, _ in work):
            settled.extend(self._warnings_settled(notices, wanted, targets, earlier=earlier))
            # Every channel needed is presumed down: fail before minting links that would
            # go unused (after a failed batch the bus hands each message back alone).
            raise DeliveryIncomplete(f"{len(work)} mails held: {', '.join(d.name for d in self.deliveries)} down")
        # Links only for what goes to the owner's own mailbox: whoever reads a chat
        # channel could renew or shut down any lease posted there.
        links = await self._links(
            n for (index, _, _), group in work.items() if self.deliveries[index].channel.private for n in group
        )
        now = self.clock()
        mails = []
        for (index, recipient, account_id), group in work.items():
            channel = self.deliveries[index].channel
            mail = self.renderer.render(recipient, group, links if channel.private else {}, now)
            if channel.per_account:
                mail = replace(mail, destination=targets.webhooks[account_id] if account_id is not None else None)
            mails.append((self.deliveries[index], mail))
        outcome = await self._send_and_record(mails)
        now = self.clock()
        for item in self._warnings_settled(
            notices, wanted, targets, earlier=earlier, sent=set(outcome.sent_keys), refused=set(outcome.refused_keys),
        ):
            if item.reason == "in_time" and (warning := as_warning(item.notice)).too_late(now, batching=self.batching):
                late.append(warning)
            else:
                settled.append(item)
        outcome.raise_for(len(mails))

    def _warnings_settled(
        self,
        notices: Sequence[Notice],
        wanted: Sequence[tuple[int, Notice]],
        targets: _Targets,
        *,
        earlier: set[str],
        sent: frozenset[str] | set[str] = frozenset(),
        refused: frozenset[str] | set[str] = frozenset(),
    ) -> list[warned.Warned]:
        """The warnings of this batch that every channel they were for has settled: sent
        (``earlier``, or now) or refused for good. One still to be retried is not settled:
        the bus hands its message back. Delivered means mailed to the owner's own mailbox."""
        now = self.clock()
        keys: dict[str, list[tuple[Delivery, str]]] = defaultdict(list)
        for index, notice in wanted:
            keys[notice.key].append((self.deliveries[index], self.deliveries[index].key(notice.key)))
        done = earlier | sent | refused
        out: list[warned.Warned] = []
        for notice in notices:
            if notice.kind is not NoticeKind.warning:
                continue
            mine = keys.get(notice.key, [])
            if any(key not in done for _, key in mine):
                continue
            mailed = [key for delivery, key in mine if delivery.channel.private and key in earlier | sent]
            if mailed:
                out.append(warned.delivered(notice, now=now, again=not any(key in sent for key in mailed)))
            elif (notice.account_id, notice.recipient) not in targets.confirmed:
                out.append(warned.undeliverable(notice, WarningUndelivered.unconfirmed, now=now))
            elif any(key in refused for _, key in mine):
                out.append(warned.undeliverable(notice, WarningUndelivered.recipient_refused, now=now))
            else:
                out.append(warned.undeliverable(notice, WarningUndelivered.no_channel, now=now))
        return out

    async def _targets(self, notices: Sequence[Notice]) -> _Targets:
        """Ask the api which owners may be mailed and which accounts have a webhook."""
        asked = sorted(
            {(n.account_id, n.recipient) for n in notices if n.account_id is not None},
        )
        account_ids = sorted({account_id for account_id, _ in asked})
        wants_webhooks = any(delivery.channel.per_account for delivery in self.deliveries)
        answer = await self.api.notice_recipients(
            [NoticeRecipient(account_id=account_id, email=email) for account_id, email in asked],
            account_ids if wants_webhooks else [],
        )
        confirmed = {(r.account_id, r.email) for r in answer.confirmed}
        skipped = sorted({n.recipient for n in notices if (n.account_id, n.recipient) not in confirmed})
        if skipped:
            # Not retried: nothing is mailed to an address before its owner confirmed it.
            log.info("not mailing %d unconfirmed addresses: %s", len(skipped), ", ".join(skipped))
        return _Targets(confirmed=confirmed, webhooks={w.account_id: w.url for w in answer.webhooks})

    async def _deliver(self, mails: Sequence[tuple[Delivery, Mail]]) -> None:
        """Send, record what went out, and raise for what did not."""
        (await self._send_and_record(mails)).raise_for(len(mails))

    async def _send_and_record(self, mails: Sequence[tuple[Delivery, Mail]]) -> _Round:
        """Send, and record what went out."""
        outcome = await self._send_all(mails)
        if outcome.sent_keys:
            await self._mark_sent(outcome.sent_keys)
        return outcome

    async def _mail_people(self, notices: Sequence[PersonalNotice]) -> None:
        """Invitations and address confirmations: one mail each, through the channels that
        reach the recipient alone, with a link the api mints now. When the api says there
        is nothing to mail any more (revoked, accepted, already confirmed) the mail is
        skipped, not retried."""
        deliveries = [delivery for delivery in self.deliveries if delivery.channel.private]
        if not deliveries:
            log.error("no private channel to send %d invitation / confirmation mails through", len(notices))
            return
        keys = [delivery.key(notice.key) for delivery in deliveries for notice in notices]
        pending = set(await self.api.reserve_notifications(keys))
        if len(pending) < len(keys):
            log.info("%d of %d people mails already sent; not sending them again", len(keys) - len(pending), len(keys))
        work = [
            (notice, wanted)
            for notice in notices
            if (wanted := [delivery for delivery in deliveries if delivery.key(notice.key) in pending])
        ]
        if not work:
            return
        if not any(delivery.breaker.allows() for _, wanted in work for delivery in wanted):
            # Minting an invitation's link replaces the previous one: not for a mail that cannot go.
            raise DeliveryIncomplete(f"{len(work)} people mails held: {', '.join(d.name for d in deliveries)} down")
        mails: list[tuple[Delivery, Mail]] = []
        for notice, wanted in work:
            link = await self.api.people_link(notice.link_kind, notice.subject_id)
            if link is None:
                log.info("%s mail to %s skipped: the api has nothing to mail any more for %s %d",
                         notice.link_kind.value, notice.recipient, notice.link_kind.value, notice.subject_id)
                continue
            mail = self.renderer.personal(notice, link, self.clock())
            mails.extend((delivery, mail) for delivery in wanted)
        if mails:
            await self._deliver(mails)

    async def _links(self, notices: Iterable[Notice]) -> Mapping[LeaseRef, Mapping[LeaseAction, str]]:
        """Renew / shut down links for every still-live lease of the batch: one api call.
        An api that refuses the request (4xx: it will refuse it again) costs the links,
        not the mail; an api that is down fails the batch, which the bus retries."""
        refs = list(dict.fromkeys(n.lease_ref for n in notices if n.wants_links and n.lease_ref))
        if not refs:
            return {}
        try:
            answered = await self.api.action_links(refs)
        except InternalApiError as error:
            if not _refused(error):
                raise
            log.error("the api refused action links for %d leases; mailing without them: %s", len(refs), error)
            return {}
        return {LeaseRef(lease_id=a.lease_id, version=a.version): a.links for a in answered}

    async def _send_all(self, mails: Sequence[tuple[Delivery, Mail]]) -> _Round:
        outcome = _Round()
        gate = asyncio.Semaphore(SEND_CONCURRENCY)

        async def send(delivery: Delivery, mail: Mail) -> None:
            async with gate:
                try:
                    await delivery.send(mail)
                except RecipientRefused as error:
                    log.error("%s refused %s for good: %s", delivery.name, mail.recipient, error)
                    outcome.refused.append(str(error))
                    outcome.refused_keys.extend(delivery.key(key) for key in mail.keys)
                    return
                except SendFailed as error:
                    outcome.retryable.append(str(error))
                    return
            outcome.sent_keys.extend(delivery.key(key) for key in mail.keys)
            log.info("%s: sent %r to %s (%d notices)", delivery.name, mail.subject, mail.recipient, len(mail.keys))

        await asyncio.gather(*(send(delivery, mail) for delivery, mail in mails))
        return outcome

    async def _mark_sent(self, keys: list[str]) -> None:
        """Record what went out; if the api cannot be told, those mails may go again."""
        for attempt in range(1, MARK_SENT_ATTEMPTS + 1):
            try:
                await self.api.notifications_sent(keys)
                return
            except Exception as error:  # noqa: BLE001 - any failure: try again, then give up loudly
                if attempt == MARK_SENT_ATTEMPTS:
                    log.error("could not record %d sent notifications (%s); they may be sent again",
                              len(keys), error)
                    raise
                await asyncio.sleep(self.settings.send_retry_delay * 2 ** (attempt - 1))


def _refused(error: InternalApiError) -> bool:
    """Whether the api answered 4xx: it will refuse the same request again."""
    return error.status_code is not None and 400 <= error.status_code < 500
