"""Mail over SMTP (aiosmtplib): optional STARTTLS (required when configured) and AUTH."""

from __future__ import annotations

from typing import Any

import aiosmtplib

from zc_notifier.channels.base import Channel, RecipientRefused, SendFailed, channels
from zc_notifier.mail import Mail


@channels.register("smtp")
class SmtpChannel(Channel):
    name = "smtp"

    def _options(self, *, login: bool = True) -> dict[str, Any]:
        s = self.settings
        return {
            "hostname": s.smtp_host,
            "port": s.smtp_port,
            "username": s.smtp_username if login else None,
            "password": s.smtp_password if login else None,
            "use_tls": False,
            # True: STARTTLS or fail (never AUTH in clear); False: plain, as configured.
            "start_tls": s.smtp_starttls,
            "cert_bundle": s.smtp_ca_file,
            "timeout": s.smtp_timeout,
        }

    @property
    def _where(self) -> str:
        return f"SMTP {self.settings.smtp_host}:{self.settings.smtp_port}"

    async def send(self, mail: Mail) -> None:
        try:
            await aiosmtplib.send(mail.as_email(), **self._options())
        except aiosmtplib.SMTPRecipientsRefused as error:
            codes = [refusal.code for refusal in error.recipients]
            if codes and all(code >= 500 for code in codes):
                raise RecipientRefused(f"{self._where} refused {mail.recipient}: {error}") from error
            raise SendFailed(f"{self._where} deferred {mail.recipient}: {error}") from error
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise SendFailed(f"{self._where}: {type(error).__name__}: {error}") from error

    async def ready(self) -> bool:
        """Connect (with STARTTLS when configured) and NOOP; no login, so a probe every few
        seconds does not fill the server's auth log."""
        client = aiosmtplib.SMTP(**self._options(login=False))
        async with client:
            response = await client.noop()
        return 200 <= response.code < 300
