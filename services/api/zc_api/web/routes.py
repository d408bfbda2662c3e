"""Every page route of the web UI, collected in one place so none is forgotten."""

from __future__ import annotations

from fastapi import APIRouter

from zc_api.confirmations.pages import router as email_confirmation
from zc_api.invitations.pages import router as invitation
from zc_api.web.audit import router as audit
from zc_api.web.cloudaccounts import router as cloud_accounts
from zc_api.web.endpoints import router as start
from zc_api.web.leases import router as leases
from zc_api.web.login import router as login
from zc_api.web.mailbox import router as mailbox
from zc_api.web.people import router as people
from zc_api.web.policy import router as policy
from zc_api.web.summary import router as summary
from zc_api.web.tokens import router as tokens

# The largest form a page posts is a few kilobytes. Without a cap anyone, signed in or
# not, could make the api buffer up to 1000 fields of 1 MB each (Starlette's own limits).
MAX_FORM_BYTES = 256 * 1024

router = APIRouter(include_in_schema=False, max_body_size=MAX_FORM_BYTES)
for pages in (
    start, login, leases, tokens, summary, cloud_accounts, policy, people, audit, invitation, email_confirmation,
    mailbox,
):
    router.include_router(pages)
