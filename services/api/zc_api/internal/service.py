"""What the other services ask the api: the cloud accounts in force (all tenants; see
cloudaccounts/claims.py) and the instances it holds as not gone."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.errors import NotFound
from zc_common.internal_api import CloudAccountMode, CloudAccountRecord, CloudAccountRecords, KnownInstances

from zc_api.cloudaccounts.claims import in_force_sql
from zc_api.models import CloudAccount, Resource


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
    query = select(CloudAccount).where(text(in_force_sql("cloud_account"))).order_by(col(CloudAccount.id))
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
