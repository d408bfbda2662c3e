"""Waiting for what happens in the background (a consumer, a relay, a server), without
sleeping a fixed time: ask again until it holds."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]] | Callable[[], T], timeout: float = 20.0, *, interval: float = 0.02
) -> T:
    """Call ``probe`` (plain or async) every ``interval`` seconds until it returns a truthy
    value, and return that value; fail the test (AssertionError, with the last value) when
    ``timeout`` seconds pass first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)
