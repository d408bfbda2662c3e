"""Who may sign in with GitHub, and as which ZeroCloud user: the sign-up rules as plain
functions over the session. Every outcome, admitted or refused, is in the audit log.

In order: a returning person (known GitHub id) signs in; a person an admin added (no
GitHub id yet, an email GitHub verified) is linked; an invitation (carried by the
sign-in, or pending for one of their verified emails) joins its account; the first
person on a fresh installation becomes the admin of a new account; an email matching
an account's allowed patterns joins the oldest such account as a developer (email to be
confirmed); everyone else is refused with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.messages import LIVE_LEASE_STATUSES, Role

from zc_api.accounts import service as accounts
from zc_api.audit import service as audit
from zc_api.auth.github import GitHubIdentity
from zc_api.auth.principal import Principal
from zc_api.confirmations import service as confirmations
from zc_api.invitations import service as invitations
from zc_api.leases.policy import pattern_candidates
from zc_api.models import (
    Account,
    AccountPolicy,
    ApiToken,
    Invitation,
    JoinedHow,
    Lease,
    RemovedUser,
    User,
    UserPolicy,
)
from zc_api.single_use import LinkRefused

# Serialises "is this installation fresh?" so two first sign-ins make one account.
_FIRST_ADMIN_LOCK = 0x7A63_0005


@dataclass(frozen=True)
class Admission:
    """Who signed in, and by which rule."""

    user: User
    how: str
    """returning | linked | invited | first_admin | allowed_email | bootstrap_admin"""


class SignUpRefused(Exception):
    """Not admitted; ``message`` says why, for the person's page and the audit log."""

    def __init__(self, message: str, *, status_code: int = 403) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def not_invited(identity: GitHubIdentity) -> str:
    message = (
        f"{identity.email} is not invited to any ZeroCloud account and matches no account's allowed email "
        "addresses. Ask your ZeroCloud admin for an invitation."
    )
    others = identity.verified_emails[1:]
    if others:
        message += f" (Your other verified GitHub addresses, {', '.join(others)}, match none either.)"
    return message


async def admit(
    session: AsyncSession, *, identity: GitHubIdentity, invitation_id: int | None, now: datetime
) -> Admission:
    """The user this GitHub identity signs in as, made or linked by the rules; raises
    ``SignUpRefused``. A refusal changes nothing but the audit log (its work is undone in
    a savepoint), so the caller's transaction can still commit what it did before."""
    try:
        async with session.begin_nested():
            return await _admit(session, identity=identity, invitation_id=invitation_id, now=now)
    except SignUpRefused as refusal:
        _record_refusal(session, identity, refusal)
        raise
    except IntegrityError:
        # A concurrent sign-in or admin change took the same email or GitHub login first.
        collided = SignUpRefused(
            "Your sign-in collided with another change to the same ZeroCloud user (the same email or GitHub "
            "login at the same moment). Start the sign-in again.",
            status_code=409,
        )
        _record_refusal(session, identity, collided)
        raise collided from None


async def _admit(
    session: AsyncSession, *, identity: GitHubIdentity, invitation_id: int | None, now: datetime
) -> Admission:
    # A person following an account's invitation link chose that account: a user another
    # account listed under their address (any admin may add any address) does not claim them.
    invited_to = (
        await session.scalar(select(col(Invitation.account_id)).where(col(Invitation.id) == invitation_id))
        if invitation_id is not None else None
    )
    user, how = await _known_user(session, identity, invited_to=invited_to)
    if user is not None and user.account_id is not None:
        if invitation_id is not None and invited_to not in (None, user.account_id) and await _movable(session, user):
            user = await _move_by_invitation(session, user, await _carried_invitation(session, invitation_id, now),
                                             identity, now)
            _signed_in(session, user, "invited", identity)
            return Admission(user, "invited")
        _signed_in(session, user, how, identity, ignored_invitation_id=invitation_id)
        return Admission(user, how)

    invitation = await _carried_invitation(session, invitation_id, now) if invitation_id is not None else None
    if invitation is None:
        invitation = await _invitation_for(session, identity.verified_emails, now)
    if invitation is not None:
        user = await _join_by_invitation(session, user, invitation, identity, now)
        _signed_in(session, user, "invited", identity)
        return Admission(user, "invited")

    if await _fresh_installation(session):
        user = await _first_admin(session, user, identity, now)
        _signed_in(session, user, "first_admin", identity)
        return Admission(user, "first_admin")

    if user is not None:
        if user.role != "admin":
            raise SignUpRefused(not_invited(identity))
        # An admin not yet in an account (bootstrapped, or made by `zerocloud-api create-admin`):
        # signed in, to create their account.
        _signed_in(session, user, "bootstrap_admin", identity)
        return Admission(user, "bootstrap_admin")

    user = await _join_by_allowed_email(session, identity, now)
    _signed_in(session, user, "allowed_email", identity)
    return Admission(user, "allowed_email")


