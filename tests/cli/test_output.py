"""Tables and records for people."""

from __future__ import annotations

from zc_cli.output import page_footer, record, table


def test_table_aligns_columns_and_leaves_out_missing_ones() -> None:
    rows = [
        {"id": 1, "name": "BigDB", "created_at": "2030-01-02T03:04:05.123456Z"},
        {"id": 12, "name": "A", "created_at": None},
    ]

    text = table(rows, [("id", "ID"), ("name", "NAME"), ("nowhere", "GONE"), ("created_at", "CREATED")])

    assert text.splitlines() == [
        "ID  NAME   CREATED",
        "1   BigDB  2030-01-02 03:04:05Z",
        "12  A      -",
    ]


def test_table_of_nothing_says_so() -> None:
    assert table([], [("id", "ID")]) == "(none)"


def test_cells_are_readable() -> None:
    text = table([{"regions": ["us-east-1", "eu-west-1"], "ok": True}], [("regions", "R"), ("ok", "OK")])

    assert text.splitlines()[1] == "us-east-1,eu-west-1  yes"


def test_record_flattens_nested_objects() -> None:
    text = record({"id": 1, "policy": {"default_lease_seconds": 259200, "owner_tag": "owner"}})

    assert text.splitlines() == [
        "id:                           1",
        "policy.default_lease_seconds: 259200",
        "policy.owner_tag:             owner",
    ]


def test_footer_only_when_the_page_is_not_everything() -> None:
    assert page_footer({"data": [{}, {}], "count": 2, "limit": 50, "offset": 0}) is None
    middle = page_footer({"data": [{}, {}], "count": 5, "limit": 2, "offset": 2})
    assert middle == "3-4 of 5; next page: --offset 4"
    assert page_footer({"data": [{}], "count": 5, "limit": 2, "offset": 4}) == "5-5 of 5"


def test_footer_of_a_list_paged_by_cursor_names_the_next_cursor_and_a_capped_count() -> None:
    first = {"data": [{}, {}], "count": 10000, "count_at_least": True, "limit": 2, "offset": 0, "next_cursor": "abc"}
    assert page_footer(first) == "2 shown of more than 10000; next page: --cursor abc"
    middle = {"data": [{}, {}], "count": 5, "count_at_least": False, "limit": 2, "offset": 0, "next_cursor": "d"}
    assert page_footer(middle) == "2 shown of 5; next page: --cursor d"
    last = {"data": [{}], "count": 5, "count_at_least": False, "limit": 2, "offset": 4, "next_cursor": None}
    assert page_footer(last) == "5-5 of 5"
    whole = {"data": [{}, {}], "count": 2, "count_at_least": False, "limit": 50, "offset": 0, "next_cursor": None}
    assert page_footer(whole) is None
