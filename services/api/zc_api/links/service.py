"""Action links: single-use, expiring tokens that let a lease's owner renew it or shut it
down from a mail. Each is bound to one lease, one version of it and one action, and
stored only as its SHA-256. Looking at a link changes nothing (mail scanners follow
links); only using it (a POST) acts, once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import Conflict, InvalidInput
from zc_common.internal_api import ActionLinks, LeaseAction, LeaseRef
from zc_common.messages import LeaseStatus, utcnow

from zc_api import single_use
from zc_api.display import stamp as _stamp
from zc_api.leases import actions, repository
from zc_api.leases.repository import LeaseRecord
from zc_api.models import ActionToken, Lease
from zc_api.single_use import Refusal

MAX_LEASES = 10_000

# Which actions a lease in each status can still take.
_ALLOWED = {LeaseAction.renew: actions.RENEWABLE, LeaseAction.shutdown: actions.ADJUSTABLE}
_DOING = {LeaseAction.renew: "renewed", LeaseAction.shutdown: "shut down"}

# The one kind of link a lease's owner is mailed: refusals past the token are the lease's.
LINKS = single_use.Kind(
    ActionToken, path="/a", words={
        Refusal.unknown: (
            "This link is not valid",
            "ZeroCloud never issued this link: it may have been mistyped or cut short by the mail program. "
            "Nothing was changed. Open the link from the mail again, or use the newest mail about this instance.",
        ),
        Refusal.used: (
            "This link was already used",
            "It was used on {row.used_at:%Y-%m-%d %H:%M} UTC, and each link works once. Nothing was changed this time.",
        ),
        Refusal.expired: (
            "This link has expired",
            "It stopped working on {row.expires_at:%Y-%m-%d %H:%M} UTC. Nothing was changed. Use the link in a newer "
            "mail, or `zerocloud-cli lease renew` / `lease shutdown`.",
        ),
        Refusal.superseded: (
            "This lease changed since the mail was sent",
            "Someone renewed, shut down or otherwise changed it after this link was made, so the link no longer "
            "applies.{now_is} Nothing was changed. Use the links in the newest mail.",
        ),
        Refusal.not_allowed: ("This can no longer be done", "{error}. Nothing was changed."),
    },
)


@dataclass
class Link:
    """A usable link: the token row and the lease it acts on."""

    token: ActionToken
    record: LeaseRecord

    @property
    def action(self) -> LeaseAction:
        return LeaseAction(self.token.action)


@dataclass(frozen=True)
class Done:
    """What a used link did."""

    action: LeaseAction
    record: LeaseRecord


# --- minting --------------------------------------------------------------------------


async def mint(
    session: AsyncSession,
    *,
    refs: list[LeaseRef],
    wanted: list[LeaseAction],
    public_url: str,
    ttl_seconds: int,
    now: datetime | None = None,
) -> list[ActionLinks]:
    """One new token per (lease, version, action) asked for, for the leases still at that
    version; an action the lease's status no longer allows (a reaped lease cannot be
    renewed) gets no link, and neither does a lease that changed since."""
    now = now or utcnow()
    unique = list(dict.fromkeys(refs))
    if len(unique) > MAX_LEASES:
        raise InvalidInput(f"at most {MAX_LEASES} leases per call; send several", field="leases")
    ids = sorted({ref.lease_id for ref in unique})
    current = {
        row.id: (row.version, LeaseStatus(row.status))
        for row in (
            await session.execute(select(col(Lease.id), col(Lease.version), col(Lease.status)).where(col(Lease.id).in_(ids)))
        ).all()
    } if ids else {}
    expires_at = now + timedelta(seconds=ttl_seconds)
    answer: list[ActionLinks] = []
    for ref in unique:
        version, status = current.get(ref.lease_id, (None, None))
        if version != ref.version or status is None:
            continue
        links: dict[LeaseAction, str] = {}
        for action in dict.fromkeys(wanted):
            if status not in _ALLOWED[action]:
                continue
            minted = single_use.mint()
            session.add(
                ActionToken(
                    token_hash=minted.token_hash, lease_id=ref.lease_id, lease_version=ref.version,
                    action=action, expires_at=expires_at,
                )
            )
            links[action] = LINKS.url(public_url, minted.token)
        if links:
            answer.append(ActionLinks(lease_id=ref.lease_id, version=ref.version, links=links))
    await session.flush()
    return answer


# --- checking and using ---------------------------------------------------------------


async def _find(session: AsyncSession, token: str, *, lock: bool, now: datetime) -> Link:
    """The link ``token`` names, if it can still be used now; else LinkRefused saying why:
    the token's (unknown, used, expired) or the lease's (superseded, not allowed)."""
    row = await LINKS.open(session, token, now=now, lock=lock)
    records = await repository.load(session, [row.lease_id], lock=lock)
    record = records.get(row.lease_id)
    if record is None or record.lease.version != row.lease_version:
        now_is = f" It is now {record.lease.status}, until {_stamp(record.lease.expires_at)}." if record else ""
        raise LINKS.refuse(Refusal.superseded, now_is=now_is)
    action = LeaseAction(row.action)
    try:
        actions.require_status(record, _ALLOWED[action], _DOING[action])
    except Conflict as error:
        raise LINKS.refuse(Refusal.not_allowed, error=error.message) from None
    return Link(token=row, record=record)


async def inspect(session: AsyncSession, *, token: str, now: datetime | None = None) -> Link:
    """What a link would do, for the confirmation page. Reads only: GET never changes anything."""
    return await _find(session, token, lock=False, now=now or utcnow())


async def use(session: AsyncSession, *, token: str, now: datetime | None = None) -> Done:
    """Act on the link, as the lease's owner, and spend it, in one transaction."""
    now = now or utcnow()
    link = await _find(session, token, lock=True, now=now)
    record, lease = link.record, link.record.lease
    actor = f"user:{lease.owner_user_id}" if lease.owner_user_id is not None else f"owner:{lease.owner_email}"
    LINKS.spend(link.token, now=now)
    if link.action is LeaseAction.renew:
        await actions.renewed(
            session, record, expires_at=actions.default_renewal(record, now=now), actor=actor, now=now,
            via="action_link", token_id=link.token.id,
        )
    else:
        await actions.shut_down(
            session, record, actor=actor, now=now, via="action_link", token_id=link.token.id,
            reason=f"shut down by {lease.owner_email} from the mailed link",
        )
    return Done(action=link.action, record=record)
