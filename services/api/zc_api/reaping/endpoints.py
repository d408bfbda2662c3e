"""Internal routes for the reaper: claim expired leases, report what was done."""

from __future__ import annotations

from fastapi import APIRouter, Response

from zc_common.internal_api import ClaimRequest, ClaimResult, ReapOutcomes

from zc_api.deps import ReaperDep, SessionDep
from zc_api.errors import responses
from zc_api.reaping import service

router = APIRouter(tags=["internal"])

# Only the reaper calls these; the audit log names it.
REAPER = "service:reaper"


@router.post(
    "/leases/claim", response_model=ClaimResult, responses=responses(401, 404, 422),
    summary="Claim expired leases at their version (compare-and-set), within the blast-radius cap (reaper)",
)
async def claim_leases(body: ClaimRequest, session: SessionDep, _: ReaperDep) -> ClaimResult:
    return await service.claim(session, refs=body.leases, actor=REAPER)


@router.post(
    "/leases/outcomes", status_code=204, response_class=Response, responses=responses(401, 404, 422),
    summary="Record what the reaper did to the leases it claimed; others are ignored (reaper)",
)
async def report_outcomes(body: ReapOutcomes, session: SessionDep, _: ReaperDep) -> None:
    await service.record_outcomes(session, outcomes=body.outcomes, actor=REAPER)
