"""What the CLI prints: aligned plain-text tables and records for people, the api's JSON
unchanged for machines (--json)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import typer

Column = tuple[str, str]  # (key in the api's JSON, header)

_TIME_KEYS = ("_at", "_before", "since", "time")


def _time(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is not None and moment.utcoffset() == timezone.utc.utcoffset(None):
        return moment.strftime("%Y-%m-%d %H:%M:%SZ")
    return moment.isoformat(sep=" ", timespec="seconds")


def cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return _time(value) if key == "at" or key.endswith(_TIME_KEYS) else value
    if isinstance(value, list):
        if all(isinstance(item, (str, int, float)) for item in value):
            return ",".join(str(item) for item in value) or "-"
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """Columns padded to their widest cell; a column no row has is left out, so a field
    the api renames or drops does not leave an empty column behind."""
    shown = [(key, header) for key, header in columns if any(key in row for row in rows)]
    if not rows or not shown:
        return "(none)"
    grid = [[header for _, header in shown]]
    grid += [[cell(key, row.get(key)) for key, _ in shown] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(shown))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)) for line in grid]
    return "\n".join(line.rstrip() for line in lines)


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items += _flatten(value, f"{name}.")
        else:
            items.append((name, value))
    return items


def record(obj: Mapping[str, Any]) -> str:
    """One object as `key: value` lines; nested objects as `parent.key`."""
    items = _flatten(obj)
    if not items:
        return "(empty)"
    width = max(len(key) for key, _ in items) + 1
    return "\n".join(f"{key + ':':<{width}} {cell(key, value)}" for key, value in items)


def page_footer(page: Mapping[str, Any]) -> str | None:
    """`3-4 of 120; next page: ...`-style line, only when the page is not everything. A
    list that pages by cursor (it answers ``next_cursor``) names the cursor of the next
    page, and says "more than N" when its count stopped at a cap (``count_at_least``)."""
    rows = page.get("data") or []
    count, offset = page.get("count"), page.get("offset") or 0
    if not isinstance(count, int):
        return None
    by_cursor, next_cursor = "next_cursor" in page, page.get("next_cursor")
    if offset == 0 and len(rows) >= count and not next_cursor and not page.get("count_at_least"):
        return None
    total = f"more than {count}" if page.get("count_at_least") else str(count)
    if by_cursor and next_cursor:
        return f"{len(rows)} shown of {total}; next page: --cursor {next_cursor}"
    shown = f"{offset + 1}-{offset + len(rows)}" if rows else "none"
    more = not by_cursor and offset + len(rows) < count
    return f"{shown} of {total}" + (f"; next page: --offset {offset + len(rows)}" if more else "")


def emit_json(body: Any) -> None:
    typer.echo(json.dumps(body, indent=2, ensure_ascii=False))


def emit_page(page: Any, columns: Sequence[Column], *, as_json: bool) -> None:
    if as_json:
        emit_json(page)
        return
    rows = page.get("data", []) if isinstance(page, Mapping) else page
    typer.echo(table([row for row in rows if isinstance(row, Mapping)], columns))
    footer = page_footer(page) if isinstance(page, Mapping) else None
    if footer:
        typer.echo(footer)


def emit_record(obj: Any, *, as_json: bool) -> None:
    if as_json or not isinstance(obj, Mapping):
        emit_json(obj)
    else:
        typer.echo(record(obj))
