"""Who is calling: a user (admin or developer of one account) or another service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from zc_common.errors import NotFound, NotPermitted
from zc_common.messages import Role


@dataclass(frozen=True)
class Principal:
    kind: Literal["user", "service"]
    user_id: int | None = None
    account_id: int | None = None
    role: Role | None = None
    email: str | None = None
    service: str | None = None  # which service, for kind "service": ingestor, notifier or reaper

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and self.role == Role.admin

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"user:{self.user_id}" if self.kind == "user" else "service"

    def require_account(self, account_id: int) -> None:
        """A caller sees only its own account; another tenant's is simply not there."""
        if self.kind != "user" or self.account_id != account_id:
            raise NotFound(f"account {account_id} not found")

    def require_admin(self, account_id: int) -> None:
        self.require_account(account_id)
        if not self.is_admin:
            raise NotPermitted("only an admin of this account can do that")
