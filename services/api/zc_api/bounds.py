"""The bounded types every route takes its ids, offsets and times as: each within what
its column or Python can hold, so a value out of range is a 422 naming the field
(request validation) instead of a 500 from the database driver."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import annotated_types
from pydantic import AfterValidator

# PostgreSQL's integer (serial ids: every table the public API names by id) and bigint
# (OFFSET takes a bigint).
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

RowId = Annotated[int, annotated_types.Interval(ge=1, le=INT32_MAX)]
"""The id of a row of an ``integer`` (serial) primary key: accounts, users, cloud
accounts, resources, leases, invitations, API tokens (models.py)."""

Offset = Annotated[int, annotated_types.Interval(ge=0, le=INT64_MAX)]


def in_utc(moment: datetime) -> datetime:
    """Aware and in UTC; a time without a zone is read as UTC. ``9999-12-31T23:59:59-14:00``
    is a valid ISO 8601 time that no datetime can hold once in UTC: refused, not a 500."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(
            f"{moment.isoformat()} is out of range once converted to UTC: "
            f"give a time between {datetime.min.year:04d} and {datetime.max.year} in UTC"
        ) from None


UtcDateTime = Annotated[datetime, AfterValidator(in_utc)]
"""A time as an API caller gives it (ISO 8601; UTC when no zone), always aware and in UTC."""


def parse_count(text: str, *, maximum: int = INT32_MAX) -> int | None:
    """A whole number typed in a page or a header, or None when it is not one within
    0..maximum. ASCII digits only: ``str.isdigit()`` also accepts ``²``, which ``int()``
    refuses, and digits of other scripts, which no caller meant."""
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= maximum else None


def parse_row_id(text: str) -> int | None:
    """A row id typed in a page (``"42"``), or None when it cannot name a row."""
    value = parse_count(text)
    return value if value else None
