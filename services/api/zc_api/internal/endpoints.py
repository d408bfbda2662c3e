"""/internal/v1: what the ingestor and reaper ask the api, each with its own credential,
on the internal listener only (models in zc_common.internal_api, shared with their client)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from zc_common.internal_api import CloudAccountRecords, EventArrivals, KnownInstances

from zc_api.deps import CloudAccountReaderDep, IngestorDep, SessionDep
from zc_api.errors import responses
from zc_api.internal import service

router = APIRouter(tags=["internal"])


@router.get(
    "/cloudaccounts", response_model=CloudAccountRecords, responses=responses(401, 404, 422),
    summary="Onboarded cloud accounts of every tenant (ingestor, reaper)",
)
async def list_cloud_accounts(
    session: SessionDep,
    _: CloudAccountReaderDep,
    upstream_account_id: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
) -> CloudAccountRecords:
    return await service.cloud_accounts(session, upstream_account_id=upstream_account_id)


@router.get(
    "/cloudaccounts/{cloud_account_id}/instances", response_model=KnownInstances,
    responses=responses(401, 404, 422),
    summary="Instances the api holds as not gone in one cloud account and region (ingestor)",
)
async def known_instances(
    cloud_account_id: int,
    session: SessionDep,
    _: IngestorDep,
    region: Annotated[str, Query(min_length=1, max_length=32)],
) -> KnownInstances:
    return await service.known_instances(session, cloud_account_id=cloud_account_id, region=region)


@router.post(
    "/cloudaccounts/event-arrivals", status_code=204, responses=responses(401, 404, 413, 422),
    summary="Events came through these topics: verify reads whether events flow (ingestor)",
)
async def event_arrivals(body: EventArrivals, session: SessionDep, _: IngestorDep) -> None:
    await service.events_arrived(session, arrivals=body)
