"""What the notifier's tests build: lease messages, the api's internal endpoints as a
small fake, a real SMTP server (aiosmtpd) that keeps what it receives, and a webhook
receiver."""

from __future__ import annotations

import email
import email.policy
import http.server
import itertools
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from fastapi import HTTPException, Request

from zc_common.internal_api import (
    AccountWebhook,
    ActionLinksRequest,
    DeferOutcome,
    Deferral,
    DeferRequest,
    DeferResult,
    LateWarning,
    LeaseRef,
    NoticeRecipients,
    NoticeRecipientsRequest,
    NotificationKeys,
    WarningDelivered,
    WarningsDelivered,
    WarningsRecorded,
)
from zc_common.messages import (
    BlastRadiusHalted,
    LeaseChange,
    LeaseChanged,
    LeaseExpiringSoon,
    LeaseSnapshot,
    LeaseStatus,
)
from zc_common.settings import NotifierSettings

from tests.support.credentials import NOTIFIER_TOKEN
from tests.support.fake_api import FakeInternalApi
from tests.support.ports import free_port

SERVICE_TOKEN = NOTIFIER_TOKEN  # the credential the fake api accepts
OWNER = "dev@bigdb.example"
OTHER_OWNER = "tester@bigdb.example"
ADMINS = ["admin@bigdb.example", "ops@bigdb.example"]
UPSTREAM_ACCOUNT = "123456789012"
PUBLIC_URL = "https://zerocloud.test"

_lease_ids = itertools.count(1)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- messages -------------------------------------------------------------------------


def lease_snapshot(**overrides: Any) -> LeaseSnapshot:
    lease_id = overrides.pop("lease_id", None) or next(_lease_ids)
    values: dict[str, Any] = {
        "lease_id": lease_id,
        "version": 1,
        "status": LeaseStatus.active,
        "owner_email": OWNER,
        "expires_at": utcnow() + timedelta(days=3),
        "account_id": 1,
        "cloud_account_id": 7,
        "upstream_account_id": UPSTREAM_ACCOUNT,
        "region": "eu-west-1",
        "instance_id": f"i-{lease_id:017x}",
        "instance_type": "t3.micro",
        "instance_name": f"build-{lease_id}",
        "cloud_account_name": "bigdb-dev",
        "mode": "enforce",
        "action_on_expiry": "stop",
    }
    values.update(overrides)
    return LeaseSnapshot(**values)


def lease_changed(change: LeaseChange | str, lease: LeaseSnapshot | None = None, **overrides: Any) -> LeaseChanged:
    lease = lease or lease_snapshot()
    values: dict[str, Any] = {
        "change": change,
        "lease": lease,
        "actor": "service:api",
        "expire_at": lease.expires_at if lease.status is LeaseStatus.active else None,
    }
    values.update(overrides)
    return LeaseChanged(**values)


def expiring_soon(lease: LeaseSnapshot | None = None, **overrides: Any) -> LeaseExpiringSoon:
    lease = lease or lease_snapshot(expires_at=utcnow() + timedelta(hours=1))
    return LeaseExpiringSoon(lease=lease, warning_at=overrides.pop("warning_at", utcnow()), **overrides)


def blast_radius_halted(**overrides: Any) -> BlastRadiusHalted:
    values: dict[str, Any] = {
        "account_id": 1,
        "cloud_account_id": 7,
        "upstream_account_id": UPSTREAM_ACCOUNT,
        "admin_emails": list(ADMINS),
        "held_lease_ids": [11, 12, 13, 14, 15],
        "cap": "at most 50% of 10 managed instances (5) per hour",
    }
    values.update(overrides)
    return BlastRadiusHalted(**values)


# --- the api --------------------------------------------------------------------------


