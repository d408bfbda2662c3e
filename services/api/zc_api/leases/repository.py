"""Leases loaded for a change: each with its instance, cloud account and the policies
that bound it, the lease rows locked until the transaction ends."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from zc_common.messages import LeaseSnapshot, LeaseStatus

from zc_api.leases.messages import lease_snapshot
from zc_api.leases.policy import EffectivePolicy, effective_policy
from zc_api.models import AccountPolicy, CloudAccount, Lease, Resource, UserPolicy, never_null


@dataclass
class LeaseRecord:
    lease: Lease
    resource: Resource
    cloud_account: CloudAccount
    policy: AccountPolicy
    owner_policy: UserPolicy | None

    @property
    def id(self) -> int:
        assert self.lease.id is not None
        return self.lease.id

    @property
    def status(self) -> LeaseStatus:
        return LeaseStatus(self.lease.status)

    @property
    def effective(self) -> EffectivePolicy:
        """The account policy with the owner's overrides (not the caller's)."""
        return effective_policy(self.policy, self.owner_policy)

    def snapshot(self) -> LeaseSnapshot:
        return lease_snapshot(
            self.lease, resource=self.resource, cloud_account=self.cloud_account,
            action_on_expiry=self.policy.action_on_expiry,
        )


async def ids_where(session: AsyncSession, *where: ColumnElement[bool]) -> list[int]:
    """The ids of the leases that meet ``where``."""
    return list(await session.scalars(select(never_null(Lease.id)).where(*where)))


async def load(
    session: AsyncSession,
    lease_ids: Iterable[int],
    *,
    lock: bool,
    where: Sequence[ColumnElement[bool]] = (),
) -> dict[int, LeaseRecord]:
    """The leases of ``lease_ids`` that meet ``where``, by id; with ``lock``, locked until
    the transaction ends (in id order, so two transactions locking overlapping sets
    cannot deadlock)."""
    ids = sorted(set(lease_ids))
    if not ids:
        return {}
    query = (
        select(Lease, Resource, CloudAccount, AccountPolicy, UserPolicy)
        .join(Resource, col(Resource.id) == col(Lease.resource_id))
        .join(CloudAccount, col(CloudAccount.id) == col(Lease.cloud_account_id))
        .join(AccountPolicy, col(AccountPolicy.account_id) == col(Lease.account_id))
        .outerjoin(UserPolicy, col(UserPolicy.user_id) == col(Lease.owner_user_id))
        .where(col(Lease.id).in_(ids), *where)
        .order_by(col(Lease.id))
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update(of=Lease, key_share=True)  # NO KEY UPDATE: inserts referencing it go on
    records = [LeaseRecord(*row) for row in (await session.execute(query)).all()]
    return {record.id: record for record in records}
