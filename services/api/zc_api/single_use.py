"""Single-use links: the one implementation behind action links (renew / shut down),
invitations and email confirmations.

A link carries a random token; only its SHA-256 is stored. Looking a link up reads
only (mail scanners follow links); using it locks the row it names, checks it again
under the lock and spends it in the same transaction, so of two uses racing exactly
one wins and the other is refused as used. A link that cannot be used raises
``LinkRefused``, a ZeroCloudError, with one ``Refusal`` saying why and the words of
its kind (``Kind.words``) saying it to a person.

What each kind keeps of its own: its table (the row is its domain record too), the
path it opens, its words, and any check past the link itself (the lease's version,
the address still being the person's), which it makes between ``open`` and ``spend``.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import SQLModel

from zc_common.errors import ZeroCloudError

from zc_api.auth.tokens import hash_token

# What secrets.token_urlsafe(32) makes — every link ever mailed, of each kind; anything
# else was never issued and is not even looked up.
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


class Refusal(str, enum.Enum):
    """Why a link cannot be used. The values are shown on the refusal pages
    (``data-reason``), so they stay as they were."""

    unknown = "unknown"  # never issued, mistyped, or replaced by a newer mail's link
    used = "used"  # it worked once already
    revoked = "revoked"  # an admin withdrew it (invitations)
    expired = "expired"
    superseded = "superseded"  # what it acts on changed since it was made (a lease's version)
    not_allowed = "not_allowed"  # what it acts on can no longer take its action (a reaped lease)
    address_changed = "address_changed"  # the address it confirms is no longer the person's


STATUS_CODES: Mapping[Refusal, int] = {
    Refusal.unknown: 404,
    Refusal.used: 410,
    Refusal.revoked: 410,
    Refusal.expired: 410,
    Refusal.superseded: 409,
    Refusal.not_allowed: 409,
    Refusal.address_changed: 409,
}


class LinkRefused(ZeroCloudError):
    """A single-use link that cannot be used, and why: ``reason``, the page's ``title``
    and ``message``, and ``status_code`` (404 unknown, 410 gone, 409 overtaken). A
    ZeroCloudError, so one nobody catches still becomes a page or JSON saying so."""

    def __init__(self, reason: Refusal, title: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.title = title
        self.status_code = STATUS_CODES[reason]


class Minted(NamedTuple):
    """A new token, to mail, and the hash of it, to store."""

    token: str
    token_hash: str


def mint() -> Minted:
    token = secrets.token_urlsafe(32)
    return Minted(token, digest(token))


def digest(token: str) -> str:
    """What is stored of a token: its SHA-256 (256 random bits need no slow hash)."""
    return hash_token(token)


def well_formed(token: str) -> bool:
    return TOKEN_SHAPE.match(token) is not None


Row = TypeVar("Row", bound=SQLModel)

# Per reason, a title and a message; the message is a str.format template over the row
# (``{row.used_at:%Y-%m-%d %H:%M}``) and whatever else the kind passes to ``refuse``.
Words = Mapping[Refusal, tuple[str, str]]


@dataclass(frozen=True)
class Kind(Generic[Row]):
    """One kind of single-use link: the table holding its tokens' hashes (column
    ``token_hash``, plus ``expires_at``), the column saying it was used, the one saying
    it was withdrawn (if it can be), the path it opens under, and its words."""

    table: type[Row]
    path: str
    words: Words
    used_column: str = "used_at"
    revoked_column: str | None = None

    def __post_init__(self) -> None:
        # A kind that names a missing column, or cannot word a refusal it can make, fails
        # at import rather than on some person's click.
        columns = {"id", "token_hash", "expires_at", self.used_column, self.revoked_column or "id"}
        missing = columns - set(self.table.model_fields)
        if missing:
            raise TypeError(f"{self.table.__name__} has no column {', '.join(sorted(missing))}")
        needed = {Refusal.unknown, Refusal.used, Refusal.expired} | ({Refusal.revoked} if self.revoked_column else set())
        unworded = needed - set(self.words)
        if unworded:
            raise TypeError(f"the {self.path} links cannot word {', '.join(sorted(r.value for r in unworded))}")

    def _column(self, name: str) -> Any:
        # Row is any link table: the columns every one has are looked up by name.
        return getattr(self.table, name)

    def url(self, public_url: str, token: str) -> str:
        return f"{public_url.rstrip('/')}{self.path}/{token}"

    def refuse(self, reason: Refusal, **facts: Any) -> LinkRefused:
        title, message = self.words[reason]
        return LinkRefused(reason, title, message.format(**facts))

    def refusal(self, row: Row, *, now: datetime) -> LinkRefused | None:
        """Why the link of ``row`` can no longer be used (used, revoked, expired: in
        that order), or None."""
        if getattr(row, self.used_column) is not None:
            return self.refuse(Refusal.used, row=row)
        if self.revoked_column is not None and getattr(row, self.revoked_column) is not None:
            return self.refuse(Refusal.revoked, row=row)
        expires_at: datetime = getattr(row, "expires_at")  # noqa: B009 (Row is any link table)
        if expires_at <= now:
            return self.refuse(Refusal.expired, row=row)
        return None

    def check(self, row: Row | None, *, now: datetime) -> Row:
        """``row`` if its link can still be used; else LinkRefused (unknown when None)."""
        if row is None:
            raise self.refuse(Refusal.unknown)
        refused = self.refusal(row, now=now)
        if refused is not None:
            raise refused
        return row

    async def find(self, session: AsyncSession, token: str, *, lock: bool = False) -> Row | None:
        """The row ``token`` names, or None (malformed tokens are not looked up). With
        ``lock`` the row is locked until the transaction ends and read afresh, so a use
        racing another sees the other's outcome."""
        if not well_formed(token):
            return None
        query = select(self.table).where(self._column("token_hash") == digest(token))
        if lock:
            query = query.with_for_update().execution_options(populate_existing=True)
        row: Row | None = await session.scalar(query)
        return row

    async def open(self, session: AsyncSession, token: str, *, now: datetime, lock: bool = False) -> Row:
        """The row of a link that can still be used now; else LinkRefused saying why.
        To use it: ``lock=True``, the kind's own checks, then ``spend`` — one transaction."""
        return self.check(await self.find(session, token, lock=lock), now=now)

    async def locked(self, session: AsyncSession, row_id: int) -> Row | None:
        """The row by id, locked and read afresh (a kind spent by id, not by token)."""
        query = (
            select(self.table).where(self._column("id") == row_id)
            .with_for_update().execution_options(populate_existing=True)
        )
        row: Row | None = await session.scalar(query)
        return row

    def spend(self, row: Row, *, now: datetime) -> None:
        """Mark the link used. Only on a row ``open``/``locked`` locked in this
        transaction and checked since: that is what makes it once."""
        if getattr(row, self.used_column) is not None:  # a caller that skipped the check
            raise self.refuse(Refusal.used, row=row)
        setattr(row, self.used_column, now)
