"""Every list is a page: limit/offset with a hard cap, and the total count."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar, TypeVarTuple

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zc_api.bounds import Offset

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

HARD_CAP = 500


class PageParams(BaseModel):
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=HARD_CAP, description=f"At most {HARD_CAP}.")] = 50,
    offset: Annotated[Offset, Query()] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    data: list[T]
    count: int
    limit: int
    offset: int


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
