"""Every HTTP route of the api, collected from the domain folders. The public listener:
the API under /api/v1 (user tokens), the pages action links open under /a/ (the link's
token), and the web UI's pages. The internal listener: /internal/v1 (each service's own
credential), never reachable through the public one."""

from __future__ import annotations

from fastapi import APIRouter

from zc_api.accounts.endpoints import router as accounts
from zc_api.audit.endpoints import router as audit
from zc_api.cloudaccounts.endpoints import router as cloudaccounts
from zc_api.cloudevents.endpoints import router as cloudevents
from zc_api.internal.endpoints import router as internal
from zc_api.invitations.endpoints import internal_router as people_links
from zc_api.invitations.endpoints import router as invitations
from zc_api.leases.endpoints import router as leases
from zc_api.links.endpoints import internal_router as action_links
from zc_api.links.endpoints import pages_router as action_link_pages
from zc_api.notifications.endpoints import router as notifications
from zc_api.policies.endpoints import router as policies
from zc_api.reaping.endpoints import router as reaping
from zc_api.resources.endpoints import router as resources
from zc_api.sweeps.endpoints import internal_router as sweep_reports
from zc_api.sweeps.endpoints import router as sweeps
from zc_api.tokens.endpoints import router as tokens
from zc_api.users.endpoints import router as users
from zc_api.web.routes import router as web_pages

PUBLIC = (
    accounts, policies, cloudaccounts, users, invitations, tokens, resources, leases, audit, cloudevents, sweeps,
)
INTERNAL = (internal, reaping, action_links, notifications, people_links, sweep_reports)

# No JSON body the API takes comes near this (a cloud event is at most
# ZC_MAX_CLOUDEVENT_BYTES, capped below it); without a cap anyone, even without a token,
# could make the api buffer any amount, since a body is read before the caller is known.
MAX_BODY_BYTES = 4 * 1024 * 1024

public_router = APIRouter(prefix="/api/v1", max_body_size=MAX_BODY_BYTES)
for domain in PUBLIC:
    public_router.include_router(domain)

router = APIRouter()
router.include_router(public_router)
internal_router = APIRouter(prefix="/internal/v1", max_body_size=MAX_BODY_BYTES)
for domain in INTERNAL:
    internal_router.include_router(domain)
router.include_router(action_link_pages)
router.include_router(web_pages)
