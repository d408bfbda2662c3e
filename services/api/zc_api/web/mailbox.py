"""The sandbox's mailbox: every mail ZeroCloud sent, read from the folder of .eml files the
sandbox's SMTP sink writes (``sandbox_mailbox_dir``). Only there when that setting is set
— in the sandbox, which listens on 127.0.0.1 only — and then without sign-in; anywhere
else these paths are not found.

A mail is shown as its text part (escaped, its web links made clickable) and the list of
the links in its HTML part; the HTML part itself is served alone under a CSP that
sandboxes it: no script, no form, no frame, nothing loaded from anywhere — only its
links can be followed."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from zc_common.errors import NotFound

from zc_api.deps import RuntimeDep
from zc_api.web.render import page
from zc_api.web.session import ViewerDep

router = APIRouter(include_in_schema=False)

SHOWN = 200  # the newest mails listed; the folder may hold more
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.eml$")
_URL = re.compile(r"https?://[^\s<>\"']+")
_TRAILING = ".,;:!?)]}'\""

# The HTML part alone, sandboxed: scripts, forms, plugins and frames can never run or
# load, and it gets an opaque origin. Inline styles stay (mail HTML is styled inline).
HTML_PART_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation; "
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
}


@dataclass(frozen=True)
class Link:
    text: str
    href: str
    section: str = ""


@dataclass(frozen=True)
class MailSummary:
    name: str
    sender: str
    to: str
    subject: str
    received: datetime


@dataclass(frozen=True)
class Mail:
    summary: MailSummary
    text: str | None
    html: str | None

    def text_segments(self) -> list[list[tuple[str, str | None]]]:
        """The text part line by line, each line as (text, link or None) pieces."""
        return [linkify(line) for line in (self.text or "").splitlines()]

    def links(self) -> list[Link]:
        """The web links of the HTML part (else of the text part), each once, in order."""
        found = _html_links(self.html) if self.html else [Link(url, url) for url in _urls(self.text or "")]
        seen: set[str] = set()
        unique = []
        for link in found:
            if link.href not in seen:
                seen.add(link.href)
                unique.append(link)
        return unique


def linkify(line: str) -> list[tuple[str, str | None]]:
    """Split a line into plain pieces and http(s) links (trailing punctuation left out)."""
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for match in _URL.finditer(line):
        url = match.group(0).rstrip(_TRAILING)
        if match.start() > position:
            pieces.append((line[position : match.start()], None))
        pieces.append((url, url))
        position = match.start() + len(url)
    if position < len(line):
        pieces.append((line[position:], None))
    return pieces


def _urls(text: str) -> list[str]:
    return [piece for line in text.splitlines() for piece, href in linkify(line) if href]


class _LinkCollector(HTMLParser):
    """The http(s) links of an HTML mail, each with its text and the heading it sits under
    (a digest repeats "Renew" once per instance)."""

    _HEADINGS = ("h1", "h2", "h3", "h4")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[Link] = []
        self._href: str | None = None
        self._text: list[str] = []
        self._heading: list[str] | None = None
        self._section = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HEADINGS:
            self._heading = []
        elif tag == "a":
            href = (dict(attrs).get("href") or "").strip()
            self._href = href if href.lower().startswith(("http://", "https://")) else None
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HEADINGS and self._heading is not None:
            self._section = " ".join("".join(self._heading).split())
            self._heading = None
        elif tag == "a" and self._href is not None:
            text = " ".join("".join(self._text).split()) or self._href
            self.links.append(Link(text=text, href=self._href, section=self._section))
            self._href = None


def _html_links(html: str) -> list[Link]:
    collector = _LinkCollector()
    collector.feed(html)
    collector.close()
    return collector.links


def mailbox_folder(runtime: RuntimeDep) -> Path:
    folder = runtime.settings.sandbox_mailbox_dir
    if not folder:
        raise NotFound("there is no such page")
    return Path(folder)


def read_mail(path: Path, *, with_body: bool = True) -> Mail:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    received = datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc)
    if message["Date"]:
        try:
            received = parsedate_to_datetime(str(message["Date"])).astimezone(timezone.utc)
        except (TypeError, ValueError):
            pass
    summary = MailSummary(
        name=path.name, sender=str(message["From"] or ""), to=str(message["To"] or ""),
        subject=str(message["Subject"] or "(no subject)"), received=received,
    )
    if not with_body:
        return Mail(summary=summary, text=None, html=None)
    return Mail(summary=summary, text=_part(message, "plain"), html=_part(message, "html"))


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset: show what can be decoded
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return content if isinstance(content, str) else None


def newest_first(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    files = [path for path in folder.iterdir() if _NAME.match(path.name) and path.is_file()]
    return sorted(files, key=lambda path: (path.stat().st_mtime_ns, path.name), reverse=True)


def _mail_path(folder: Path, name: str) -> Path:
    path = folder / name
    if not _NAME.match(name) or not path.is_file():
        raise NotFound(f"no mail {name} in the sandbox mailbox")
    return path


# Plain functions: they read files, so FastAPI runs them off the event loop.
@router.get("/mailbox")
def mailbox(request: Request, runtime: RuntimeDep, viewer: ViewerDep) -> HTMLResponse:
    folder = mailbox_folder(runtime)
    files = newest_first(folder)
    mails = [read_mail(path, with_body=False).summary for path in files[:SHOWN]]
    return page(
        request, "mailbox.html", viewer=viewer, title="Mailbox", mails=mails, total=len(files), folder=str(folder),
    )


@router.get("/mailbox/{name}")
def mail(name: str, request: Request, runtime: RuntimeDep, viewer: ViewerDep) -> HTMLResponse:
    found = read_mail(_mail_path(mailbox_folder(runtime), name))
    return page(request, "mailbox_mail.html", viewer=viewer, title=found.summary.subject, mail=found)


@router.get("/mailbox/{name}/html")
def mail_html(name: str, runtime: RuntimeDep) -> Response:
    found = read_mail(_mail_path(mailbox_folder(runtime), name))
    if found.html is None:
        raise NotFound(f"mail {name} has no HTML part")
    return Response(found.html, media_type="text/html; charset=utf-8", headers=HTML_PART_HEADERS)
