"""A rendered mail, as every channel receives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr


@dataclass(frozen=True)
class Mail:
    """One recipient's mail: a digest of one or more notices, in text and HTML.
    ``keys`` are the notification keys it delivers; ``summary`` has one line per notice
    (what a chat channel posts); ``destination`` is the account's webhook, for a channel
    that posts per account."""

    sender: str
    recipient: str
    subject: str
    text: str
    html: str
    keys: tuple[str, ...] = ()
    summary: tuple[str, ...] = field(default=())
    destination: str | None = None

    def as_email(self) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = self.recipient
        message["Subject"] = self.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain=_domain(self.sender))
        # Automatic mail: no out-of-office replies to it (RFC 3834).
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self.text)
        message.add_alternative(self.html, subtype="html")
        return message


def _domain(address: str) -> str:
    _, email = parseaddr(address)
    return email.rpartition("@")[2] or "zerocloud.invalid"
