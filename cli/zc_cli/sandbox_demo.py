"""The sandbox's demo: an account "Demo" with short leases, a developer, and the fake AWS
account onboarded in enforce mode — made through the api's own REST API with the
bootstrap admin's token, so every step is validated and audited like an admin's.

Made once: a restart over the kept data folder finds it and changes nothing (an admin's
later edits to the policy stay). Only the customer's IAM role is made on every start,
because the moto server forgets everything when it stops."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from zc_common.aws import AwsAccess, CloudAccountRole, error_code

log = logging.getLogger("zc.sandbox")

MARKER_FILE = "demo.json"
# How long a start waits for a demo developer's confirmation mail to reach the mailbox.
CONFIRMATION_WAIT_SECONDS = 30.0
_CONFIRMATION_LINK = re.compile(r"https?://[^\s\"'<>]+?(/confirm-email/[A-Za-z0-9_-]{43})")
ZEROCLOUD_AWS_ACCOUNT = "123456789012"  # the account moto puts ZeroCloud's own credentials in


@dataclass(frozen=True)
class DemoSpec:
    """What the demo is made of: short leases, so a newcomer sees warnings, renewals and
    reaping within minutes; enforce mode, because the AWS is a fake one."""

    account_name: str = "Demo"
    default_lease_seconds: int = 10 * 60
    max_lease_seconds: int = 24 * 3600
    warning_seconds: tuple[int, ...] = (5 * 60, 60)
    allowed_email_patterns: tuple[str, ...] = ("*@example.com",)
    action_on_expiry: str = "stop"
    # Reap everything that is due: the blast-radius cap guards real accounts, not moto.
    blast_radius_percent: int = 100
    blast_radius_per_hour: int = 10_000
    developers: tuple[str, ...] = ("alice@example.com",)
    cloud_account_name: str = "sandbox (moto)"
    regions: tuple[str, ...] = ("us-east-1",)
    mode: str = "enforce"
    role_name: str = "ZeroCloud"

    def policy(self) -> dict[str, Any]:
        return {
            "default_lease_seconds": self.default_lease_seconds,
            "max_lease_seconds": self.max_lease_seconds,
            "warning_seconds": list(self.warning_seconds),
            "allowed_email_patterns": list(self.allowed_email_patterns),
            "action_on_expiry": self.action_on_expiry,
            "blast_radius_percent": self.blast_radius_percent,
            "blast_radius_per_hour": self.blast_radius_per_hour,
        }


DEMO = DemoSpec()


@dataclass(frozen=True)
class DemoAccount:
    """The demo as found or made at this start."""

    account_id: int
    account_name: str
    cloud_account_id: int
    role_arn: str
    external_id: str
    mode: str
    developers: tuple[str, ...]
    policy: dict[str, Any] = field(default_factory=dict)
    made_now: bool = False
    verify_failures: tuple[str, ...] = field(default=())


class DemoSetupError(RuntimeError):
    """The api refused a step of the demo; the message names the step and the api's answer."""


