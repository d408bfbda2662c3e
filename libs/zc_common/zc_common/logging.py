"""Structured JSON logs: one object per line, with the message id and cloud account
being worked on taken from context so every line of that work carries them."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

# No default: a shared mutable default dict is a trap; .get({}) gives a fresh one.
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("zc_log_context")

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields (message_id, cloud_account, ...) to every log line inside the block."""
    current = _context.get({})
    merged = {**current, **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            "message_id": None,
            "cloud_account": None,
        }
        line.update(_context.get({}))
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


REDACTED = "[redacted]"

# Paths whose next segment is a credential: action links, invitations, address
# confirmations. A segment of digits only is an id (``/api/v1/invitations/7``) and kept.
_SECRET_PATH = re.compile(r"(?<![^/])(a|invitations|confirm-email)/(?!\d+(?:/|$))[^/?#]+")
# Query parameters that carry a credential: the OAuth callback's code and state, the
# invitation a sign-in continues, and the names any token or key would go by.
SECRET_PARAMETERS = frozenset({
    "code", "state", "invitation", "token", "access_token", "refresh_token", "id_token", "client_secret",
    "secret", "password", "api_key", "apikey", "key", "signature", "sig",
})


def redact_target(target: str) -> str:
    """A request target (path and query) with its credentials replaced by ``[redacted]``:
    the token segment of a link path, the value of a secret-bearing query parameter, and
    any value (a ``next`` to come back to) that itself holds one of those."""
    path, sep, query = target.partition("?")
    path = _SECRET_PATH.sub(lambda found: f"{found.group(1)}/{REDACTED}", path)
    if not sep:
        return path
    parts = []
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        if equals and value:
            plain = urllib.parse.unquote_plus(value)
            if urllib.parse.unquote_plus(name).strip().lower() in SECRET_PARAMETERS or redact_target(plain) != plain:
                value = REDACTED
        parts.append(f"{name}{equals}{value}")
    return f"{path}?{'&'.join(parts)}"


class AccessLogRedactor(logging.Filter):
    """Rewrites an access-log record's request target (uvicorn logs it as an argument:
    client, method, target, HTTP version, status) before any handler formats it: a link's
    token or an OAuth code in a log is as good as the mail or the browser it came from."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_target(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = redact_target(record.msg)
        return True


ACCESS_LOGGER = "uvicorn.access"


def redact_access_log(logger: str = ACCESS_LOGGER) -> None:
    """Install the redactor on uvicorn's access logger (idempotent). Every place that
    serves an app calls this, whether or not it configured logging itself."""
    access = logging.getLogger(logger)
    if not any(isinstance(existing, AccessLogRedactor) for existing in access.filters):
        access.addFilter(AccessLogRedactor())


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stderr for the whole process, access logs redacted; idempotent."""
    redact_access_log()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request's full URL at INFO: an account's webhook URL is a credential.
    for noisy in ("aiormq", "aio_pika", "botocore", "aiobotocore", "urllib3", "asyncio", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
