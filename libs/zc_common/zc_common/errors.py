"""One error family: every failure a user can cause has a status code and a message
that says what was wrong and what to do."""

from __future__ import annotations


class ZeroCloudError(Exception):
    status_code = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(ZeroCloudError):
    status_code = 422


class NotAuthenticated(ZeroCloudError):
    status_code = 401


class NotPermitted(ZeroCloudError):
    status_code = 403


class NotFound(ZeroCloudError):
    status_code = 404


class Conflict(ZeroCloudError):
    status_code = 409


class PayloadTooLarge(ZeroCloudError):
    status_code = 413
