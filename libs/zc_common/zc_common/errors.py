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


# SQLSTATE classes and codes of a database that is not there (rather than of a statement):
# 08 connection exceptions; 57P01-57P03 admin/crash shutdown, cannot connect now.
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")
_UNREACHABLE_NAMES = frozenset({"ConnectionDoesNotExistError", "CannotConnectNowError"})


def database_unreachable(error: BaseException) -> bool:
    """Whether this failure (or one it was raised from) says the database cannot be
    reached now — refused, reset, restarting, shut down — rather than that the work is
    wrong: retrying later will do. Read from the exception chain without importing a
    driver (SQLAlchemy's ``orig`` and ``connection_invalidated``, asyncpg's ``sqlstate``)."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, (OSError, TimeoutError)) or getattr(seen, "connection_invalidated", False):
            return True
        sqlstate = getattr(seen, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_UNREACHABLE_SQLSTATES):
            return True
        if type(seen).__name__ in _UNREACHABLE_NAMES:
            return True
        # asyncpg's answer on a connection the server closed under it (a restart, a
        # terminated backend) when it noticed before the next statement.
        if type(seen).__name__ == "InterfaceError" and "connection is closed" in str(seen):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False
