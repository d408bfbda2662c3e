"""What the access-log redactor keeps and what it hides, line by line."""

from __future__ import annotations

import logging

import pytest

from zc_common.logging import REDACTED, AccessLogRedactor, configure_logging, redact_target


@pytest.mark.parametrize(
    ("target", "logged"),
    [
        ("/a/Abc_-123", f"/a/{REDACTED}"),
        ("/invitations/tok?x=1", f"/invitations/{REDACTED}?x=1"),
        ("/confirm-email/tok", f"/confirm-email/{REDACTED}"),
        ("/behind/proxy/a/tok", f"/behind/proxy/a/{REDACTED}"),
        ("/auth/github/callback?code=c&state=s&error=x", f"/auth/github/callback?code={REDACTED}&state={REDACTED}&error=x"),
        ("/login?NEXT=%2Fa%2Ftok", f"/login?NEXT={REDACTED}"),
        ("/login?next=%2Fleases%3Fcode%3Dc", f"/login?next={REDACTED}"),
        ("/x?Token=t&api_key=k", f"/x?Token={REDACTED}&api_key={REDACTED}"),
        # What carries no credential is kept as it was: ids, filters, empty values.
        ("/api/v1/invitations/7/revoke", "/api/v1/invitations/7/revoke"),
        ("/leases?owner=dev%40example.com&state=", "/leases?owner=dev%40example.com&state="),
        ("/metadata/tok", "/metadata/tok"),
    ],
)
def test_a_credential_in_a_request_target_is_redacted(target: str, logged: str) -> None:
    assert redact_target(target) == logged


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_configured_logging_redacts_uvicorns_access_lines() -> None:
    root = logging.getLogger()
    before = root.handlers[:], root.level
    access = logging.getLogger("uvicorn.access")
    # As in a fresh process: a uvicorn started earlier with access_log=False (the tests'
    # local servers) unhooked this logger from the root.
    access_before = access.propagate, access.level, access.disabled
    access.propagate, access.disabled = True, False
    access.setLevel(logging.NOTSET)
    try:
        configure_logging("test")
        configure_logging("test")  # idempotent: one redactor
        assert sum(isinstance(f, AccessLogRedactor) for f in access.filters) == 1
        lines = _Lines()
        root.addHandler(lines)
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/a/secret-token", "1.1", 200)
        assert lines.lines == [f'127.0.0.1:5000 - "GET /a/{REDACTED} HTTP/1.1" 200']
        # httpx would log each request's URL at INFO, an account's webhook URL among them.
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])
        access.propagate, access.disabled = access_before[0], access_before[2]
        access.setLevel(access_before[1])
