"""The single-use-link module every mailed link goes through (action links, invitations,
email confirmations): what is stored is only the token's hash; a link is refused as
unknown (forged, altered, malformed), used, revoked or expired, with one error of the
ZeroCloudError family; and of two uses racing exactly one wins."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import col

from zc_common.errors import ZeroCloudError
from zc_common.messages import utcnow

from tests.api.factories import Api, Tenant
from zc_api import single_use
from zc_api.confirmations import service as confirmations
from zc_api.database import transaction
from zc_api.invitations import service as invitations
from zc_api.models import EmailConfirmation, Invitation
from zc_api.single_use import LinkRefused, Refusal

LINKS = confirmations.LINKS


async def issued(api: Api, tenant: Tenant, *, expires_in: timedelta = timedelta(hours=1)) -> str:
    """A new confirmation link's token for the tenant's developer, its hash stored."""
    minted = single_use.mint()
    async with transaction(api.sessions) as session:
        session.add(EmailConfirmation(
            token_hash=minted.token_hash, user_id=tenant.dev.user_id, email=tenant.dev.email,
            expires_at=utcnow() + expires_in,
        ))
    return minted.token


async def use(api: Api, token: str) -> EmailConfirmation:
    async with transaction(api.sessions) as session:
        row = await LINKS.open(session, token, now=utcnow(), lock=True)
        LINKS.spend(row, now=utcnow())
    return row


async def refusal(api: Api, token: str, *, lock: bool = False) -> LinkRefused:
    async with transaction(api.sessions) as session:
        with pytest.raises(LinkRefused) as refused:
            await LINKS.open(session, token, now=utcnow(), lock=lock)
    return refused.value


def test_a_minted_token_is_random_and_only_its_hash_is_kept() -> None:
    first, second = single_use.mint(), single_use.mint()

    assert first.token != second.token and single_use.well_formed(first.token)
    assert first.token_hash == hashlib.sha256(first.token.encode()).hexdigest() == single_use.digest(first.token)
    assert first.token not in first.token_hash
    # The shape every link ever mailed has (so a link already in a mailbox still opens).
    assert single_use.well_formed(secrets.token_urlsafe(32))
    assert not single_use.well_formed("not-a-token") and not single_use.well_formed("x" * 500)


async def test_a_link_works_once_then_is_refused_as_used(api: Api, tenant: Tenant) -> None:
    token = await issued(api, tenant)

    used = await use(api, token)
    again = await refusal(api, token, lock=True)

    assert used.used_at is not None
    assert again.reason is Refusal.used and again.status_code == 410
    assert isinstance(again, ZeroCloudError) and "already used" in again.title
    async with transaction(api.sessions) as session:
        stored = await session.scalar(select(EmailConfirmation).where(col(EmailConfirmation.id) == used.id))
    assert stored is not None and stored.used_at == used.used_at, "the second use changed nothing"


async def test_unknown_forged_and_malformed_links_are_refused_as_unknown(api: Api, tenant: Tenant) -> None:
    real = await issued(api, tenant)
    altered = real[:-1] + ("A" if real[-1] != "A" else "B")

    for token in (secrets.token_urlsafe(32), altered, "not-a-token", "x" * 500, ""):
        refused = await refusal(api, token)
        assert (refused.reason, refused.status_code) == (Refusal.unknown, 404), token
        assert "not valid" in refused.title
    assert (await use(api, real)).used_at is not None, "the real one still works"


async def test_an_expired_link_is_refused_and_stays_unused(api: Api, tenant: Tenant) -> None:
    token = await issued(api, tenant, expires_in=-timedelta(seconds=1))

    refused = await refusal(api, token, lock=True)

    assert (refused.reason, refused.status_code) == (Refusal.expired, 410) and "expired" in refused.title
    async with transaction(api.sessions) as session:
        row = await LINKS.find(session, token)
    assert row is not None and row.used_at is None


async def test_a_withdrawn_invitation_is_refused_as_revoked_before_it_expires(api: Api, tenant: Tenant) -> None:
    minted = single_use.mint()
    async with transaction(api.sessions) as session:
        session.add(Invitation(
            account_id=tenant.account_id, email="someone@bigdb.example", token_hash=minted.token_hash,
            expires_at=utcnow() - timedelta(seconds=1),
        ))
    async with transaction(api.sessions) as session:
        await session.execute(
            update(Invitation).where(col(Invitation.token_hash) == minted.token_hash).values(revoked_at=utcnow())
        )
        with pytest.raises(LinkRefused) as refused:
            await invitations.LINKS.open(session, minted.token, now=utcnow())

    assert (refused.value.reason, refused.value.status_code) == (Refusal.revoked, 410)


async def test_of_two_uses_at_once_the_second_waits_and_is_refused(api: Api, tenant: Tenant) -> None:
    """The once-only guarantee: the first use holds the row until it commits; the second,
    reading it only then, sees it used. Without the lock both would see it unused."""
    token = await issued(api, tenant)
    async with transaction(api.sessions) as first:
        row = await LINKS.open(first, token, now=utcnow(), lock=True)
        second = asyncio.create_task(refusal(api, token, lock=True))
        await asyncio.sleep(0.5)
        assert not second.done(), "the second use did not wait for the first"
        LINKS.spend(row, now=utcnow())

    refused = await asyncio.wait_for(second, timeout=10)

    assert refused.reason is Refusal.used


async def test_of_many_uses_racing_exactly_one_wins(api: Api, tenant: Tenant) -> None:
    token = await issued(api, tenant)

    outcomes = await asyncio.gather(*(use(api, token) for _ in range(5)), return_exceptions=True)

    won = [o for o in outcomes if isinstance(o, EmailConfirmation)]
    lost = [o for o in outcomes if isinstance(o, LinkRefused)]
    assert len(won) == 1 and len(lost) == 4, outcomes
    assert {refused.reason for refused in lost} == {Refusal.used}
