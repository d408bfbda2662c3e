"""Users as the API reads and writes them."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, computed_field

from zc_common.messages import Role

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_GITHUB_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


def _email(value: str) -> str:
    value = value.strip().lower()
    if not _EMAIL.match(value):
        raise ValueError("is not an email address (name@example.com)")
    return value


def _github_login(value: str) -> str:
    if not _GITHUB_LOGIN.match(value):
        raise ValueError("is not a GitHub login (letters, digits and '-', at most 39)")
    return value


Email = Annotated[str, Field(max_length=320), AfterValidator(_email)]
GithubLogin = Annotated[str, AfterValidator(_github_login)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    role: Role = Role.dev
    github_login: GithubLogin | None = None


class UserUpdate(BaseModel):
    """Only the fields sent change; ``github_login: null`` unlinks the GitHub login."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    github_login: GithubLogin | None = None


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int | None
    email: str
    role: Role
    github_login: str | None
    email_confirmed_at: datetime | None = Field(
        description="When the person confirmed the address by the link mailed to it; nothing else is mailed before"
    )
    created_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def email_confirmed(self) -> bool:
        return self.email_confirmed_at is not None


class UserRemoved(BaseModel):
    id: int
    email: str
    leases_reowned: int = Field(description="The user's live leases, now the removing admin's (fresh notice each).")