async def ensure_demo(
    *, api_url: str, admin_token: str, aws: AwsAccess, customer_account_id: str, data_dir: Path,
    spec: DemoSpec = DEMO, mailbox_dir: Path | None = None,
) -> DemoAccount:
    """Find or make the demo account, its policy, its developers and its cloud account,
    and (every start) the customer role in moto that the cloud account names. With the
    sandbox's ``mailbox_dir``, each developer added confirms their address as a person
    would: by the link in the confirmation mail that lands there."""
    marker = _read_marker(data_dir / MARKER_FILE)
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=f"{api_url}/api/v1", headers=headers, timeout=60) as api:
        me = await _call(api, "GET", "/users/me", step="read the admin")
        account_id = me.get("account_id")
        # Not yet finished: a first start, or one that stopped half-way (the marker is written last).
        made_now = account_id is None or marker.get("account_id") != account_id
        if account_id is None:
            account = await _call(api, "POST", "/accounts", {"name": spec.account_name}, step="create the account")
            account_id = int(account["id"])
        account = await _call(api, "GET", f"/accounts/{account_id}", step="read the account")
        # An account the admin made by hand (an older sandbox) keeps its own policy.
        if made_now and account.get("name") == spec.account_name:
            account["policy"] = await _call(
                api, "PATCH", f"/accounts/{account_id}/policy", spec.policy(), step="set the policy"
            )
        if made_now:
            added = await _ensure_developers(api, account_id, spec.developers)
            if mailbox_dir is not None:
                for developer in added:
                    await confirm_from_mailbox(api_url, mailbox_dir, developer)

        role_arn = f"arn:aws:iam::{customer_account_id}:role/{spec.role_name}"
        cloud = await _find_cloud_account(api, account_id, customer_account_id)
        if cloud is None:
            cloud = await _call(
                api, "POST", f"/accounts/{account_id}/cloudaccounts",
                {"name": spec.cloud_account_name, "cloudprovider": "AWS", "upstream_account_id": customer_account_id,
                 "assume_role_arn": role_arn, "regions": list(spec.regions), "mode": spec.mode},
                step="onboard the fake AWS account",
            )
        await ensure_customer_role(
            aws, customer_account_id=customer_account_id, role_arn=str(cloud["assume_role_arn"]),
            external_id=str(cloud["external_id"]),
        )
        failures: tuple[str, ...] = ()
        if made_now:
            for region in cloud.get("regions") or spec.regions:
                await ensure_customer_stack(
                    aws, customer_account_id=customer_account_id, external_id=str(cloud["external_id"]),
                    region=str(region),
                )
            report = await _call(api, "POST", f"/cloudaccounts/{cloud['id']}/verify", step="verify the cloud account")
            failures = tuple(
                f"{check.get('name')}: {check.get('detail')}" for check in report.get("checks", []) if not check.get("ok")
            )
    _write_marker(data_dir / MARKER_FILE, {"account_id": account_id, "cloud_account_id": cloud["id"]})
    return DemoAccount(
        account_id=int(account_id), account_name=str(account.get("name", spec.account_name)),
        cloud_account_id=int(cloud["id"]), role_arn=str(cloud["assume_role_arn"]),
        external_id=str(cloud["external_id"]), mode=str(cloud["mode"]), developers=spec.developers,
        policy=dict(account.get("policy") or {}), made_now=made_now, verify_failures=failures,
    )


async def _ensure_developers(api: httpx.AsyncClient, account_id: int, emails: tuple[str, ...]) -> list[str]:
    """Add the developers not there yet; answers the addresses added (each is mailed a
    confirmation link: an admin adding a person does not confirm their address)."""
    page = await _call(api, "GET", f"/accounts/{account_id}/users", params={"limit": 500}, step="list the users")
    known = {str(user.get("email", "")).lower() for user in page.get("data", [])}
    added = []
    for address in emails:
        if address.lower() not in known:
            await _call(
                api, "POST", f"/accounts/{account_id}/users", {"email": address, "role": "dev"},
                step=f"add the developer {address}",
            )
            added.append(address.lower())
    return added


def _confirmation_path(mailbox_dir: Path, recipient: str) -> str | None:
    """The /confirm-email/<token> path of a confirmation mail to ``recipient``, if one is in."""
    for path in sorted(mailbox_dir.glob("*.eml")) if mailbox_dir.is_dir() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if str(message.get("To", "")).strip().lower() != recipient:
            continue
        body = message.get_body(preferencelist=("plain",))
        found = _CONFIRMATION_LINK.search(body.get_content() if body is not None else "")
        if found:
            return found.group(1)
    return None


async def confirm_from_mailbox(api_url: str, mailbox_dir: Path, recipient: str) -> None:
    """Follow the confirmation link mailed to ``recipient`` (POST, as its page's button does)."""
    deadline = time.monotonic() + CONFIRMATION_WAIT_SECONDS
    while (path := await asyncio.to_thread(_confirmation_path, mailbox_dir, recipient)) is None:
        if time.monotonic() > deadline:
            raise DemoSetupError(f"sandbox demo: no confirmation mail to {recipient} in {mailbox_dir} "
                                 f"within {CONFIRMATION_WAIT_SECONDS:.0f}s")
        await asyncio.sleep(0.2)
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as web:
        response = await web.post(path)
    if response.status_code != 200:
        raise DemoSetupError(f"sandbox demo: confirming {recipient} answered {response.status_code}")


