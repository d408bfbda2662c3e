"""Sweeps an admin asks for: one per cloud account and region, published to the ingestor
through the outbox, never two at once for the same target (a partial unique index, so
racing requests find each other), and recorded as the ingestor reports on them."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import InvalidInput, NotFound
from zc_common.internal_api import SweepReport, SweepState
from zc_common.messages import SweepRequested, utcnow

from zc_api import bulk
from zc_api.audit import service as audit
from zc_api.auth.principal import Principal
from zc_api.cloudaccounts import service as cloudaccounts
from zc_api.models import SWEEP_IN_PROGRESS_SQL, CloudAccount, Sweep
from zc_api.outbox import service as outbox
from zc_api.sweeps.schemas import SweepCreate

log = logging.getLogger("zc.api.sweeps")

# One request names at most this many (cloud account, region) pairs: beyond, name one.
MAX_SWEEPS_PER_REQUEST = 1000
_IN_PROGRESS = (SweepState.requested.value, SweepState.running.value)

_SWEEP = bulk.table(Sweep)
_INSERT = (
    pg.insert(_SWEEP)
    .values(
        account_id=sa.bindparam("account_id"), cloud_account_id=sa.bindparam("cloud_account_id"),
        region=sa.bindparam("region"), requested_by=sa.bindparam("requested_by"), state=SweepState.requested.value,
    )
    .on_conflict_do_nothing(
        index_elements=[_SWEEP.c.cloud_account_id, _SWEEP.c.region], index_where=sa.text(SWEEP_IN_PROGRESS_SQL)
    )
    .returning(_SWEEP.c.id)
)


async def request(
    session: AsyncSession, *, caller: Principal, wanted: SweepCreate, stale_after: timedelta
) -> list[tuple[Sweep, bool]]:
    """The sweep of each target asked for, and whether it was already in progress (then
    nothing new is published for it)."""
    targets = await _targets(session, caller=caller, wanted=wanted)
    answered: list[tuple[Sweep, bool]] = []
    for cloud, region in targets:
        answered.append(await _request_one(session, caller=caller, cloud=cloud, region=region, stale_after=stale_after))
    return answered


async def _targets(session: AsyncSession, *, caller: Principal, wanted: SweepCreate) -> list[tuple[CloudAccount, str]]:
    if wanted.cloud_account_id is not None:
        # Another tenant's cloud account is not there (404), as for every cross-tenant lookup.
        cloud = await cloudaccounts.get(session, caller=caller, cloud_account_id=wanted.cloud_account_id)
        caller.require_admin(cloud.account_id)
        if wanted.region is not None and wanted.region not in cloud.regions:
            raise InvalidInput(
                f"cloud account {cloud.id} does not watch region {wanted.region} (its regions: "
                f"{', '.join(cloud.regions)}): sweep one of those, or add it with "
                f"`zerocloud-cli update cloudaccount {cloud.id} --regions ...`",
                field="region",
            )
        targets = [(cloud, region) for region in cloud.regions if wanted.region in (None, region)]
    else:
        if caller.kind != "user" or caller.account_id is None:
            raise InvalidInput(
                "you belong to no account yet, so there is no cloud account to sweep", field="cloud_account_id"
            )
        caller.require_admin(caller.account_id)
        clouds = (
            await session.scalars(
                select(CloudAccount)
                .where(col(CloudAccount.account_id) == caller.account_id, col(CloudAccount.removed_at).is_(None))
                .order_by(col(CloudAccount.id))
            )
        ).all()
        targets = [(cloud, region) for cloud in clouds for region in cloud.regions if wanted.region in (None, region)]
        if not targets and wanted.region is not None:
            raise InvalidInput(f"no cloud account of your account watches region {wanted.region}", field="region")
        if not targets:
            raise InvalidInput(
                "your account has no cloud account to sweep: onboard one first", field="cloud_account_id"
            )
    if len(targets) > MAX_SWEEPS_PER_REQUEST:
        raise InvalidInput(
            f"that is {len(targets)} sweeps, more than {MAX_SWEEPS_PER_REQUEST} at once: name a cloud account "
            "or a region", field="cloud_account_id",
        )
    return targets


async def _request_one(
    session: AsyncSession, *, caller: Principal, cloud: CloudAccount, region: str, stale_after: timedelta
) -> tuple[Sweep, bool]:
    assert cloud.id is not None
    now = utcnow()
    # A sweep the ingestor went silent on (lost with a crashed replica, a report that never
    # came) must not block every later request.
    await session.execute(
        sa.update(_SWEEP)
        .where(
            _SWEEP.c.cloud_account_id == cloud.id, _SWEEP.c.region == region, _SWEEP.c.state.in_(_IN_PROGRESS),
            sa.func.coalesce(_SWEEP.c.started_at, _SWEEP.c.requested_at) < now - stale_after,
        )
        .values(
            state=SweepState.failed.value, finished_at=now,
            error=f"no word from the ingestor within {int(stale_after.total_seconds())} s: given up",
        )
    )
    for _ in range(3):  # the sweep found in progress may finish before it is read
        sweep_id = await session.scalar(
            _INSERT,
            {"account_id": cloud.account_id, "cloud_account_id": cloud.id, "region": region,
             "requested_by": caller.actor},
        )
        if sweep_id is not None:
            sweep = await session.get(Sweep, sweep_id)
            assert sweep is not None
            await outbox.enqueue(session, [SweepRequested(cloud_account_id=cloud.id, region=region, sweep_id=sweep_id)])
            audit.record(
                session, account_id=cloud.account_id, actor=caller.actor, action="sweep.requested",
                subject_type="sweep", subject_id=sweep_id, cloud_account_id=cloud.id, region=region,
            )
            return sweep, False
        running = await session.scalar(
            select(Sweep).where(
                col(Sweep.cloud_account_id) == cloud.id, col(Sweep.region) == region,
                col(Sweep.state).in_([SweepState.requested, SweepState.running]),
            )
        )
        if running is not None:
            return running, True
    raise RuntimeError(f"no sweep of cloud account {cloud.id} in {region} could be made or found")


async def get(session: AsyncSession, *, caller: Principal, sweep_id: int) -> Sweep:
    sweep = await session.get(Sweep, sweep_id)
    if sweep is None or caller.kind != "user" or sweep.account_id != caller.account_id:
        raise NotFound(f"sweep {sweep_id} not found")
    caller.require_admin(sweep.account_id)
    return sweep


async def report(session: AsyncSession, *, sweep_id: int, report: SweepReport) -> Sweep:
    """Record what the ingestor says of a sweep. A report on a sweep already ended (given
    up as stale, or a re-delivered request run twice) changes nothing."""
    if report.state is SweepState.requested:
        raise InvalidInput("a sweep is reported running, done or failed", field="state")
    sweep = await session.get(Sweep, sweep_id, with_for_update=True)
    if sweep is None:
        raise NotFound(f"sweep {sweep_id} not found", field="sweep_id")
    if not SweepState(sweep.state).in_progress:
        log.info("sweep %d is already %s: report %s ignored", sweep_id, sweep.state, report.state)
        return sweep
    now = utcnow()
    sweep.started_at = sweep.started_at or now
    sweep.state = report.state
    if report.state is not SweepState.running:
        sweep.finished_at = now
        sweep.instances_seen = report.instances_seen
        sweep.instances_gone = report.instances_gone
        if report.state is SweepState.failed:
            sweep.error = report.error or "the ingestor gave no reason"
    await session.flush()
    return sweep
