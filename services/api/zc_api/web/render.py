"""Server-rendered pages (Jinja2, no JavaScript): one layout, one stylesheet, the same
security headers on every page. Handlers call ``page(...)``; nothing builds HTML by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from zc_api import display
from zc_api.web.session import Viewer

STATIC_DIR = Path(__file__).parent / "static"

templates = Environment(loader=PackageLoader("zc_api.web", "templates"), autoescape=select_autoescape(default=True))
templates.filters.update(stamp=display.stamp, money=display.money)

HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self' https:; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
}


def nav_for(viewer: Viewer | None, *, sandbox: bool = False) -> list[tuple[str, str]]:
    """The menu: (path, label), by role; in the sandbox also its mailbox page, for anyone."""
    mailbox = [("/mailbox", "Mailbox")] if sandbox else []
    if viewer is None:
        return mailbox
    items = [("/leases", "Leases"), ("/tokens", "API tokens")]
    if viewer.is_admin and viewer.user.account_id is not None:
        items = [
            ("/summary", "Summary"), ("/leases", "Leases"), ("/cloud-accounts", "Cloud accounts"),
            ("/policy", "Policy"), ("/users", "People"), ("/audit", "Audit log"), ("/tokens", "API tokens"),
        ]
    return items + mailbox


def _in_sandbox(request: Request) -> bool:
    runtime = getattr(request.app.state, "runtime", None)
    return bool(runtime is not None and runtime.settings.sandbox_mailbox_dir)


def page(
    request: Request, template: str, *, viewer: Viewer | None, title: str, status: int = 200,
    headers: dict[str, str] | None = None, **context: Any,
) -> HTMLResponse:
    body = templates.get_template(template).render(
        request=request, viewer=viewer, title=title, nav=nav_for(viewer, sandbox=_in_sandbox(request)),
        current=request.url.path,
        csrf_token=viewer.csrf_token if viewer else None, **context,
    )
    return HTMLResponse(body, status_code=status, headers={**HEADERS, **(headers or {})})


def count_text(count: int, at_least: bool) -> str:
    """A list's count as a page says it: exact, or the cap it stopped counting at."""
    return f"more than {count:,}" if at_least else str(count)


def error_page(request: Request, *, viewer: Viewer | None, status: int, title: str, message: str) -> HTMLResponse:
    return page(request, "error.html", viewer=viewer, title=title, status=status, message=message)
