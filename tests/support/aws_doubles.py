"""Doubles for AWS shared by the service tests: a customer's account in the moto server,
and an AwsAccess that counts calls, throttles on demand and refuses roles as AWS would."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from zc_common.aws import AwsAccess, CloudAccountRole

CUSTOMER = "111111111111"
REGION = "us-east-1"
AMI = "ami-12c6146b"
OWNER = "alice@bigdb.com"
WRITES = ("StopInstances", "TerminateInstances")


@dataclass
class _Throttle:
    remaining: int
    code: str
    status: int
    after: int = 0  # calls let through first


@dataclass
class _ErrorResponse:
    status_code: int


class CountingAwsAccess(AwsAccess):
    """AwsAccess that counts every AWS operation it is asked for (throttled tries too),
    fails the next N calls of an operation the way a throttling AWS does, and refuses
    AssumeRole into the roles in ``refused`` (moto accepts every AssumeRole)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: Counter[str] = Counter()
        self.refused: set[str] = set()
        self._throttles: dict[str, _Throttle] = {}

    def throttle(
        self, operation: str, times: int, *, code: str = "RequestLimitExceeded", status: int = 503, after: int = 0
    ) -> None:
        """Fail ``times`` calls of ``operation``, after letting ``after`` calls through."""
        self._throttles[operation] = _Throttle(times, code, status, after)

    @property
    def writes(self) -> int:
        return sum(self.calls[name] for name in WRITES)

    @contextlib.asynccontextmanager
    async def client(
        self, service: str, region: str | None = None, role: CloudAccountRole | None = None
    ) -> AsyncIterator[Any]:
        async with super().client(service, region, role) as client:
            client.meta.events.register("before-call", self._before_call)
            yield client

    def _before_call(self, model: Any, **_: Any) -> tuple[_ErrorResponse, dict[str, Any]] | None:
        self.calls[model.name] += 1
        throttle = self._throttles.get(model.name)
        if throttle is None or throttle.remaining <= 0:
            return None
        if throttle.after > 0:
            throttle.after -= 1
            return None
        throttle.remaining -= 1
        # A response from before-call stands in for AWS's: the client raises it as a ClientError.
        return _ErrorResponse(throttle.status), {
            "Error": {"Code": throttle.code, "Message": "Request limit exceeded."},
            "ResponseMetadata": {"HTTPStatusCode": throttle.status},
        }

    async def assume_role(self, role: CloudAccountRole) -> Any:
        if role.role_arn in self.refused:
            raise ClientError(
                {"Error": {"Code": "AccessDenied", "Message": f"not authorized to assume {role.role_arn}"}},
                "AssumeRole",
            )
        return await super().assume_role(role)


class CustomerAccount:
    """A customer's AWS account in moto, acted on the way its developers would (through a
    role there: moto puts what an assumed role does in the role's account)."""

    def __init__(self, moto_url: str, account_id: str = CUSTOMER) -> None:
        self.account_id = account_id
        self.aws = AwsAccess(endpoint_url=moto_url, session_name="developer")
        self.role = CloudAccountRole(f"arn:aws:iam::{account_id}:role/Developer", "developer")

    @contextlib.asynccontextmanager
    async def ec2(self, region: str = REGION) -> AsyncIterator[Any]:
        async with self.aws.client("ec2", region, self.role) as ec2:
            yield ec2

    async def launch(
        self, count: int = 1, *, region: str = REGION, tags: dict[str, str] | None = None,
        instance_type: str = "t3.micro", stop_protected: bool = False, termination_protected: bool = False,
    ) -> list[str]:
        """``tags`` None: just an owner tag naming OWNER; otherwise exactly these tags."""
        tags = {"owner": OWNER} if tags is None else tags
        async with self.ec2(region) as ec2:
            answer = await ec2.run_instances(
                ImageId=AMI, MinCount=count, MaxCount=count, InstanceType=instance_type,
                **({"TagSpecifications": [{"ResourceType": "instance", "Tags": [
                    {"Key": k, "Value": v} for k, v in tags.items()]}]} if tags else {}),
            )
            launched = [instance["InstanceId"] for instance in answer["Instances"]]
            # moto ignores RunInstances' DisableApiTermination: switched on afterwards, as AWS allows.
            for instance_id in launched:
                if stop_protected:
                    await ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiStop={"Value": True})
                if termination_protected:
                    await ec2.modify_instance_attribute(
                        InstanceId=instance_id, DisableApiTermination={"Value": True}
                    )
        return launched

    async def states(self, *instance_ids: str, region: str = REGION) -> dict[str, str]:
        async with self.ec2(region) as ec2:
            answer = await ec2.describe_instances(Filters=[{"Name": "instance-id", "Values": list(instance_ids)}])
        return {
            instance["InstanceId"]: instance["State"]["Name"]
            for reservation in answer["Reservations"]
            for instance in reservation["Instances"]
        }

    async def stop(self, *instance_ids: str, region: str = REGION) -> None:
        async with self.ec2(region) as ec2:
            await ec2.stop_instances(InstanceIds=list(instance_ids))

    async def terminate(self, *instance_ids: str, region: str = REGION) -> None:
        async with self.ec2(region) as ec2:
            await ec2.terminate_instances(InstanceIds=list(instance_ids))

    async def tag(self, instance_id: str, key: str, value: str, *, region: str = REGION) -> None:
        async with self.ec2(region) as ec2:
            await ec2.create_tags(Resources=[instance_id], Tags=[{"Key": key, "Value": value}])


# The ZeroCloud stack as far as verify reads it: the region's topic and the stack's outputs.
TOPIC_STACK = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Parameters": {"ExternalId": {"Type": "String"}},
    "Resources": {"EventTopic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "ZeroCloudEvents"}}},
    "Outputs": {
        "TopicArn": {"Value": {"Ref": "EventTopic"}},
        "ExternalId": {"Value": {"Ref": "ExternalId"}},
    },
}


async def deploy_stack(
    moto: str, cloud: dict[str, Any], region: str, external_id: str | None = None, *, name: str = "zerocloud",
) -> str:
    """The ZeroCloud stack's topic and outputs, made inside the customer's account; its TopicArn."""
    aws = AwsAccess(endpoint_url=moto, max_attempts=2)
    role = CloudAccountRole(cloud["assume_role_arn"], cloud["external_id"])
    async with aws.client("cloudformation", region, role=role) as cloudformation:
        await cloudformation.create_stack(
            StackName=name, TemplateBody=json.dumps(TOPIC_STACK),
            Parameters=[{"ParameterKey": "ExternalId", "ParameterValue": external_id or cloud["external_id"]}],
        )
        [stack] = (await cloudformation.describe_stacks(StackName=name))["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    return outputs["TopicArn"]
