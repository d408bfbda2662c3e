"""AWS access against the moto server: AssumeRole with the external ID, credentials
cached per role, and calls made through a role landing in that role's account."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from aiobotocore.httpsession import AIOHTTPSession

import zc_common.aws
from zc_common.aws import AwsAccess, CloudAccountRole, SharedTlsSession, error_code

REGION = "eu-west-1"
IMAGE = "ami-12c6146b"  # one of the images moto knows in every account and region
ROLE_A = CloudAccountRole("arn:aws:iam::111111111111:role/ZeroCloudAccess", "zc-external-id-for-a")
ROLE_B = CloudAccountRole("arn:aws:iam::222222222222:role/ZeroCloudAccess", "zc-external-id-for-b")


class CountingAccess(AwsAccess):
    """AwsAccess that remembers every AssumeRole it sent to STS, with its parameters."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.assumed: list[CloudAccountRole] = []
        self.sts_requests: list[dict[str, Any]] = []
        self._session.register("provide-client-params.sts.AssumeRole", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.sts_requests.append(dict(params))

    async def assume_role(self, role: CloudAccountRole) -> Any:
        self.assumed.append(role)
        return await super().assume_role(role)


@pytest.fixture
def aws(moto: str) -> Iterator[CountingAccess]:
    yield CountingAccess(endpoint_url=moto, default_region=REGION, session_name="zc-test", max_attempts=2)


async def launch(aws: AwsAccess, role: CloudAccountRole, count: int = 1) -> list[str]:
    async with aws.client("ec2", REGION, role) as ec2:
        answer = await ec2.run_instances(ImageId=IMAGE, InstanceType="t3.micro", MinCount=count, MaxCount=count)
    return [instance["InstanceId"] for instance in answer["Instances"]]


async def instance_ids(aws: AwsAccess, role: CloudAccountRole | None) -> set[str]:
    async with aws.client("ec2", REGION, role) as ec2:
        answer = await ec2.describe_instances()
    return {i["InstanceId"] for r in answer["Reservations"] for i in r["Instances"]}


def test_role_names_its_upstream_account() -> None:
    assert ROLE_A.upstream_account_id == "111111111111"


async def test_assume_role_sends_the_external_id(aws: CountingAccess) -> None:
    credentials = await aws.credentials(ROLE_A)

    [request] = aws.sts_requests
    assert request["RoleArn"] == ROLE_A.role_arn
    assert request["ExternalId"] == "zc-external-id-for-a"
    assert request["RoleSessionName"] == "zc-test"
    assert credentials.access_key and credentials.secret_key and credentials.token
    assert credentials.expires_at.tzinfo is not None
    assert credentials.expires_at > datetime.now(timezone.utc) + timedelta(minutes=30)


async def test_credentials_are_cached_per_role(aws: CountingAccess) -> None:
    first = await aws.credentials(ROLE_A)
    again = await aws.credentials(ROLE_A)
    async with aws.client("ec2", REGION, ROLE_A) as ec2:
        await ec2.describe_instances()
    other = await aws.credentials(ROLE_B)

    assert again == first
    assert other.access_key != first.access_key
    assert aws.assumed == [ROLE_A, ROLE_B]


async def test_concurrent_callers_share_one_assume_role(aws: CountingAccess) -> None:
    results = await asyncio.gather(*(aws.credentials(ROLE_A) for _ in range(10)))

    assert len({r.access_key for r in results}) == 1
    assert aws.assumed == [ROLE_A]


async def test_credentials_close_to_expiry_are_renewed(aws: CountingAccess, monkeypatch: pytest.MonkeyPatch) -> None:
    first = await aws.credentials(ROLE_A)
    # Pretend the session is about to end: renew when less than its whole life is left.
    monkeypatch.setattr(zc_common.aws, "REFRESH_BEFORE", first.expires_at - datetime.now(timezone.utc))

    renewed = await aws.credentials(ROLE_A)

    assert aws.assumed == [ROLE_A, ROLE_A]
    assert renewed.access_key != first.access_key


async def test_forgotten_credentials_are_assumed_again(aws: CountingAccess) -> None:
    await aws.credentials(ROLE_A)
    aws.forget(ROLE_A)

    await aws.credentials(ROLE_A)

    assert aws.assumed == [ROLE_A, ROLE_A]


async def test_clients_share_one_tls_context_that_still_verifies(
    aws: CountingAccess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SharedTlsSession, "_contexts", {})
    built: list[ssl.SSLContext] = []
    build = AIOHTTPSession._build_verify_context

    def counted(self: AIOHTTPSession) -> ssl.SSLContext:
        context: ssl.SSLContext = build(self)
        built.append(context)
        return context

    monkeypatch.setattr(AIOHTTPSession, "_build_verify_context", counted)

    # Four clients (STS and EC2 for each role), each its own connection pool.
    for role in (ROLE_A, ROLE_B):
        await instance_ids(aws, role)

    assert len(built) == 1  # the CA bundle is loaded once, not once per client
    [context] = SharedTlsSession._contexts.values()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


async def test_calls_through_a_role_land_in_that_roles_account(aws: CountingAccess) -> None:
    launched = await launch(aws, ROLE_A, count=2)

    assert await instance_ids(aws, ROLE_A) == set(launched)
    assert await instance_ids(aws, ROLE_B) == set()
    assert await instance_ids(aws, None) == set()  # ZeroCloud's own account sees nothing either


async def test_accounts_do_not_see_each_others_instances(aws: CountingAccess) -> None:
    in_a = await launch(aws, ROLE_A)
    in_b = await launch(aws, ROLE_B)

    assert await instance_ids(aws, ROLE_A) == set(in_a)
    assert await instance_ids(aws, ROLE_B) == set(in_b)


async def test_error_code_reads_the_aws_error(aws: CountingAccess) -> None:
    async with aws.client("ec2", REGION, ROLE_A) as ec2:
        with pytest.raises(Exception) as raised:
            await ec2.describe_instances(InstanceIds=["i-0123456789abcdef0"])

    assert error_code(raised.value) == "InvalidInstanceID.NotFound"
    assert error_code(ValueError("not from AWS")) is None


async def test_a_kept_client_is_shared_until_its_credentials_change(aws: CountingAccess) -> None:
    first = await aws.kept_client("ec2", REGION, ROLE_A)
    again = await aws.kept_client("ec2", REGION, ROLE_A)
    other = await aws.kept_client("ec2", REGION, ROLE_B)
    aws.forget(ROLE_A)  # as after an access-denied: the next call assumes the role afresh
    renewed = await aws.kept_client("ec2", REGION, ROLE_A)
    try:
        assert again is first and other is not first
        assert renewed is not first and aws.assumed == [ROLE_A, ROLE_B, ROLE_A]
        launched = await launch(aws, ROLE_A)
        answer = await renewed.describe_instances(InstanceIds=launched)  # the new credentials work
        assert [i["InstanceId"] for r in answer["Reservations"] for i in r["Instances"]] == launched
    finally:
        await aws.close()
    assert await aws.kept_client("ec2", REGION, ROLE_B) is not other  # closed ones are not handed out
    await aws.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-12-06T20:42:35.000Z", datetime(2026, 12, 6, 20, 42, 35, tzinfo=timezone.utc)),
        ("2026-12-06T20:42:35Z", datetime(2026, 12, 6, 20, 42, 35, tzinfo=timezone.utc)),
        ("2026-12-06T21:42:35.250+01:00", datetime(2026, 12, 6, 20, 42, 35, 250_000, tzinfo=timezone.utc)),
        ("2026-12-06T20:42:35", datetime(2026, 12, 6, 20, 42, 35, tzinfo=timezone.utc)),
        (1796589755, datetime(2026, 12, 6, 20, 42, 35, tzinfo=timezone.utc)),  # epoch seconds (JSON protocols)
        ("Sun, 06 Dec 2026 20:42:35 GMT", datetime(2026, 12, 6, 20, 42, 35, tzinfo=timezone.utc)),  # RFC 822
        ("1796589755.5", datetime(2026, 12, 6, 20, 42, 35, 500_000, tzinfo=timezone.utc)),
    ],
)
def test_timestamps_are_read_as_botocore_reads_them(value: object, expected: datetime) -> None:
    parsed = zc_common.aws.parse_timestamp(value)

    assert parsed == expected and parsed.tzinfo is not None  # the same instant, aware


def test_a_timestamp_in_no_known_form_is_refused() -> None:
    with pytest.raises(ValueError, match="Invalid timestamp"):
        zc_common.aws.parse_timestamp("yesterday")


async def test_answers_carry_aware_timestamps(aws: CountingAccess) -> None:
    [instance_id] = await launch(aws, ROLE_A)
    async with aws.client("ec2", REGION, ROLE_A) as ec2:
        answer = await ec2.describe_instances(InstanceIds=[instance_id])

    launched = answer["Reservations"][0]["Instances"][0]["LaunchTime"]
    assert launched.tzinfo is not None and abs(datetime.now(timezone.utc) - launched) < timedelta(minutes=5)
