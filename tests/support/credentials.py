"""Each service's credential toward the api, as a test run's api and services share them:
random per run (a placeholder or guessable one would not start anything)."""

from __future__ import annotations

import secrets

INGESTOR_TOKEN = f"zc_ingestor_{secrets.token_urlsafe(24)}"
NOTIFIER_TOKEN = f"zc_notifier_{secrets.token_urlsafe(24)}"
REAPER_TOKEN = f"zc_reaper_{secrets.token_urlsafe(24)}"
SERVICE_TOKENS = {"ingestor": INGESTOR_TOKEN, "notifier": NOTIFIER_TOKEN, "reaper": REAPER_TOKEN}

# What ApiSettings takes: ``ApiSettings(**API_CREDENTIALS, ...)``.
API_CREDENTIALS = {f"{service}_token": token for service, token in SERVICE_TOKENS.items()}


def bearer(service: str) -> dict[str, str]:
    """The Authorization header of ``service`` (ingestor, notifier or reaper)."""
    return {"Authorization": f"Bearer {SERVICE_TOKENS[service]}"}