# --- who they already are ---------------------------------------------------------------


async def _known_user(
    session: AsyncSession, identity: GitHubIdentity, *, invited_to: int | None = None
) -> tuple[User | None, str]:
    """(a) the user with this GitHub id, refreshed; else (c) a user an admin added with one of
    the identity's verified emails and no GitHub id yet, linked (with ``invited_to``, the
    account of the invitation the sign-in carries, only one of that account or of none)."""
    user = await session.scalar(
        select(User).where(col(User.github_id) == identity.github_id).with_for_update()
    )
    if user is not None:
        await _take_github_identity(session, user, identity)
        return user, "returning"
    unlinked = select(User).where(col(User.github_id).is_(None), col(User.email).in_(identity.verified_emails))
    if invited_to is not None:
        unlinked = unlinked.where(or_(col(User.account_id).is_(None), col(User.account_id) == invited_to))
    candidates = (
        await session.scalars(
            unlinked
            # In an account before not; then the longest-standing.
            .order_by(col(User.account_id).is_(None), col(User.id))
            .with_for_update()
        )
    ).all()
    if not candidates:
        return None, ""
    user = candidates[0]
    await _take_github_identity(session, user, identity)
    audit.record(
        session, account_id=user.account_id, actor=_actor(user), action="user.github_linked", subject_type="user",
        subject_id=user.id, email=user.email, github_login=identity.login, github_id=identity.github_id,
    )
    return user, "linked"


async def _take_github_identity(session: AsyncSession, user: User, identity: GitHubIdentity) -> None:
    """Give ``user`` the GitHub id, login and name. A GitHub login can be renamed and then
    taken by someone else: whoever else still holds it here loses it (GitHub's word wins)."""
    if user.id is None:
        await session.flush()  # a new user: its id, to tell it from the other holders
    holders = (
        await session.scalars(
            select(User).where(
                func.lower(col(User.github_login)) == identity.login.lower(), col(User.id) != user.id
            )
        )
    ).all()
    for holder in holders:
        holder.github_login = None
        audit.record(
            session, account_id=holder.account_id, actor=f"github:{identity.login}",
            action="user.github_login_released", subject_type="user", subject_id=holder.id,
            reason=f"GitHub login {identity.login} now belongs to GitHub user {identity.github_id}",
        )
    if holders:
        await session.flush()
    user.github_id = identity.github_id
    user.github_login = identity.login
    if identity.name is not None:
        user.name = identity.name[:200]
    await session.flush()


# --- invitations ---------------------------------------------------------------------------


def _pending(invitation: Invitation, now: datetime) -> bool:
    return invitation.accepted_at is None and invitation.revoked_at is None and invitation.expires_at > now


async def _carried_invitation(session: AsyncSession, invitation_id: int, now: datetime) -> Invitation:
    """The invitation this sign-in started from: it must still be pending now."""
    invitation = await session.get(Invitation, invitation_id, with_for_update=True)
    if invitation is None or not _pending(invitation, now):
        raise SignUpRefused(
            "The invitation you signed in with was revoked, has expired or was already used while you were at "
            "GitHub. Ask your ZeroCloud admin for a new invitation.",
        )
    return invitation


async def _invitation_for(session: AsyncSession, emails: tuple[str, ...], now: datetime) -> Invitation | None:
    """A pending invitation of one of these (GitHub-verified) addresses: the person is
    invited even when they came to the sign-in page without the mailed link."""
    invitations = (
        await session.scalars(
            select(Invitation)
            .where(
                col(Invitation.email).in_(emails), col(Invitation.accepted_at).is_(None),
                col(Invitation.revoked_at).is_(None), col(Invitation.expires_at) > now,
            )
            .order_by(col(Invitation.id))
            .with_for_update()
        )
    ).all()
    # The primary address's invitation first, then the order of the person's addresses.
    ranked = sorted(invitations, key=lambda invitation: emails.index(invitation.email))
    return ranked[0] if ranked else None


