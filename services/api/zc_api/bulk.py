"""Set-based statements built from the models' tables: one array per column bound as a
parameter and unnested in SQL, so a statement has one fixed text whatever the batch
size (prepared once per connection, no parameter limit), and its columns, types and
array casts come from the model (a new column is one edit)."""

from __future__ import annotations

import copy
from collections.abc import Collection
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import TableValuedAlias
from sqlmodel import SQLModel

from zc_common.messages import LIVE_LEASE_STATUSES


def table(model: type[SQLModel]) -> sa.Table:
    """The model's table, typed (SQLModel does not declare ``__table__``)."""
    found = getattr(model, "__table__", None)
    if not isinstance(found, sa.Table):
        raise TypeError(f"{model.__name__} is not a table model")
    return found


def array(name: str, column: sa.ColumnElement[Any]) -> sa.BindParameter[Any]:
    """A parameter holding an array of ``column``'s type (the driver casts it so). A string
    type loses its length: an explicit cast to VARCHAR(n) would truncate a longer value
    silently, where writing it to the column refuses it."""
    element = column.type
    if isinstance(element, sa.Enum):  # keeps turning members into their values
        unbounded = copy.copy(element)
        unbounded.length = None
        element = unbounded
    elif isinstance(element, sa.String) or isinstance(getattr(element, "impl", None), sa.String):
        element = sa.Text()
    return sa.bindparam(name, type_=pg.ARRAY(element))


def unnest(alias: str, *columns: sa.Column[Any], serialized: Collection[str] = ()) -> TableValuedAlias:
    """``unnest(:a, :b, ...) AS alias(a, b, ...)``: one parameter per column, named by its
    key, an array of its type. The columns named in ``serialized`` (JSON ones) take their
    values as text already serialized, cast in SQL."""

    def parameter(c: sa.Column[Any]) -> sa.ColumnElement[Any]:
        if c.key in serialized:
            return sa.cast(sa.bindparam(c.key, type_=pg.ARRAY(sa.Text)), pg.ARRAY(c.type))
        return array(c.key, c)

    return (
        sa.func.unnest(*(parameter(c) for c in columns))
        .table_valued(*(sa.column(c.key, c.type) for c in columns))
        .render_derived(alias)
    )


def is_live(status: ColumnElement[Any]) -> ColumnElement[bool]:
    """``status IN ('active', ...)``, the statuses inline as literals, as the partial unique
    index on live leases is written: the planner can match a condition to that index (and
    ON CONFLICT infer it) only if it holds the same constants, not parameters."""
    return status.in_([sa.literal_column(f"'{s.value}'") for s in sorted(LIVE_LEASE_STATUSES)])


def xmax_is_zero(model: type[SQLModel]) -> ColumnElement[bool]:
    """In an upsert's RETURNING: the row was inserted (not updated) by this statement."""
    return sa.literal_column(f"{table(model).name}.xmax") == sa.literal_column("0")
