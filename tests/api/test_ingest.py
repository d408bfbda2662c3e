"""Ingestion: ResourceChange batches into resources, leases, audit events and outbox
messages, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import event, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from zc_common.messages import InstanceSnapshot, InstanceState, LeaseChanged, ResourceChange, decode

from zc_api.database import create_engine, session_maker, transaction
from zc_api.ingest.service import IngestResult, apply_changes
from zc_api.models import (
    Account,
    AccountPolicy,
    AuditEvent,
    CloudAccount,
    Lease,
    OutboxMessage,
    Resource,
    User,
    UserPolicy,
)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
DAY = 24 * 3600


# --- fixtures and builders --------------------------------------------------------------


Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def engine(clean_database: str) -> AsyncIterator[AsyncEngine]:
    built = create_engine(clean_database, pool_size=4)
    yield built
    await built.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_maker(engine)


@dataclass
class Tenant:
    account_id: int
    cloud_account_id: int
    upstream: str
    admin: User
    users: dict[str, User] = field(default_factory=dict)

    def user_id(self, email: str) -> int:
        user_id = self.users[email].id
        assert user_id is not None
        return user_id


async def make_tenant(
    sessions: async_sessionmaker[AsyncSession],
    *,
    users: tuple[str, ...] = ("dev@bigdb.com",),
    admins: tuple[str, ...] = ("admin@bigdb.com",),
    **policy: Any,
) -> Tenant:
    """An account with its policy, admins and developers, and one onboarded AWS account."""
    upstream = "".join(secrets.choice("0123456789") for _ in range(12))
    async with transaction(sessions) as session:
        account = Account(name=f"BigDB {upstream}")
        session.add(account)
        await session.flush()
        assert account.id is not None
        session.add(AccountPolicy(account_id=account.id, **policy))
        # Confirmed, as users an admin adds are: an unconfirmed owner gets no lease.
        people = [User(account_id=account.id, email=email, role="admin", email_confirmed_at=NOW) for email in admins]
        people += [User(account_id=account.id, email=email, role="dev", email_confirmed_at=NOW) for email in users]
        session.add_all(people)
        cloud = CloudAccount(
            account_id=account.id, name="sandbox", upstream_account_id=upstream,
            role_arn=f"arn:aws:iam::{upstream}:role/zerocloud", external_id=f"zc-{secrets.token_hex(8)}",
        )
        session.add(cloud)
        await session.flush()
        assert cloud.id is not None
    return Tenant(
        account_id=account.id, cloud_account_id=cloud.id, upstream=upstream, admin=people[0],
        users={user.email: user for user in people},
    )


def new_instance_id() -> str:
    return f"i-{secrets.token_hex(8)}"


def change(
    tenant: Tenant | str,
    instance_id: str | None = None,
    *,
    state: InstanceState = InstanceState.running,
    tags: dict[str, str] | None = None,
    observed_at: datetime = NOW,
    listed: bool = True,
    launch_time: datetime | None = None,
    region: str = "us-east-1",
) -> ResourceChange:
    """A ResourceChange as the ingestor publishes it, for an instance of ``tenant``."""
    upstream = tenant if isinstance(tenant, str) else tenant.upstream
    instance_id = instance_id or new_instance_id()
    snapshot = None
    if listed:
        snapshot = InstanceSnapshot(
            instance_id=instance_id, instance_type="t3.micro", state=state, tags=tags or {},
            launch_time=launch_time or observed_at - timedelta(seconds=30),
        )
    return ResourceChange(
        event_name="EC2 Instance State-change Notification",
        event_time=observed_at,
        event_source="aws.ec2",
        aws_region=region,
        recipient_account_id=upstream,
        instance_id=instance_id,
        instance=snapshot,
        gone=not listed or state.is_gone,
        observed_at=observed_at,
    )


async def ingest(
    sessions: async_sessionmaker[AsyncSession], *changes: ResourceChange, now: datetime = NOW
) -> IngestResult:
    async with transaction(sessions) as session:
        return await apply_changes(session, changes, now=now)


async def leases(sessions: async_sessionmaker[AsyncSession], instance_id: str | None = None) -> list[Lease]:
    async with sessions() as session:
        query = select(Lease).order_by(col(Lease.id))
        if instance_id is not None:
            query = query.join(Resource, col(Resource.id) == col(Lease.resource_id)).where(
                col(Resource.instance_id) == instance_id
            )
        return list((await session.scalars(query)).all())


async def audit(sessions: async_sessionmaker[AsyncSession], action: str) -> list[AuditEvent]:
    async with sessions() as session:
        query = select(AuditEvent).where(col(AuditEvent.action) == action).order_by(col(AuditEvent.id))
        return list((await session.scalars(query)).all())


async def outbox(sessions: async_sessionmaker[AsyncSession]) -> list[LeaseChanged]:
    async with sessions() as session:
        rows = (await session.scalars(select(OutboxMessage).order_by(col(OutboxMessage.id)))).all()
    messages = [decode(row.body.encode(), row.type) for row in rows]
    assert all(isinstance(m, LeaseChanged) for m in messages)
    return [m for m in messages if isinstance(m, LeaseChanged)]


async def count(sessions: async_sessionmaker[AsyncSession], model: Any) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --- owner and expiry -------------------------------------------------------------------


async def test_new_running_instance_is_leased_to_the_user_its_owner_tag_names(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    seen = change(tenant, tags={"owner": "dev@bigdb.com", "Name": "build-box"})

    result = await ingest(sessions, seen)

    [lease] = await leases(sessions)
    assert lease.owner_user_id == tenant.users["dev@bigdb.com"].id
    assert lease.owner_email == "dev@bigdb.com"
    assert lease.expires_at == NOW + timedelta(days=3)
    assert (lease.status, lease.version, lease.over_quota) == ("active", 1, False)
    assert lease.created_by_message_id == seen.message_id
    assert result.leases_created == [lease.id]

    [created] = await audit(sessions, "lease.created")
    assert created.message_id == seen.message_id
    assert created.actor == f"message:{seen.message_id}"
    assert created.subject_id == lease.id and created.account_id == tenant.account_id
    assert created.reason == "owner tag names dev@bigdb.com"
    [discovered] = await audit(sessions, "resource.discovered")
    assert discovered.message_id == seen.message_id

    [message] = await outbox(sessions)
    assert message.change == "created"
    assert message.lease.lease_id == lease.id and message.lease.owner_email == "dev@bigdb.com"
    assert message.lease.upstream_account_id == tenant.upstream
    assert message.lease.instance_name == "build-box"
    # The schedule: the account's default warnings (a day and an hour before), the expiry.
    assert message.warn_at == [lease.expires_at - timedelta(days=1), lease.expires_at - timedelta(hours=1)]
    assert message.expire_at == lease.expires_at
    assert (message.lease.mode, message.lease.action_on_expiry) == ("observe", "stop")
    # The reaper's claim waits for the last of them to be delivered.
    assert (lease.warn_by, lease.warned_at) == (message.warn_at[-1], None)


async def test_lease_messages_carry_the_cloud_accounts_mode_and_the_policys_action(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions, action_on_expiry="terminate")
    async with transaction(sessions) as session:
        await session.execute(update(CloudAccount).values(mode="enforce", name="prod"))
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id))
    await ingest(sessions, change(tenant, instance_id, listed=False, observed_at=NOW + timedelta(1)))

    created, released = await outbox(sessions)

    [lease] = await leases(sessions)
    assert (lease.status, lease.warn_by, lease.warned_at) == ("released", None, None), "no warning owed any more"
    for message in (created, released):
        assert (message.lease.mode, message.lease.action_on_expiry) == ("enforce", "terminate")
        assert message.lease.cloud_account_name == "prod"


async def test_owner_tag_key_and_value_match_whatever_their_case(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions, owner_tag="Owner")
    seen = change(tenant, tags={"OWNER": "  Dev@BigDB.com "})

    await ingest(sessions, seen)

    [lease] = await leases(sessions)
    assert lease.owner_email == "dev@bigdb.com"
    assert lease.owner_user_id == tenant.users["dev@bigdb.com"].id


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"Name": "untagged"}, "no owner tag"),
        ({"owner": "   "}, "no owner tag"),
        ({"owner": "Stranger@BigDB.com"}, "owner tag names unknown user stranger@bigdb.com"),
        ({"owner": "dev@elsewhere.org"}, "dev@elsewhere.org is outside the allowed email patterns"),
    ],
)
async def test_instance_without_a_usable_owner_goes_to_the_first_admin_with_the_reason(
    sessions: Sessions, tags: dict[str, str], reason: str
) -> None:
    tenant = await make_tenant(
        sessions,
        users=("dev@bigdb.com", "dev@elsewhere.org"),
        admins=("first-admin@bigdb.com", "second-admin@bigdb.com"),
        allowed_email_patterns=["*@BigDB.com"],
    )
    seen = change(tenant, tags=tags)

    await ingest(sessions, seen)

    [lease] = await leases(sessions)
    assert lease.owner_email == "first-admin@bigdb.com"
    assert lease.owner_user_id == tenant.admin.id
    assert lease.owner_reason == reason
    [created] = await audit(sessions, "lease.created")
    assert created.reason == reason
    [message] = await outbox(sessions)
    assert message.reason == reason


async def test_user_policy_default_lease_overrides_the_accounts(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions, users=("dev@bigdb.com", "other@bigdb.com"))
    async with transaction(sessions) as session:
        session.add(UserPolicy(user_id=tenant.user_id("dev@bigdb.com"), default_lease_seconds=DAY))
    mine, theirs = change(tenant, tags={"owner": "dev@bigdb.com"}), change(tenant, tags={"owner": "other@bigdb.com"})

    await ingest(sessions, mine, theirs)

    assert (await leases(sessions, mine.instance_id))[0].expires_at == NOW + timedelta(days=1)
    assert (await leases(sessions, theirs.instance_id))[0].expires_at == NOW + timedelta(days=3)


async def test_owner_over_their_max_instances_gets_a_grace_period_lease_flagged_over_quota(
    sessions: Sessions
) -> None:
    tenant = await make_tenant(sessions, max_instances_per_user=2, over_quota_grace_seconds=600)
    tags = {"owner": "dev@bigdb.com"}
    first = change(tenant, tags=tags)
    await ingest(sessions, first)
    # Two more in one batch: the earlier-launched one is within quota, the later one not.
    second = change(tenant, tags=tags, launch_time=NOW - timedelta(minutes=5))
    third = change(tenant, tags=tags, launch_time=NOW - timedelta(minutes=1))

    await ingest(sessions, third, second)

    within = (await leases(sessions, second.instance_id))[0]
    over = (await leases(sessions, third.instance_id))[0]
    assert (within.over_quota, within.expires_at) == (False, NOW + timedelta(days=3))
    assert (over.over_quota, over.expires_at) == (True, NOW + timedelta(seconds=600))
    [created] = [e for e in await audit(sessions, "lease.created") if e.subject_id == over.id]
    assert created.details["over_quota"] is True


async def test_user_policy_max_instances_overrides_the_accounts(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions, max_instances_per_user=5)
    async with transaction(sessions) as session:
        session.add(UserPolicy(user_id=tenant.user_id("dev@bigdb.com"), max_instances=1))
    tags = {"owner": "dev@bigdb.com"}

    earlier, later = change(tenant, tags=tags, launch_time=NOW - timedelta(minutes=2)), change(tenant, tags=tags)

    await ingest(sessions, later, earlier)

    assert [lease.over_quota for lease in await leases(sessions, earlier.instance_id)] == [False]
    assert [lease.over_quota for lease in await leases(sessions, later.instance_id)] == [True]


# --- one live lease per live instance ------------------------------------------------------


async def test_the_same_change_five_times_gives_one_lease(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    seen = change(tenant, tags={"owner": "dev@bigdb.com"})

    await ingest(sessions, *[seen] * 5)  # duplicates in one batch
    for _ in range(4):  # and re-deliveries
        result = await ingest(sessions, seen)
        assert result.leases_created == [] and result.stale == 1

    assert len(await leases(sessions)) == 1
    assert await count(sessions, Resource) == 1
    assert len(await audit(sessions, "lease.created")) == 1
    assert len(await audit(sessions, "resource.discovered")) == 1
    assert len(await outbox(sessions)) == 1


async def test_older_observation_after_a_newer_one_does_not_overwrite_the_resource(
    sessions: Sessions
) -> None:
    tenant = await make_tenant(sessions)
    instance_id = new_instance_id()
    newer = change(tenant, instance_id, state=InstanceState.stopped, tags={"v": "new"}, observed_at=NOW)
    older = change(tenant, instance_id, state=InstanceState.running, tags={"v": "old"},
                   observed_at=NOW - timedelta(minutes=1))

    await ingest(sessions, newer)
    result = await ingest(sessions, older)

    assert result.stale == 1
    async with sessions() as session:
        resource = await session.scalar(select(Resource).where(col(Resource.instance_id) == instance_id))
    assert resource is not None
    assert (resource.state, resource.tags, resource.observed_at) == ("stopped", {"v": "new"}, NOW)
    assert await leases(sessions) == []  # the stale "running" did not lease a stopped instance


async def test_newest_observation_in_a_batch_wins_whatever_the_order(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    instance_id = new_instance_id()
    running = change(tenant, instance_id, observed_at=NOW - timedelta(minutes=2))
    terminated = change(tenant, instance_id, state=InstanceState.terminated, observed_at=NOW)

    await ingest(sessions, terminated, running)

    async with sessions() as session:
        resource = await session.scalar(select(Resource).where(col(Resource.instance_id) == instance_id))
    assert resource is not None and (resource.state, resource.gone) == ("terminated", True)
    assert await leases(sessions) == []


async def test_gone_instance_releases_its_live_lease(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id, tags={"owner": "dev@bigdb.com", "Name": "web"}))
    gone = change(tenant, instance_id, listed=False, observed_at=NOW + timedelta(hours=1))

    result = await ingest(sessions, gone, now=NOW + timedelta(hours=1))

    [lease] = await leases(sessions)
    assert (lease.status, lease.version, lease.ended_at) == ("released", 2, NOW + timedelta(hours=1))
    assert result.leases_released == [lease.id]
    [released] = await audit(sessions, "lease.released")
    assert released.message_id == gone.message_id and released.subject_id == lease.id
    assert released.reason == "the instance is no longer listed by AWS"
    [state_changed] = await audit(sessions, "resource.state_changed")
    assert state_changed.details["previous_state"] == "running"
    created, message = await outbox(sessions)
    assert (message.change, message.lease.status, message.lease.version) == ("released", "released", 2)
    assert message.lease.instance_name == "web"  # kept from what was known before
    assert (message.warn_at, message.expire_at) == ([], None)  # cancels the lease's timers


@pytest.mark.parametrize("listed", [False, True])
async def test_a_change_naming_another_region_changes_nothing(sessions: Sessions, listed: bool) -> None:
    # Region is part of what a resource is: a change for the same id elsewhere neither
    # releases its lease nor moves it (else the next sweep would lease it afresh, past every max).
    tenant = await make_tenant(sessions)
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id))
    elsewhere = change(
        tenant, instance_id, listed=listed, state=InstanceState.terminated, region="us-west-2",
        observed_at=NOW + timedelta(hours=1),
    )

    result = await ingest(sessions, elsewhere, now=NOW + timedelta(hours=1))

    [lease] = await leases(sessions)
    assert (lease.status, lease.version) == ("active", 1)
    assert result.other_region == 1 and result.leases_released == []
    async with sessions() as session:
        [resource] = (await session.scalars(select(Resource))).all()
    assert (resource.region, resource.state, resource.gone) == ("us-east-1", "running", False)


@pytest.mark.parametrize("state", [InstanceState.terminated, InstanceState.shutting_down])
async def test_terminated_or_shutting_down_instance_releases_its_lease(
    sessions: Sessions, state: InstanceState
) -> None:
    tenant = await make_tenant(sessions)
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id))

    await ingest(sessions, change(tenant, instance_id, state=state, observed_at=NOW + timedelta(seconds=1)))

    assert [lease.status for lease in await leases(sessions)] == ["released"]


async def test_stopped_instance_without_lease_gets_none_and_keeps_one_it_has(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    stopped = change(tenant, state=InstanceState.stopped)
    leased = new_instance_id()
    await ingest(sessions, change(tenant, leased))

    await ingest(sessions, stopped, change(tenant, leased, state=InstanceState.stopped,
                                            observed_at=NOW + timedelta(seconds=1)))

    assert await leases(sessions, stopped.instance_id) == []
    assert [lease.status for lease in await leases(sessions, leased)] == ["active"]


async def test_stopped_instance_started_again_gets_a_lease(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id, state=InstanceState.stopped))

    await ingest(sessions, change(tenant, instance_id, observed_at=NOW + timedelta(minutes=1)))

    assert [lease.status for lease in await leases(sessions)] == ["active"]


async def test_running_instance_whose_lease_was_released_gets_a_new_one(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id))
    await ingest(sessions, change(tenant, instance_id, listed=False, observed_at=NOW + timedelta(minutes=1)),
                 now=NOW + timedelta(minutes=1))

    back = NOW + timedelta(minutes=5)
    await ingest(sessions, change(tenant, instance_id, observed_at=back), now=back)

    assert [(lease.status, lease.expires_at) for lease in await leases(sessions)] == [
        ("released", NOW + timedelta(days=3)),
        ("active", back + timedelta(days=3)),
    ]


async def test_observation_from_before_a_lease_was_reaped_does_not_lease_again(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id))
    reaped_at = NOW + timedelta(days=3, minutes=5)
    async with transaction(sessions) as session:
        await session.execute(update(Lease).values(status="reaped", ended_at=reaped_at, version=3))

    # A sweep that looked just before the reaper stopped it, processed just after.
    await ingest(sessions, change(tenant, instance_id, observed_at=reaped_at - timedelta(seconds=10)),
                 now=reaped_at + timedelta(seconds=5))

    assert [lease.status for lease in await leases(sessions)] == ["reaped"]


async def test_concurrent_batches_for_the_same_new_instances_create_one_lease_each(
    sessions: Sessions
) -> None:
    tenant = await make_tenant(sessions)
    instance_ids = [new_instance_id() for _ in range(50)]
    # Two api replicas get overlapping observations at once, in different orders and
    # observed at different moments (so the second one takes the update path too).
    first = [change(tenant, i, tags={"owner": "dev@bigdb.com"}) for i in instance_ids]
    second = [change(tenant, i, observed_at=NOW + timedelta(seconds=1)) for i in reversed(instance_ids)]
    barrier = asyncio.Barrier(2)

    async def replica(batch: list[ResourceChange]) -> IngestResult:
        async with transaction(sessions) as session:
            await session.execute(text("SELECT 1"))
            await barrier.wait()  # both transactions are open before either writes
            return await apply_changes(session, batch, now=NOW)

    results = await asyncio.gather(replica(first), replica(second))

    all_leases = await leases(sessions)
    assert sorted(lease.resource_id for lease in all_leases) == sorted({lease.resource_id for lease in all_leases})
    assert len(all_leases) == 50
    assert sum(len(r.leases_created) for r in results) == 50
    assert len(await audit(sessions, "lease.created")) == 50
    assert len(await audit(sessions, "resource.discovered")) == 50
    assert len(await outbox(sessions)) == 50


async def test_change_for_an_account_not_onboarded_writes_nothing(sessions: Sessions) -> None:
    await make_tenant(sessions)
    before = {model: await count(sessions, model) for model in (Resource, Lease, AuditEvent, OutboxMessage)}

    result = await ingest(sessions, change("999999999999", tags={"owner": "dev@bigdb.com"}))

    assert result.unknown_account == 1
    assert {model: await count(sessions, model) for model in before} == before == {
        Resource: 0, Lease: 0, AuditEvent: 0, OutboxMessage: 0,
    }


async def test_onboarded_changes_in_a_batch_still_apply_beside_unknown_ones(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)

    result = await ingest(sessions, change("999999999999"), change(tenant))

    assert (result.unknown_account, len(result.leases_created)) == (1, 1)


async def test_tags_changed_on_a_known_instance_are_audited_without_a_new_lease(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id, tags={"Name": "a"}))

    await ingest(sessions, change(tenant, instance_id, tags={"Name": "b"}, observed_at=NOW + timedelta(seconds=1)))

    [updated] = await audit(sessions, "resource.updated")
    assert updated.details["previous_tags"] == {"Name": "a"}
    assert len(await leases(sessions)) == 1


async def test_a_changed_owner_tag_gives_the_lease_to_whoever_it_now_names(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions, users=("dev@bigdb.com", "ops@bigdb.com"))
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id, tags={"owner": "dev@bigdb.com", "Name": "a"}))
    later = NOW + timedelta(hours=1)

    result = await ingest(
        sessions, change(tenant, instance_id, tags={"owner": "ops@bigdb.com", "Name": "a"}, observed_at=later),
        now=later,
    )

    [lease] = await leases(sessions)
    assert (lease.owner_email, lease.owner_user_id, lease.version) == (
        "ops@bigdb.com", tenant.user_id("ops@bigdb.com"), 2
    )
    assert result.leases_reowned == [lease.id]
    [_, reowned] = await outbox(sessions)
    assert (reowned.change, reowned.lease.owner_email) == ("owner_changed", "ops@bigdb.com")
    [audited] = await audit(sessions, "lease.owner_changed")
    assert audited.details["previous_owner_email"] == "dev@bigdb.com"


async def test_an_expired_lease_whose_owner_tag_changed_gets_a_fresh_notice_not_a_reap(sessions: Sessions) -> None:
    # Retagging her instance must neither let a developer escape the reaper for good nor
    # get it reaped on warnings that went to someone else: the new owner gets the policy's notice.
    tenant = await make_tenant(sessions, users=("dev@bigdb.com",), warning_seconds=[86400, 3600])
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id, tags={"owner": "dev@bigdb.com"}))
    async with transaction(sessions) as session:
        await session.execute(update(Lease).values(status="expired", expires_at=NOW - timedelta(minutes=5)))
    later = NOW + timedelta(hours=1)

    await ingest(sessions, change(tenant, instance_id, tags={"owner": "nobody@else.com"}, observed_at=later), now=later)

    [lease] = await leases(sessions)
    assert lease.owner_email == "admin@bigdb.com" and "owner tag" in lease.owner_reason
    assert lease.status == "active" and lease.expires_at > later + timedelta(days=1)
    [_, reowned] = await outbox(sessions)
    assert reowned.expire_at == lease.expires_at and reowned.warn_at, "new timers for the new owner"


async def test_a_tag_change_that_leaves_the_owner_tag_alone_keeps_the_owner(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions, users=("dev@bigdb.com",))
    instance_id = new_instance_id()
    await ingest(sessions, change(tenant, instance_id, tags={"owner": "dev@bigdb.com", "Name": "a"}))

    result = await ingest(
        sessions, change(tenant, instance_id, tags={"Owner": "DEV@bigdb.com", "Name": "b"},
                         observed_at=NOW + timedelta(seconds=1)),
    )

    [lease] = await leases(sessions)
    assert (lease.owner_email, lease.version, result.leases_reowned) == ("dev@bigdb.com", 1, [])


# --- set-based --------------------------------------------------------------------------


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_statements_per_batch_do_not_grow_with_the_batch(
    sessions: Sessions, statements: list[str]
) -> None:
    tenant = await make_tenant(sessions, users=tuple(f"dev{n}@bigdb.com" for n in range(20)),
                               max_instances_per_user=10)

    def batch(size: int, *, state: InstanceState = InstanceState.running, at: datetime = NOW) -> list[ResourceChange]:
        return [change(tenant, f"i-{n:017x}", state=state, tags={"owner": f"dev{n % 20}@bigdb.com"}, observed_at=at)
                for n in range(size)]

    counts = {}
    for size in (10, 1000):
        statements.clear()
        async with transaction(sessions) as session:
            await session.execute(text("TRUNCATE resource, lease, audit_event, outbox CASCADE"))
        statements.clear()
        created = await ingest(sessions, *batch(size))
        released = await ingest(sessions, *batch(size, state=InstanceState.terminated, at=NOW + timedelta(1)))
        assert len(created.leases_created) == len(released.leases_released) == size
        counts[size] = len(statements)

    assert counts[1000] == counts[10]
    assert counts[10] <= 16  # for both batches: 8 to create, 6 to release today


async def test_audit_details_name_the_event_that_made_us_look(sessions: Sessions) -> None:
    tenant = await make_tenant(sessions)
    seen = change(tenant)

    await ingest(sessions, seen)

    [discovered] = await audit(sessions, "resource.discovered")
    assert discovered.details["event_source"] == "aws.ec2"
    assert discovered.details["state"] == "running"
    assert json.loads(json.dumps(discovered.details))  # plain JSON
