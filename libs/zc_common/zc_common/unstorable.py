"""What no service can store or pass on: U+0000 (a NUL character), which PostgreSQL text
cannot hold. One walk, used by the api's request guard, the bus messages and the event
parser, so each refuses it with the place it was found."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

NUL = "\x00"
# Deeper than any message, event or body ZeroCloud takes; past it the walk stops (the
# parsers and models have their own limits).
MAX_DEPTH = 64


def find_nul(value: Any, path: tuple[str, ...] = (), depth: int = 0) -> tuple[str, ...] | None:
    """Where in ``value`` (strings, dict keys and values, lists, pydantic models) the
    first U+0000 is, as a path of keys and indexes (``()`` for ``value`` itself), or None."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(value, str):
        return path if NUL in value else None
    if isinstance(value, BaseModel):
        items: Any = ((name, getattr(value, name)) for name in type(value).model_fields)
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = ((str(index), item) for index, item in enumerate(value))
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and NUL in key:
            return path
        found = find_nul(item, (*path, str(key)), depth + 1)
        if found is not None:
            return found
    return None


def where(path: tuple[str, ...], whole: str = "body") -> str:
    """A path as a dotted field name: ``regions.1``; ``whole`` for the value itself."""
    return ".".join(path) or whole
