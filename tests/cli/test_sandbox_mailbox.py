"""The sandbox's mailbox page (/mailbox): only when the api has a mailbox folder; lists the
.eml files newest first; shows a mail's text with its links clickable and nothing of it
executable; serves the HTML part alone under a CSP that sandboxes it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.api.factories import Api, running_api, settings
from zc_api.models import User
from zc_api.web.render import nav_for
from zc_api.web.session import Viewer
from zc_notifier.mail import Mail

RENEW = "http://127.0.0.1:8000/a/renew-token_1"
SHUT_DOWN = "http://127.0.0.1:8000/a/shutdown-token_2"
TEXT = f"""ZeroCloud: 1 new lease

* New lease: i-0123456789abcdef0 <script>alert('text')</script>
  Renew      {RENEW}
  Shut down  {SHUT_DOWN}.
"""
HTML = f"""<!DOCTYPE html><html><head><title>x</title><script>alert('head')</script></head>
<body style="color: #111"><h1>ZeroCloud: 1 new lease</h1>
<h2>New lease: i-0123456789abcdef0</h2>
<p><a href="{RENEW}">Renew</a> <a href="{SHUT_DOWN}">Shut down now</a></p>
<a href="javascript:alert('link')">Click me</a>
<img src="http://tracker.example.com/pixel.gif" onerror="alert('img')">
<form action="http://evil.example.com/" method="post"><button>Go</button></form>
</body></html>"""


def write_mail(folder: Path, name: str, *, to: str, subject: str, text: str = TEXT, html: str | None = HTML,
               mtime: float | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if html is None:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "zerocloud@sandbox.localhost", to, subject
        message.set_content(text)
    else:
        message = Mail(sender="zerocloud@sandbox.localhost", recipient=to, subject=subject, text=text,
                       html=html).as_email()
    path = folder / name
    path.write_bytes(bytes(message))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def mailbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "mailbox"


@pytest.fixture
async def sandbox_api(clean_database: str, moto_url: str, mailbox_dir: Path) -> AsyncIterator[Api]:
    async with running_api(settings(clean_database, moto_url, sandbox_mailbox_dir=str(mailbox_dir))) as api:
        yield api


@pytest.fixture
async def plain_api(clean_database: str, moto_url: str) -> AsyncIterator[Api]:
    async with running_api(settings(clean_database, moto_url)) as api:
        yield api


async def test_the_mailbox_lists_the_mails_newest_first_without_sign_in(sandbox_api: Api, mailbox_dir: Path) -> None:
    write_mail(mailbox_dir, "20300101-120000-aaaaaa.eml", to="alice@example.com", subject="ZeroCloud: 1 new lease",
               mtime=1_900_000_000)
    write_mail(mailbox_dir, "20300101-121000-bbbbbb.eml", to="bob@example.com", subject="ZeroCloud: lease ends soon",
               mtime=1_900_000_600)
    (mailbox_dir / "notes.txt").write_text("not a mail")

    page = await sandbox_api.client.get("/mailbox")

    assert page.status_code == 200
    body = page.text
    assert body.index("bob@example.com") < body.index("alice@example.com"), "newest first"
    assert '<a href="/mailbox/20300101-121000-bbbbbb.eml">ZeroCloud: lease ends soon</a>' in body
    assert '<a href="/mailbox/20300101-120000-aaaaaa.eml">ZeroCloud: 1 new lease</a>' in body
    assert "notes.txt" not in body
    assert "127.0.0.1" in body and "no" in body and "sign-in" in body  # why it is open
    assert '<a href="/mailbox" aria-current="page">Mailbox</a>' in body  # in the menu, in the sandbox


async def test_an_empty_mailbox_says_how_to_get_mail(sandbox_api: Api) -> None:
    page = await sandbox_api.client.get("/mailbox")
    assert page.status_code == 200
    assert "No mail yet" in page.text and "zerocloud-cli sandbox launch" in page.text


async def test_a_mail_shows_its_text_escaped_and_its_links_clickable(sandbox_api: Api, mailbox_dir: Path) -> None:
    write_mail(mailbox_dir, "20300101-120000-aaaaaa.eml", to="alice@example.com", subject="ZeroCloud: 1 new lease")

    page = await sandbox_api.client.get("/mailbox/20300101-120000-aaaaaa.eml")

    assert page.status_code == 200
    body = page.text
    assert "alice@example.com" in body and "ZeroCloud: 1 new lease" in body
    assert "<script" not in body and "&lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt;" in body
    # The text part's links, and the HTML part's with the heading they sit under.
    assert f'<a href="{RENEW}">{RENEW}</a>' in body
    assert f'<a href="{SHUT_DOWN}">{SHUT_DOWN}</a>.' in body  # the full stop is not part of it
    assert f'New lease: i-0123456789abcdef0: <a href="{RENEW}">Renew</a>' in body
    assert f'<a href="{SHUT_DOWN}">Shut down now</a>' in body
    assert "javascript:" not in body and "tracker.example.com" not in body and "evil.example.com" not in body
    assert '<a href="/mailbox/20300101-120000-aaaaaa.eml/html">' in body
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy  # the site's: no script at all


async def test_the_html_part_is_served_alone_in_a_script_free_sandbox(sandbox_api: Api, mailbox_dir: Path) -> None:
    write_mail(mailbox_dir, "20300101-120000-aaaaaa.eml", to="alice@example.com", subject="x")

    page = await sandbox_api.client.get("/mailbox/20300101-120000-aaaaaa.eml/html")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["x-content-type-options"] == "nosniff"
    directives = {d.strip().split(" ")[0]: d.strip() for d in page.headers["content-security-policy"].split(";")}
    # A CSP sandbox without allow-scripts / allow-forms / allow-same-origin: nothing in it runs
    # or submits, and it cannot reach the api as this origin.
    assert "sandbox" in directives
    for forbidden in ("allow-scripts", "allow-forms", "allow-same-origin"):
        assert forbidden not in directives["sandbox"]
    assert directives["default-src"] == "default-src 'none'" and "script-src" not in directives
    assert directives["form-action"] == "form-action 'none'"
    assert directives["img-src"] == "img-src data:"  # no tracking pixel loads
    assert f'<a href="{RENEW}">Renew</a>' in page.text  # its links still work


async def test_a_mail_without_html_has_no_html_page(sandbox_api: Api, mailbox_dir: Path) -> None:
    write_mail(mailbox_dir, "plain.eml", to="alice@example.com", subject="plain", html=None)

    page = await sandbox_api.client.get("/mailbox/plain.eml")
    assert page.status_code == 200
    assert f'<a href="{RENEW}">{RENEW}</a>' in page.text  # links come from the text part then
    assert "/mailbox/plain.eml/html" not in page.text
    assert (await sandbox_api.client.get("/mailbox/plain.eml/html")).status_code == 404


@pytest.mark.parametrize("name", ["missing.eml", "..%2Fsecret.eml", ".hidden.eml", "secret.txt", "%2Fetc%2Fpasswd"])
async def test_only_mail_files_of_the_folder_are_shown(sandbox_api: Api, mailbox_dir: Path, name: str) -> None:
    write_mail(mailbox_dir, "real.eml", to="alice@example.com", subject="x")
    (mailbox_dir.parent / "secret.eml").write_text("Subject: secret\n\nsecret")
    (mailbox_dir / ".hidden.eml").write_text("Subject: hidden\n\nhidden")
    (mailbox_dir / "secret.txt").write_text("secret")

    page = await sandbox_api.client.get(f"/mailbox/{name}")

    assert page.status_code == 404
    assert "secret" not in page.text.replace(name, "") and "hidden" not in page.text.replace(name, "")


@pytest.mark.parametrize("path", ["/mailbox", "/mailbox/real.eml", "/mailbox/real.eml/html"])
async def test_outside_the_sandbox_there_is_no_mailbox(plain_api: Api, path: str) -> None:
    page = await plain_api.client.get(path)
    assert page.status_code == 404
    assert "Mailbox" not in page.text


def test_the_menu_has_the_mailbox_only_in_the_sandbox() -> None:
    admin = Viewer(user=User(id=1, account_id=1, email="a@example.com", role="admin"), session_id=1, csrf_token="x")
    dev = Viewer(user=User(id=2, account_id=1, email="d@example.com", role="dev"), session_id=2, csrf_token="y")
    for viewer in (None, admin, dev):
        assert ("/mailbox", "Mailbox") not in nav_for(viewer)
        assert nav_for(viewer, sandbox=True)[-1] == ("/mailbox", "Mailbox")
    assert nav_for(admin, sandbox=True)[:-1] == nav_for(admin)
