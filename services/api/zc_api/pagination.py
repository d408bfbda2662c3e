"""Every list is a page: limit/offset with a hard cap and the total count; the lists that
grow without bound (leases, resources, audit events) also page by keyset cursor, with a
count that stops at a cap instead of scanning every row."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, TypeVarTuple, cast

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Row, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Mapped

from zc_common.errors import InvalidInput

from zc_api.bounds import INT32_MAX, INT64_MAX, Offset, in_utc

T = TypeVar("T")
Ts = TypeVarTuple("Ts")
AnySelect = Select[*tuple[Any, ...]]

HARD_CAP = 500
# A count stops here: above it the answer is "at least COUNT_CAP" (count_at_least), read
# from at most COUNT_CAP + 1 index entries, however many rows match.
COUNT_CAP = 10_000
# A cursor holds one sort key (a time and an id): far below this.
CURSOR_MAX_LENGTH = 256

CURSOR_DESCRIPTION = (
    "Where the page starts: the `next_cursor` of the previous page of this same list (same "
    "filters). Opaque; not together with `offset`. Cursors stay fast at any depth; a deep "
    "`offset` makes the database walk past every row before it, so it slows as it grows."
)


class PageParams(BaseModel):
    limit: int
    offset: int
    cursor: str | None = None


async def page_params(
    limit: Annotated[int, Query(ge=1, le=HARD_CAP, description=f"At most {HARD_CAP}.")] = 50,
    offset: Annotated[Offset, Query()] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


async def keyset_page_params(
    limit: Annotated[int, Query(ge=1, le=HARD_CAP, description=f"At most {HARD_CAP}.")] = 50,
    offset: Annotated[
        Offset, Query(description="Rows to skip. Kept for compatibility: slower the deeper it goes; use `cursor`.")
    ] = 0,
    cursor: Annotated[str | None, Query(max_length=CURSOR_MAX_LENGTH, description=CURSOR_DESCRIPTION)] = None,
) -> PageParams:
    if cursor is not None and offset:
        raise InvalidInput("give either cursor or offset, not both: the cursor already says where the page starts",
                           field="query.offset")
    return PageParams(limit=limit, offset=offset, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]
KeysetPageDep = Annotated[PageParams, Depends(keyset_page_params)]


class Page(BaseModel, Generic[T]):
    data: list[T]
    count: int = Field(description="How many rows the list holds with these filters.")
    limit: int
    offset: int


class KeysetPage(Page[T], Generic[T]):
    count: int = Field(
        description=f"How many rows the list holds with these filters, exact up to {COUNT_CAP:,}; past it, "
        f"{COUNT_CAP:,} and `count_at_least` is true. The same on every page of the list."
    )
    count_at_least: bool = Field(
        description=f"True when more rows match than the exact count goes to ({COUNT_CAP:,}): `count` is then a "
        "lower bound, not the total. Page on while `next_cursor` is not null."
    )
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null: this is the last page."
    )


KeyKind = Literal["datetime", "int32", "int64"]


@dataclass(frozen=True)
class SortKey:
    """A list's order, the key its cursors carry: columns all ascending or all descending,
    the last one unique (the id) so that rows tied on the others still have one order.
    ``name`` tells one list's cursors from another's."""

    name: str
    columns: tuple[Mapped[Any], ...]
    kinds: tuple[KeyKind, ...]
    descending: bool = False

    def order_by(self) -> list[ColumnElement[Any]]:
        return [column.desc() if self.descending else column.asc() for column in self.columns]

    def after(self, key: Sequence[Any]) -> ColumnElement[bool]:
        """The rows that come after ``key`` in this order (a row comparison: one index range)."""
        here, there = tuple_(*self.columns), tuple_(*key)
        return here < there if self.descending else here > there

    def key_of(self, entity: Any) -> list[Any]:
        return [getattr(entity, cast(InstrumentedAttribute[Any], column).key) for column in self.columns]

    def encode(self, key: Sequence[Any]) -> str:
        values = [value.isoformat() if isinstance(value, datetime) else value for value in key]
        text = json.dumps({"list": self.name, "after": values}, separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    def decode(self, cursor: str) -> list[Any]:
        """The key a cursor of this list carries; anything else is a 422 saying what to do."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            body = json.loads(raw.decode())
        except (binascii.Error, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise _bad_cursor("it is not one this api made") from None
        if not isinstance(body, dict) or set(body) != {"list", "after"}:
            raise _bad_cursor("it is not one this api made")
        if body["list"] != self.name:
            raise _bad_cursor(f"it is a cursor of another list or order ({str(body['list'])[:40]!r})")
        values = body["after"]
        if not isinstance(values, list) or len(values) != len(self.kinds):
            raise _bad_cursor("its sort key is not this list's")
        return [_key_value(kind, value) for kind, value in zip(self.kinds, values, strict=True)]


def _bad_cursor(why: str) -> InvalidInput:
    return InvalidInput(
        f"this cursor cannot be read: {why}. Pass the next_cursor a page of this list answered, "
        "or leave cursor out to start from the first page.",
        field="query.cursor",
    )


def _key_value(kind: KeyKind, value: Any) -> Any:
    if kind == "datetime":
        if not isinstance(value, str) or len(value) > 40:
            raise _bad_cursor("its time is not a time")
        try:
            return in_utc(datetime.fromisoformat(value))
        except ValueError:
            raise _bad_cursor("its time is not a time") from None
    top = INT32_MAX if kind == "int32" else INT64_MAX
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise _bad_cursor("its id is not an id")
    return value


@dataclass(frozen=True)
class KeysetRows(Generic[*Ts]):
    """One page of rows, the list's count (capped) and where the next page starts."""

    rows: list[tuple[*Ts]]
    count: int
    count_at_least: bool
    next_cursor: str | None


def _capped_count_of(query: AnySelect, cap: int) -> Select[int]:
    return select(func.count()).select_from(query.order_by(None).limit(cap + 1).subquery())


def _capped(total: int | None, cap: int) -> tuple[int, bool]:
    total = int(total or 0)
    return (cap, True) if total > cap else (total, False)


async def capped_count(session: AsyncSession, query: AnySelect, *, cap: int | None = None) -> tuple[int, bool]:
    """How many rows ``query`` matches, counting at most ``cap`` + 1 of them: (the count,
    whether there are more than it)."""
    cap = COUNT_CAP if cap is None else cap
    return _capped(await session.scalar(_capped_count_of(query, cap)), cap)


async def paginate_keyset(
    session: AsyncSession, query: Select[*Ts], page: PageParams, sort: SortKey,
    *, count_query: AnySelect | None = None,
) -> KeysetRows[*Ts]:
    """One page of ``query`` in ``sort``'s order, from ``page.cursor`` (or ``page.offset``).
    The sort key is read from each row's first entity. ``count_query``: the same rows
    without what only the page needs (a join for display), for a cheaper count.

    One statement: the capped count rides on the page as an uncorrelated scalar subquery,
    which PostgreSQL evaluates once (an InitPlan), so a page costs one round trip, not two.
    Only a page past the end (no row to carry it) asks for the count on its own."""
    counted = cast(AnySelect, query) if count_query is None else count_query
    ordered = query.order_by(*sort.order_by())
    if page.cursor is not None:
        ordered = ordered.where(sort.after(sort.decode(page.cursor)))
    with_count = ordered.add_columns(_capped_count_of(counted, COUNT_CAP).scalar_subquery())
    fetched = list((await session.execute(with_count.limit(page.limit + 1).offset(page.offset))).all())
    if fetched:
        count, at_least = _capped(fetched[0][-1], COUNT_CAP)
    else:
        count, at_least = await capped_count(session, counted)
    rows = [cast(tuple[*Ts], tuple(row)[:-1]) for row in fetched[: page.limit]]
    more = len(fetched) > page.limit
    next_cursor = sort.encode(sort.key_of(cast(Any, rows[-1])[0])) if more else None
    return KeysetRows(rows=rows, count=count, count_at_least=at_least, next_cursor=next_cursor)


async def _count(session: AsyncSession, query: Select[*Ts]) -> int:
    total = await session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return int(total or 0)


async def paginate(session: AsyncSession, query: Select[T], page: PageParams) -> tuple[list[T], int]:
    """Objects of one page of a one-entity ``query`` and the total number it matches."""
    total = await _count(session, query)
    rows = (await session.scalars(query.limit(page.limit).offset(page.offset))).all()
    return list(rows), total


async def paginate_rows(
    session: AsyncSession, query: Select[*Ts], page: PageParams
) -> tuple[list[Row[*Ts]], int]:
    """Rows (several entities or columns each) of one page of ``query``, and the total."""
    total = await _count(session, query)
    rows = (await session.execute(query.limit(page.limit).offset(page.offset))).all()
    return list(rows), total
