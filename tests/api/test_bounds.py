"""The bounded types and number readers every route and page uses (zc_api/bounds.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from zc_api.bounds import INT32_MAX, RowId, UtcDateTime, parse_count, parse_row_id


@pytest.mark.parametrize(("text", "expected"), [
    ("42", 42), ("0", 0), (str(INT32_MAX), INT32_MAX), (str(INT32_MAX + 1), None), ("²", None), ("٣", None),
    ("-1", None), (" 4", None), ("", None),
])
def test_a_typed_number_is_ascii_digits_within_range(text: str, expected: int | None) -> None:
    assert parse_count(text) == expected


def test_a_typed_row_id_is_at_least_one() -> None:
    assert parse_row_id("0") is None
    assert parse_row_id("7") == 7


def test_a_row_id_fits_an_integer_column() -> None:
    ids = TypeAdapter(RowId)
    assert ids.validate_python(INT32_MAX) == INT32_MAX
    for bad in (0, INT32_MAX + 1):
        with pytest.raises(ValidationError):
            ids.validate_python(bad)


def test_a_time_is_aware_in_utc_and_refused_when_utc_cannot_hold_it() -> None:
    times = TypeAdapter(UtcDateTime)
    assert times.validate_python("2026-11-25T10:00:00") == datetime(2026, 11, 25, 10, tzinfo=timezone.utc)
    assert times.validate_python("2026-11-25T12:00:00+02:00").tzinfo == timezone.utc
    for bad in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        with pytest.raises(ValidationError, match="out of range once converted to UTC"):
            times.validate_python(bad)
