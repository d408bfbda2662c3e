"""Reading what a person typed into a form: the raw values (kept, to show again), and
for each field that was wrong a message that says what to type instead."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import ValidationError

from zc_common.errors import NotFound, NotPermitted

from zc_api.display import whole_units
from zc_api.policies.schemas import LeaseUnit
from zc_api.web.session import CsrfDep, Viewer

UNITS = [(unit.value, unit.value) for unit in (LeaseUnit.minutes, LeaseUnit.hours, LeaseUnit.days)]
_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)\s*$", re.I)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass
class Form:
    """A posted form: ``values`` as typed (strings), ``errors`` by field name."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)

    def text(self, name: str) -> str:
        return self.values.get(name, "").strip()

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(name, message)

    @property
    def ok(self) -> bool:
        return not self.errors

    def integer(self, name: str, *, label: str, minimum: int | None = None, maximum: int | None = None,
                optional: bool = False) -> int | None:
        raw = self.text(name)
        if not raw:
            if not optional:
                self.fail(name, f"Enter {label}.")
            return None
        if not re.fullmatch(r"[+-]?\d+", raw):
            self.fail(name, f"{label.capitalize()} must be a whole number, like 3.")
            return None
        value = int(raw)
        if minimum is not None and value < minimum:
            self.fail(name, f"{label.capitalize()} must be at least {minimum}.")
            return None
        if maximum is not None and value > maximum:
            self.fail(name, f"{label.capitalize()} must be at most {maximum}.")
            return None
        return value

    def duration(self, name: str, *, label: str, optional: bool = False) -> int | None:
        """Seconds from a number field ``name`` and its unit field ``name_unit``."""
        amount = self.integer(name, label=label, minimum=1, optional=optional)
        if amount is None:
            return None
        unit = self.text(f"{name}_unit")
        try:
            return amount * LeaseUnit(unit).seconds_each
        except ValueError:
            self.fail(name, f"Choose the unit of {label}: minutes, hours or days.")
            return None

    def durations(self, name: str, *, label: str) -> list[int] | None:
        """Several durations written like "1d, 1h, 30m" (s, m, h or d after each number)."""
        parts = [part for part in re.split(r"[,;]", self.text(name)) if part.strip()]
        seconds: list[int] = []
        for part in parts:
            match = _DURATION.match(part)
            if match is None:
                self.fail(name, f"{part.strip()!r} is not a duration: write {label} like 1d, 4h or 30m, "
                                "separated by commas.")
                return None
            seconds.append(int(match.group(1)) * _UNIT_SECONDS[match.group(2)[0].lower()])
        if any(value <= 0 for value in seconds):
            self.fail(name, f"Each of the {label} must be longer than zero.")
            return None
        return seconds


async def read_form(request: Request) -> Form:
    data = await request.form()
    values = {key: value for key, value in data.items() if isinstance(value, str) and key != "csrf_token"}
    lists = {key: [v for v in data.getlist(key) if isinstance(v, str)] for key in data}
    return Form(values=values, lists=lists)


def split_duration(seconds: int) -> tuple[str, str]:
    """A duration as the number and unit a form shows: the largest unit that says it exactly
    (seconds, for one set through the API that is not whole minutes: saved again unchanged,
    it stays what it was)."""
    count, unit = whole_units(seconds)
    return str(count), unit.value


def units_for(values: Mapping[str, str]) -> list[tuple[str, str]]:
    """The units a form's duration fields offer: seconds too when one of them is in seconds."""
    if any(name.endswith("_unit") and value == LeaseUnit.seconds.value for name, value in values.items()):
        return [*UNITS, (LeaseUnit.seconds.value, LeaseUnit.seconds.value)]
    return UNITS


def short_duration(seconds: int) -> str:
    """The "1d"/"4h"/"30m" way of writing a duration that ``Form.durations`` reads."""
    for suffix, each in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % each == 0:
            return f"{seconds // each}{suffix}"
    return f"{seconds}s"


def validation_errors(error: ValidationError, fields: Mapping[str, str] | None = None) -> dict[str, str]:
    """A pydantic error as messages by form field (``fields`` maps model fields to form fields)."""
    found: dict[str, str] = {}
    for item in error.errors():
        location: tuple[Any, ...] = item.get("loc", ())
        name = str(location[0]) if location else "form"
        name = (fields or {}).get(name, name)
        message = str(item.get("msg", "is not valid")).removeprefix("Value error, ")
        found.setdefault(name, message[:1].upper() + message[1:] + ("" if message.endswith(".") else "."))
    return found


async def require_admin_form(viewer: CsrfDep) -> Viewer:
    """A form posted by an admin of their account (CSRF checked first)."""
    if viewer.user.account_id is None:
        raise NotFound("you are not in an account yet")
    if not viewer.is_admin:
        raise NotPermitted("only an admin of this account can do that")
    return viewer


AdminFormDep = Annotated[Viewer, Depends(require_admin_form)]
"""Use on every POST of an admin page (in place of CsrfDep)."""
