"""HTTP routes for sweeps: an admin asks for one and follows it (public); the ingestor
reports on it (internal)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from zc_common.internal_api import SweepReport

from zc_api.bounds import RowId
from zc_api.deps import IngestorDep, RuntimeDep, SessionDep, UserDep
from zc_api.errors import responses
from zc_api.sweeps import service
from zc_api.sweeps.schemas import SweepCreate, SweepPublic, SweepRequestedPublic, SweepsRequested

router = APIRouter(tags=["sweeps"])
internal_router = APIRouter(tags=["internal"])


@router.post(
    "/sweeps", status_code=202, response_model=SweepsRequested, responses=responses(401, 403, 404, 413, 422),
    summary="Sweep now (admin): list what AWS holds in a cloud account's regions, or in all of your account's",
    description="One sweep per cloud account and region. A cloud account and region already being swept is "
    "not swept twice: the answer is the sweep in progress, with `already_running`. Follow each with "
    "GET /sweeps/{id}. 404: the cloud account is not one of your account's; 422: the region is not one it "
    "watches.",
)
async def request_sweeps(
    wanted: SweepCreate, session: SessionDep, caller: UserDep, runtime: RuntimeDep
) -> SweepsRequested:
    stale_after = timedelta(seconds=runtime.settings.sweep_stale_seconds)
    sweeps = await service.request(session, caller=caller, wanted=wanted, stale_after=stale_after)
    data = [SweepRequestedPublic.of(sweep, already_running=running) for sweep, running in sweeps]
    return SweepsRequested(data=data, count=len(data))


@router.get(
    "/sweeps/{sweep_id}", response_model=SweepPublic, responses=responses(401, 403, 404, 422),
    summary="A sweep's state and, once done, what it counted (admin)",
)
async def get_sweep(sweep_id: RowId, session: SessionDep, caller: UserDep) -> SweepPublic:
    return SweepPublic.model_validate(await service.get(session, caller=caller, sweep_id=sweep_id))


@internal_router.post(
    "/sweeps/{sweep_id}/report", status_code=204, responses=responses(401, 404, 413, 422),
    summary="How a sweep asked for by id goes: running, then done with its counts or failed (ingestor)",
)
async def report_sweep(sweep_id: RowId, body: SweepReport, session: SessionDep, _: IngestorDep) -> None:
    await service.report(session, sweep_id=sweep_id, report=body)