async def _join_by_invitation(
    session: AsyncSession, user: User | None, invitation: Invitation, identity: GitHubIdentity, now: datetime
) -> User:
    """(b) The person joins the invitation's account with its role, as the invited address,
    confirmed (``invitations.accept``): following the mailed link proved the address, and
    an invitation found by email is one GitHub verified."""
    listed = await session.scalar(
        select(User)
        .where(col(User.account_id) == invitation.account_id, col(User.email) == invitation.email)
        .with_for_update()
    )
    if listed is not None and listed.github_id is not None and listed.github_id != identity.github_id:
        raise SignUpRefused(
            f"{invitation.email} is already a user of that ZeroCloud account, signed in with another GitHub "
            f"account ({listed.github_login or listed.github_id}). Sign in with that GitHub account, or ask your "
            "admin.",
            status_code=409,
        )
    if user is not None and listed is not None and listed.id != user.id:
        raise SignUpRefused(
            f"You are already a ZeroCloud user as {user.email}, and the account that invited you lists "
            f"{invitation.email} separately. Ask your admin to remove one of the two.",
            status_code=409,
        )
    if user is None:
        user = listed
        if user is None:
            user = User(account_id=invitation.account_id, email=invitation.email, role=invitation.role)
            session.add(user)
        await _take_github_identity(session, user, identity)
    user.account_id, user.email, user.role = invitation.account_id, invitation.email, invitation.role
    user.joined_how = JoinedHow.invitation
    await session.flush()
    assert invitation.id is not None
    try:
        # Marks it accepted (once, even when two sign-ins race) and confirms the address.
        await invitations.accept(session, invitation_id=invitation.id, user=user)
    except LinkRefused as refusal:
        raise SignUpRefused(refusal.message, status_code=refusal.status_code) from None
    audit.record(
        session, account_id=invitation.account_id, actor=_actor(user), action="user.joined", subject_type="user",
        subject_id=user.id, how="invitation", invitation_id=invitation.id, email=user.email, role=user.role,
        email_confirmed=user.email_confirmed_at is not None,
    )
    return user




async def _movable(session: AsyncSession, user: User) -> bool:
    """Whether another account's invitation may take this person: they only joined by an
    allowed email pattern (nobody chose them), as a developer, and own no live lease."""
    if user.joined_how != JoinedHow.allowed_email or user.role != Role.dev:
        return False
    owned = await session.scalar(
        select(col(Lease.id)).where(
            col(Lease.owner_user_id) == user.id,
            col(Lease.status).in_(sorted(status.value for status in LIVE_LEASE_STATUSES)),
        ).limit(1)
    )
    return owned is None


async def _move_by_invitation(
    session: AsyncSession, user: User, invitation: Invitation, identity: GitHubIdentity, now: datetime
) -> User:
    """A person who joined an account by pattern follows another account's invitation: they
    leave the first (audited there; their overrides and API tokens, made for it, go) and
    join the second as invited."""
    left = user.account_id
    await session.execute(delete(UserPolicy).where(col(UserPolicy.user_id) == user.id))
    await session.execute(delete(ApiToken).where(col(ApiToken.user_id) == user.id))
    audit.record(
        session, account_id=left, actor=_actor(user), action="user.left", subject_type="user", subject_id=user.id,
        reason=f"followed account {invitation.account_id}'s invitation: had joined by an allowed email pattern "
               "and owned no lease",
        email=user.email, invitation_id=invitation.id,
    )
    return await _join_by_invitation(session, user, invitation, identity, now)


# --- the first admin ------------------------------------------------------------------------


