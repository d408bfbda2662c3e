"""What the other services ask the api: the cloud accounts in force (all tenants; see
cloudaccounts/claims.py) and the instances it holds as not gone."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotFound
from zc_common.internal_api import CloudAccountRecord, CloudAccountRecords, EventArrivals, KnownInstances
from zc_common.messages import CloudAccountMode

from zc_api import bulk
from zc_api.cloudaccounts.claims import in_force
from zc_api.models import CloudAccount, EventFlow, Resource


def _record(row: CloudAccount) -> CloudAccountRecord:
    assert row.id is not None
    return CloudAccountRecord(
        id=row.id, account_id=row.account_id, name=row.name, upstream_account_id=row.upstream_account_id,
        role_arn=row.role_arn, external_id=row.external_id, regions=list(row.regions),
        mode=CloudAccountMode(row.mode), topic_arns=dict(row.topic_arns),
    )


async def cloud_accounts(
    session: AsyncSession, *, upstream_account_id: str | None = None
) -> CloudAccountRecords:
    # Only claims in force: removed, expired and contested ones get no events, no sweep
    # and no reaping; their role is not assumed.
    query = select(CloudAccount).where(in_force()).order_by(col(CloudAccount.id))
    if upstream_account_id is not None:
        query = query.where(col(CloudAccount.upstream_account_id) == upstream_account_id)
    rows = (await session.scalars(query)).all()
    return CloudAccountRecords(data=[_record(row) for row in rows], count=len(rows))


async def known_instances(session: AsyncSession, *, cloud_account_id: int, region: str) -> KnownInstances:
    row = await session.get(CloudAccount, cloud_account_id)
    if row is None or row.removed_at is not None:
        raise NotFound(f"cloud account {cloud_account_id} not found")
    ids = await session.scalars(
        select(col(Resource.instance_id))
        .where(
            col(Resource.cloud_account_id) == cloud_account_id,
            col(Resource.region) == region,
            col(Resource.gone).is_(False),
        )
        .order_by(col(Resource.instance_id))
    )
    return KnownInstances(cloud_account_id=cloud_account_id, region=region, instance_ids=list(ids))


_CLOUD = bulk.table(CloudAccount).alias("c")
_FLOW = bulk.table(EventFlow)
_TOPICS = sa.func.jsonb_each_text(_CLOUD.c.topic_arns).table_valued(
    sa.column("key", sa.Text), sa.column("value", sa.Text)
).alias("t")
_ARRIVING = pg.insert(_FLOW).from_select(
    ["cloud_account_id", "region", "topic_arn", "last_event_at", "last_probe"],
    sa.select(
        _CLOUD.c.id, _TOPICS.c.key, _TOPICS.c.value,
        sa.bindparam("at", type_=_FLOW.c.last_event_at.type), sa.bindparam("probe", type_=_FLOW.c.last_probe.type),
    )
    .join_from(_CLOUD, _TOPICS, sa.true())  # a function in FROM sees the rows before it
    .where(_TOPICS.c.value == sa.bindparam("topic", type_=sa.Text), in_force(_CLOUD)),
    include_defaults=False,
)
_ARRIVED = _ARRIVING.on_conflict_do_update(
    index_elements=[_FLOW.c.cloud_account_id, _FLOW.c.region],
    set_={
        "topic_arn": _ARRIVING.excluded.topic_arn,
        "last_event_at": sa.func.greatest(_FLOW.c.last_event_at, _ARRIVING.excluded.last_event_at),
        "last_probe": sa.func.coalesce(_ARRIVING.excluded.last_probe, _FLOW.c.last_probe),
    },
)


async def events_arrived(session: AsyncSession, *, arrivals: EventArrivals) -> int:
    """Record that events came through these topics (each bound to one cloud account and
    region in force; any other topic is ignored). Answers how many were recorded."""
    recorded = 0
    for arrival in arrivals.arrivals:
        result = await session.execute(
            _ARRIVED, {"topic": arrival.topic_arn, "at": arrival.at, "probe": arrival.probe}
        )
        recorded += result.rowcount or 0  # type: ignore[attr-defined]
    return recorded