async def _find_cloud_account(api: httpx.AsyncClient, account_id: int, upstream: str) -> dict[str, Any] | None:
    page = await _call(
        api, "GET", f"/accounts/{account_id}/cloudaccounts", params={"limit": 500}, step="list the cloud accounts"
    )
    for cloud in page.get("data", []):
        if cloud.get("upstream_account_id") == upstream:
            return dict(cloud)
    return None


async def _call(
    api: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None = None, *,
    params: dict[str, Any] | None = None, step: str,
) -> dict[str, Any]:
    response = await api.request(method, path, json=body, params=params)
    if response.is_error:
        raise DemoSetupError(f"sandbox demo: could not {step}: {method} {path} answered "
                             f"{response.status_code} {response.text[:500]}")
    answer = response.json()
    if not isinstance(answer, dict):
        raise DemoSetupError(f"sandbox demo: could not {step}: {method} {path} answered {answer!r}")
    return answer


async def ensure_customer_role(aws: AwsAccess, *, customer_account_id: str, role_arn: str, external_id: str) -> None:
    """The role a customer creates for ZeroCloud, made in the moto account: trusting
    ZeroCloud's account only with the generated external ID, allowed what ZeroCloud does."""
    role_name = role_arn.rsplit("/", 1)[1]
    trust = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ZEROCLOUD_AWS_ACCOUNT}:root"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
        }],
    }
    permissions = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            # What deploy/aws/customer-account.yaml grants a real account, no more.
            "Action": ["ec2:DescribeInstances", "ec2:StopInstances", "ec2:TerminateInstances",
                       "cloudformation:DescribeStacks"],
            "Resource": "*",
        }],
    }
    # Acting inside the customer's account: in moto, what an assumed role does lands in its account.
    setup = CloudAccountRole(f"arn:aws:iam::{customer_account_id}:role/SandboxSetup", "sandbox-setup")
    async with aws.client("iam", role=setup) as iam:
        try:
            await iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
        except Exception as error:
            if error_code(error) != "EntityAlreadyExists":
                raise
            await iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(trust))
        await iam.put_role_policy(RoleName=role_name, PolicyName="ZeroCloud", PolicyDocument=json.dumps(permissions))


# What verify reads of the customer's stack in each region: its topic and the external ID
# it was made for (the real template, customer-account.yaml, has the same outputs).
_STACK_NAME = "zerocloud"
_STACK = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {"ExternalId": {"Type": "String"}},
    "Resources": {"EventTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "ZeroCloudEvents"}}},
    "Outputs": {"TopicArn": {"Value": {"Ref": "EventTopic"}}, "ExternalId": {"Value": {"Ref": "ExternalId"}}},
}


async def ensure_customer_stack(aws: AwsAccess, *, customer_account_id: str, external_id: str, region: str) -> None:
    """The region's ZeroCloud stack (its event topic), made in the moto account."""
    setup = CloudAccountRole(f"arn:aws:iam::{customer_account_id}:role/SandboxSetup", "sandbox-setup")
    parameters = [{"ParameterKey": "ExternalId", "ParameterValue": external_id}]
    async with aws.client("cloudformation", region, role=setup) as cloudformation:
        try:
            await cloudformation.create_stack(StackName=_STACK_NAME, TemplateBody=json.dumps(_STACK), Parameters=parameters)
        except Exception as error:
            if error_code(error) != "AlreadyExistsException":
                raise
            [stack] = (await cloudformation.describe_stacks(StackName=_STACK_NAME))["Stacks"]
            outputs = {o.get("OutputKey"): o.get("OutputValue") for o in stack.get("Outputs", [])}
            if outputs.get("ExternalId") == external_id:
                return
            await cloudformation.update_stack(StackName=_STACK_NAME, TemplateBody=json.dumps(_STACK), Parameters=parameters)


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _write_marker(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2))