async def _fresh_installation(session: AsyncSession) -> bool:
    """No account at all yet (so no user in one either)."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FIRST_ADMIN_LOCK})
    return await session.scalar(select(col(Account.id)).limit(1)) is None


async def _first_admin(session: AsyncSession, user: User | None, identity: GitHubIdentity, now: datetime) -> User:
    """(d) The first person on a fresh installation: admin of a new account named after them
    (renameable later), with the default policy."""
    if user is None:
        user = User(email=identity.email, role=Role.admin, joined_how=JoinedHow.first_admin)
        session.add(user)
        await _take_github_identity(session, user, identity)
    # Their address counts as confirmed without a mailed link: GitHub verified it, and they
    # are the operator setting ZeroCloud up — there is no admin yet to vouch for anyone, and
    # the mail that would confirm it may not even be configured. Lease notices for every
    # instance without a known owner go to this admin, so they must not wait on a link.
    if user.email in identity.verified_emails:
        user.email_confirmed_at = user.email_confirmed_at or now
    user.role = Role.admin
    await session.flush()
    assert user.id is not None
    caller = Principal(kind="user", user_id=user.id, account_id=None, role=Role.admin, email=user.email)
    account, _ = await accounts.create(session, caller=caller, name=f"{identity.login}'s account")
    audit.record(
        session, account_id=account.id, actor=_actor(user), action="user.joined", subject_type="user",
        subject_id=user.id, how="first_admin", email=user.email, role="admin",
        email_confirmed=user.email_confirmed_at is not None,
    )
    return user


# --- allowed email patterns -----------------------------------------------------------------


async def _join_by_allowed_email(session: AsyncSession, identity: GitHubIdentity, now: datetime) -> User:
    """(e) A verified address (the primary first) matching an account's allowed email
    patterns joins the oldest such account as a developer; the address still has to be
    confirmed by a mailed link before ZeroCloud mails it anything else. (f) Else refused."""
    match: tuple[int, str] | None = None
    for email in identity.verified_emails:
        # A set lookup on the GIN index: the address's few candidate patterns against every
        # policy's (no pattern means "any owner email" for leases, never "anyone may join").
        # An account whose admin removed this address does not take it back by pattern.
        removed = select(col(RemovedUser.account_id)).where(
            col(RemovedUser.account_id) == col(AccountPolicy.account_id), col(RemovedUser.email) == email.lower()
        )
        account_id = await session.scalar(
            select(col(AccountPolicy.account_id))
            # && is ARRAY's overlap(), which SQLAlchemy's types do not show on a mapped column.
            .where(col(AccountPolicy.allowed_email_patterns).bool_op("&&")(pattern_candidates(email)), ~removed.exists())
            .order_by(col(AccountPolicy.account_id)).limit(1)
        )
        if account_id is not None:
            match = (account_id, email)
            break
    if match is None:
        raise SignUpRefused(not_invited(identity))
    account_id, email = match
    taken = await session.scalar(
        select(User).where(col(User.account_id) == account_id, col(User.email) == email)
    )
    if taken is not None:
        # Unlinked users with this address were linked above: this one has another GitHub id.
        raise SignUpRefused(
            f"{email} is already a user of that ZeroCloud account, signed in with another GitHub account "
            f"({taken.github_login or taken.github_id}). Sign in with that GitHub account, or ask your admin.",
            status_code=409,
        )
    user = User(account_id=account_id, email=email, role=Role.dev, email_confirmed_at=None,
                joined_how=JoinedHow.allowed_email)
    session.add(user)
    await _take_github_identity(session, user, identity)
    audit.record(
        session, account_id=account_id, actor=_actor(user), action="user.joined", subject_type="user",
        subject_id=user.id, how="allowed_email", email=email, role="dev", email_confirmed=False,
    )
    # GitHub verified it, but the account lets people in by their address: ZeroCloud mails
    # nothing to it (lease notices included) until its own single-use link confirmed it.
    await confirmations.request(session, user=user)
    return user




# --- the audit log ---------------------------------------------------------------------------


def _actor(user: User) -> str:
    return f"user:{user.id}"


def _signed_in(
    session: AsyncSession, user: User, how: str, identity: GitHubIdentity, *, ignored_invitation_id: int | None = None
) -> None:
    details: dict[str, Any] = {"how": how, "github_login": identity.login}
    if ignored_invitation_id is not None:
        # A person belongs to one account: an invitation moves only someone who joined by
        # pattern and owns nothing (_movable); it was not used for anyone else.
        details["invitation_not_used"] = ignored_invitation_id
    audit.record(
        session, account_id=user.account_id, actor=_actor(user), action="user.signed_in", subject_type="user",
        subject_id=user.id, **details,
    )


def _record_refusal(session: AsyncSession, identity: GitHubIdentity, refusal: SignUpRefused) -> None:
    audit.record(
        session, account_id=None, actor=f"github:{identity.login}", action="signin.refused", subject_type="user",
        subject_id=None, reason=refusal.message, github_id=identity.github_id, github_login=identity.login,
        emails=list(identity.verified_emails),
    )