class FakeApi(FakeInternalApi):
    """The api's notification and action-link endpoints, as the spec describes them:
    reserve answers the keys not yet sent; links are minted per (lease, version, action)."""

    def __init__(self) -> None:
        super().__init__(SERVICE_TOKEN)
        self.sent: set[str] = set()
        self.reserved: set[str] = set()
        self.link_requests: list[ActionLinksRequest] = []
        self.links_fail_with: int | None = None  # answer action-links with this status
        self.unconfirmed: set[str] = set()  # addresses not confirmed (everyone else is)
        self.webhooks: dict[int, str] = {}  # accounts' own webhooks
        self.warned: list[WarningDelivered] = []  # every warning reported, in order (repeats too)
        self.sent_when_warned: list[set[str]] = []  # the keys marked sent when each report came
        self.deferred: list[LateWarning] = []  # every late warning the api was asked to move the reap for
        self.defer_answer: DeferOutcome = DeferOutcome.deferred
        self._tokens = itertools.count(1)
        self.app.post("/internal/v1/notifications/reserve")(self._reserve)
        self.app.post("/internal/v1/notifications/sent")(self._sent)
        self.app.post("/internal/v1/action-links")(self._action_links)
        self.app.post("/internal/v1/notifications/recipients")(self._recipients)
        self.app.post("/internal/v1/leases/warned")(self._warned)
        self.app.post("/internal/v1/leases/defer")(self._defer)

    async def _warned(self, request: Request, body: WarningsDelivered) -> WarningsRecorded:
        self._authorize(request)
        self.requests["warned"] += 1
        self.warned.extend(body.warnings)
        self.sent_when_warned.append(set(self.sent))
        return WarningsRecorded(recorded=[LeaseRef(lease_id=w.lease_id, version=w.version) for w in body.warnings])

    async def _defer(self, request: Request, body: DeferRequest) -> DeferResult:
        self._authorize(request)
        self.requests["defer"] += 1
        self.deferred.extend(body.warnings)
        deferred = self.defer_answer is DeferOutcome.deferred
        return DeferResult(data=[
            Deferral(
                lease_id=w.lease_id, version=w.version, warning_at=w.warning_at, outcome=self.defer_answer,
                new_version=w.version + 1 if deferred else None,
                expires_at=utcnow() + timedelta(hours=1) if deferred else None,
            )
            for w in body.warnings
        ])

    async def _reserve(self, request: Request, body: NotificationKeys) -> NotificationKeys:
        self._authorize(request)
        self.requests["reserve"] += 1
        self.reserved.update(body.keys)
        return NotificationKeys(keys=[key for key in body.keys if key not in self.sent])

    async def _sent(self, request: Request, body: NotificationKeys) -> None:
        self._authorize(request)
        self.requests["sent"] += 1
        self.sent.update(body.keys)

    async def _recipients(self, request: Request, body: NoticeRecipientsRequest) -> NoticeRecipients:
        self._authorize(request)
        self.requests["recipients"] += 1
        return NoticeRecipients(
            confirmed=[r for r in body.recipients if r.email not in self.unconfirmed],
            webhooks=[AccountWebhook(account_id=a, url=self.webhooks[a]) for a in body.account_ids if a in self.webhooks],
        )

    async def _action_links(self, request: Request, body: ActionLinksRequest) -> dict[str, Any]:
        self._authorize(request)
        self.requests["action_links"] += 1
        if self.links_fail_with is not None:
            raise HTTPException(self.links_fail_with, "action links unavailable")
        self.link_requests.append(body)
        return {
            "data": [
                {
                    "lease_id": ref.lease_id,
                    "version": ref.version,
                    "links": {
                        action.value: f"{PUBLIC_URL}/a/{action.value}-{ref.lease_id}-{ref.version}-{next(self._tokens)}"
                        for action in body.actions
                    },
                }
                for ref in body.leases
            ]
        }


# --- SMTP -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None
    tls: bool

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_subtype() == subtype, f"no text/{subtype} part"
        return str(body.get_content())

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")


class _Keeper:
    """aiosmtpd handler: keeps every mail; refuses recipients in ``refuse`` with 550."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.sink.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if session.authenticated and isinstance(session.auth_data, str) else None
        with self.sink.lock:
            self.sink.received.append(
                ReceivedMail(
                    mail_from=str(envelope.mail_from),
                    rcpt_tos=list(envelope.rcpt_tos),
                    message=message,
                    login=login,
                    tls=session.ssl is not None,
                )
            )
        return "250 OK"


class SmtpSink:
    """A real SMTP server on a fixed port that can be started late, stopped and started
    again (the port stays the same, as a mail relay's would)."""

    def __init__(
        self,
        *,
        tls_context: Any = None,
        login: tuple[str, str] | None = None,
        auth_require_tls: bool = True,
    ) -> None:
        self.port = free_port()
        self.tls_context = tls_context
        self.login = login
        self.auth_require_tls = auth_require_tls
        self.received: list[ReceivedMail] = []
        self.refuse: set[str] = set()
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def _authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self.login is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

    def start(self) -> None:
        options: dict[str, Any] = {}
        if self.tls_context is not None:
            options.update(tls_context=self.tls_context, require_starttls=True)
        if self.login is not None:
            options.update(
                authenticator=self._authenticate, auth_required=True, auth_require_tls=self.auth_require_tls
            )
        self._controller = Controller(_Keeper(self), hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    @property
    def mails(self) -> list[ReceivedMail]:
        with self.lock:
            return list(self.received)

    def mails_to(self, recipient: str) -> list[ReceivedMail]:
        return [mail for mail in self.mails if recipient in mail.rcpt_tos]


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM), made with ``cryptography``."""
    crypto = pytest.importorskip("cryptography", reason="STARTTLS test needs cryptography to make a certificate")
    del crypto
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "zerocloud-test-smtp")])
    now = utcnow()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


# --- webhook --------------------------------------------------------------------------


class WebhookReceiver:
    """A plain HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("Content-Length", 0))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/zerocloud"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- settings and waiting -------------------------------------------------------------


def notifier_settings(sink: SmtpSink | None = None, **overrides: Any) -> NotifierSettings:
    """Fast settings for tests: a short digest window and quick retries."""
    values: dict[str, Any] = {
        "amqp_url": "memory://",
        "bus": "memory",
        "api_url": "http://api.test",
        "service_token": SERVICE_TOKEN,
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port if sink else free_port(),
        "smtp_timeout": 5.0,
        "mail_from": "ZeroCloud <zerocloud@zerocloud.test>",
        "digest_window": 0.5,
        "send_attempts": 3,
        "send_retry_delay": 0.05,
        "redelivery_attempts": 50,
        "redelivery_delay": 0.2,
    }
    values.update(overrides)
    return NotifierSettings(**values)


def links_in(text: str) -> Iterator[str]:
    return (word for word in text.split() if word.startswith(f"{PUBLIC_URL}/a/"))
