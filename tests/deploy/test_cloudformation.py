"""The CloudFormation templates under deploy/aws: lint-clean, the customer role allows
exactly the AWS calls ZeroCloud's code makes, its trust demands the external ID, the
event rules deliver what the ingestor reads, and a stack made in moto onboards and
verifies through the api."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore import xform_name  # type: ignore[import-untyped]
from botocore.session import get_session  # type: ignore[import-untyped]

from zc_common.aws import AwsAccess
from zc_common.cloudevents import (
    CLOUDTRAIL_CALL,
    CLOUDTRAIL_EVENTS,
    STATE_CHANGE,
    parse_event,
    state_change_event,
)
from zc_common.settings import IngestorSettings

from tests.api.factories import Api, Tenant, make_cloud_account, make_tenant, running_api, settings

ROOT = Path(__file__).resolve().parents[2]
CUSTOMER_TEMPLATE = ROOT / "services/api/zc_api/cloudaccounts/templates/customer-account.yaml"
CUSTOMER_LINK = ROOT / "deploy/aws/customer-account.yaml"
ZEROCLOUD_TEMPLATE = ROOT / "deploy/aws/zerocloud-account.yaml"
TEMPLATE_BODIES = {path: path.read_text() for path in (CUSTOMER_TEMPLATE, ZEROCLOUD_TEMPLATE)}
# What runs as ZeroCloud. The CLI's sandbox acts as a developer, not through the role.
ZEROCLOUD_CODE = [ROOT / "services", ROOT / "libs"]
MOTO_ACCOUNT = "123456789012"  # every stack moto makes lands in its default account
ZEROCLOUD_ACCOUNT = "210987654321"
# Services ZeroCloud calls inside a customer account. STS there is only GetCallerIdentity
# (verify), which no IAM policy can deny; AssumeRole is made as ZeroCloud itself.
ROLE_SERVICES = {"ec2", "sts", "cloudformation"}
NO_PERMISSION_NEEDED = {"sts:GetCallerIdentity", "sts:AssumeRole"}
# SQS's batch calls are authorised by the single-message action.
SQS_BATCH = {"sqs:DeleteMessageBatch": "sqs:DeleteMessage", "sqs:SendMessageBatch": "sqs:SendMessage"}


# --- reading templates and code ---------------------------------------------------------


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags read as their long form (!Ref X -> {"Ref": X})."""


def _short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _short_tag)


def load(path: Path) -> dict[str, Any]:
    template: dict[str, Any] = yaml.load(path.read_text(), Loader=_CloudFormationLoader)
    return template


def _python_files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        yield from (p for p in sorted(root.rglob("*.py")) if ".venv" not in p.parts)


def _names_in(paths: Iterator[Path]) -> dict[str, set[str]]:
    """Every attribute name and string literal in these files -> where it appears."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value
            else:
                continue
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def operations_used(service: str, roots: list[Path]) -> dict[str, set[str]]:
    """IAM actions ("ec2:StopInstances"; the IAM prefix is the client's name for the
    services checked here) of every ``service`` API call the code names,
    as a client method (``ec2.stop_instances``) or as the method's name in a string
    (``getattr(ec2, "stop_instances")``) -> the files naming it."""
    model = get_session().get_service_model(service)
    by_method = {xform_name(operation): operation for operation in model.operation_names}
    used: dict[str, set[str]] = {}
    for name, files in _names_in(_python_files(roots)).items():
        if name in by_method:
            used.setdefault(f"{service}:{by_method[name]}", set()).update(files)
    return used


def services_used_through_a_role(roots: list[Path]) -> dict[str, set[str]]:
    """Services of every ``.client("<service>", region, role)`` call -> the files."""
    used: dict[str, set[str]] = {}
    for path in _python_files(roots):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "client"):
                continue
            with_role = len(node.args) >= 3 or any(keyword.arg == "role" for keyword in node.keywords)
            if with_role and node.args and isinstance(node.args[0], ast.Constant):
                used.setdefault(str(node.args[0].value), set()).add(str(path.relative_to(ROOT)))
    return used


def _allowed(policy: dict[str, Any]) -> dict[str, Any]:
    """Each allowed action -> its Resource."""
    allowed: dict[str, Any] = {}
    for statement in policy["Statement"]:
        if statement["Effect"] == "Allow":
            actions = statement["Action"]
            for action in [actions] if isinstance(actions, str) else actions:
                allowed[action] = statement["Resource"]
    return allowed


def _role_actions(template: dict[str, Any]) -> dict[str, Any]:
    allowed: dict[str, Any] = {}
    for policy in template["Resources"]["Role"]["Properties"]["Policies"]:
        allowed.update(_allowed(policy["PolicyDocument"]))
    return allowed


# --- lint and shape ---------------------------------------------------------------------


def test_templates_pass_cfn_lint_without_a_warning() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"

    result = subprocess.run(
        [str(cfn_lint), str(CUSTOMER_TEMPLATE), str(ZEROCLOUD_TEMPLATE)],
        capture_output=True, text=True, timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_operators_find_the_customer_template_under_deploy_aws() -> None:
    assert CUSTOMER_LINK.is_symlink()
    assert not Path(CUSTOMER_LINK.readlink()).is_absolute()
    assert CUSTOMER_LINK.resolve() == CUSTOMER_TEMPLATE


def test_role_allows_exactly_the_ec2_calls_zerocloud_makes() -> None:
    through_role = services_used_through_a_role(ZEROCLOUD_CODE)
    assert set(through_role) <= ROLE_SERVICES, (
        f"code calls {sorted(set(through_role) - ROLE_SERVICES)} inside customer accounts "
        f"({through_role}): grant it in customer-account.yaml and teach this test"
    )
    # CloudFormation's are looked for where the role's cloudformation client is made: its
    # method names (get_template) are common words elsewhere (Jinja's).
    stack_readers = sorted({(ROOT / path).parent for path in through_role.get("cloudformation", set())})
    used = {**operations_used("ec2", ZEROCLOUD_CODE), **operations_used("cloudformation", stack_readers)}
    sts_used = set(operations_used("sts", ZEROCLOUD_CODE))
    assert sts_used <= NO_PERMISSION_NEEDED, f"new STS calls {sts_used - NO_PERMISSION_NEEDED}: grant them"

    allowed = _role_actions(load(CUSTOMER_TEMPLATE))

    missing = {action: files for action, files in used.items() if action not in allowed}
    assert not missing, f"the code calls these but the role does not allow them: {missing}"
    assert set(allowed) == set(used), f"the role allows calls no code makes: {set(allowed) - set(used)}"
    assert {"ec2:DescribeInstances", "ec2:StopInstances", "ec2:TerminateInstances"} <= set(allowed)


def test_role_acts_only_on_instances_of_its_own_account() -> None:
    allowed = _role_actions(load(CUSTOMER_TEMPLATE))
    instances = {"Fn::Sub": "arn:${AWS::Partition}:ec2:*:${AWS::AccountId}:instance/*"}

    stacks = {"Fn::Sub": "arn:${AWS::Partition}:cloudformation:*:${AWS::AccountId}:stack/*/*"}

    for action, resource in allowed.items():
        if action.startswith("ec2:Describe"):
            assert resource == "*"  # Describe calls have no resource-level permissions
        elif action.startswith("cloudformation:"):
            assert resource == stacks, action
        else:
            assert resource == instances, action


def test_trust_demands_the_external_id_zerocloud_generated() -> None:
    role = load(CUSTOMER_TEMPLATE)["Resources"]["Role"]["Properties"]

    [statement] = role["AssumeRolePolicyDocument"]["Statement"]

    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    assert statement["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${ZeroCloudAccountId}:root"}}
    assert statement["Condition"] == {"StringEquals": {"sts:ExternalId": {"Ref": "ExternalId"}}}
    assert role["MaxSessionDuration"] >= AwsAccess().session_seconds


def test_rules_select_the_events_the_ingestor_reads() -> None:
    template = load(CUSTOMER_TEMPLATE)
    rules = {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Events::Rule"}
    patterns = {r["Properties"]["EventPattern"]["detail-type"][0]: r["Properties"]["EventPattern"] for r in rules.values()}

    assert set(patterns) == {STATE_CHANGE, CLOUDTRAIL_CALL}
    assert set(patterns[CLOUDTRAIL_CALL]["detail"]["eventName"]) == CLOUDTRAIL_EVENTS
    for rule in rules.values():
        assert rule["Properties"]["Targets"] == [{"Id": "ZeroCloudEvents", "Arn": {"Ref": "EventTopic"}}]


def test_topic_takes_only_these_rules_and_zerocloud_queue_subscriptions() -> None:
    template = load(CUSTOMER_TEMPLATE)
    statements = {s["Sid"]: s for s in template["Resources"]["EventTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]}

    publish, subscribe = statements["EventBridgeRulesOfThisStackPublish"], statements["ZeroCloudSubscribesItsQueue"]
    probe = statements["ZeroCloudProbesTheTopic"]

    assert set(statements) == {"EventBridgeRulesOfThisStackPublish", "ZeroCloudSubscribesItsQueue",
                               "ZeroCloudProbesTheTopic"}
    assert probe["Principal"] == subscribe["Principal"] and probe["Action"] == "sns:Publish"
    assert probe["Resource"] == {"Ref": "EventTopic"}
    assert publish["Principal"] == {"Service": "events.amazonaws.com"} and publish["Action"] == "sns:Publish"
    assert publish["Condition"]["ArnEquals"]["aws:SourceArn"] == [
        {"Fn::GetAtt": ["InstanceStateRule", "Arn"]}, {"Fn::GetAtt": ["InstanceApiCallRule", "Arn"]},
    ]
    assert subscribe["Action"] == "sns:Subscribe"
    assert subscribe["Condition"]["StringEquals"] == {"sns:Protocol": "sqs"}


def test_event_queue_matches_the_ingestor() -> None:
    template = load(ZEROCLOUD_TEMPLATE)
    queue = template["Resources"]["EventQueue"]["Properties"]
    defaults = {name: p.get("Default") for name, p in template["Parameters"].items()}

    assert defaults["VisibilityTimeout"] == IngestorSettings.model_fields["visibility_timeout"].default
    assert defaults["MaxReceiveCount"] == 5
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert queue["SqsManagedSseEnabled"] is True
    assert template["Resources"]["DeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    [deliver] = [s for s in template["Resources"]["EventQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
                 if s["Effect"] == "Allow"]
    assert deliver["Principal"] == {"Service": "sns.amazonaws.com"} and deliver["Action"] == "sqs:SendMessage"
    assert deliver["Condition"] == {"ArnLike": {"aws:SourceArn": {"Ref": "CustomerTopicArns"}}}


def test_api_policy_allows_exactly_its_sns_calls() -> None:
    # Where the api's SNS client is made ("publish" elsewhere is the bus's).
    used = set(operations_used("sns", [ROOT / "services/api/zc_api/cloudaccounts"]))
    policy = load(ZEROCLOUD_TEMPLATE)["Resources"]["TopicSubscriptionPolicy"]["Properties"]["PolicyDocument"]

    assert set(_allowed(policy)) == used == {"sns:Subscribe", "sns:ListSubscriptionsByTopic", "sns:Publish"}


def test_ingestor_policy_allows_exactly_its_sqs_calls() -> None:
    used = {SQS_BATCH.get(action, action) for action in operations_used("sqs", [ROOT / "services/ingestor"])}
    policy = load(ZEROCLOUD_TEMPLATE)["Resources"]["IngestorQueuePolicy"]["Properties"]["PolicyDocument"]

    assert set(_allowed(policy)) == used


# --- in the moto server -----------------------------------------------------------------


@pytest.fixture
async def api(clean_database: str, moto: str) -> AsyncIterator[Api]:
    async with running_api(settings(clean_database, moto)) as started:
        yield started


@pytest.fixture
async def tenant(api: Api) -> Tenant:
    return await make_tenant(api)


async def create_stack(
    aws: AwsAccess, name: str, template: Path, parameters: dict[str, str], region: str = "us-east-1"
) -> dict[str, str]:
    """Create the stack; its outputs once it is complete."""
    async with aws.client("cloudformation", region) as cloudformation:
        await cloudformation.create_stack(
            StackName=name, TemplateBody=TEMPLATE_BODIES[template], Capabilities=["CAPABILITY_NAMED_IAM"],
            Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        )
        [stack] = (await cloudformation.describe_stacks(StackName=name))["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


async def test_stack_role_onboards_and_verifies(api: Api, moto: str, tenant: Tenant) -> None:
    aws = AwsAccess(endpoint_url=moto, max_attempts=2)
    # The role's ARN is known before the stack exists (account id + RoleName); registering
    # it first is how the customer gets the external ID the stack needs.
    cloud = await make_cloud_account(api, tenant, upstream=MOTO_ACCOUNT)

    outputs = await create_stack(aws, "zerocloud", CUSTOMER_TEMPLATE, {
        "ZeroCloudAccountId": ZEROCLOUD_ACCOUNT, "ExternalId": cloud["external_id"],
    })

    assert outputs["RoleArn"] == cloud["assume_role_arn"] == f"arn:aws:iam::{MOTO_ACCOUNT}:role/ZeroCloud"
    assert outputs["ExternalId"] == cloud["external_id"]
    async with aws.client("iam") as iam:
        role = (await iam.get_role(RoleName="ZeroCloud"))["Role"]
        policy_names = (await iam.list_role_policies(RoleName="ZeroCloud"))["PolicyNames"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"AWS": f"arn:aws:iam::{ZEROCLOUD_ACCOUNT}:root"}
    assert trust["Condition"] == {"StringEquals": {"sts:ExternalId": cloud["external_id"]}}
    assert policy_names == ["ZeroCloudLeases"]  # its statements are checked in the template above

    # moto accepts every AssumeRole (it checks no trust policy): this proves the role
    # ARN and account line up with what ZeroCloud was told, not that AWS enforces the ID.
    response = await api.client.post(f"/api/v1/cloudaccounts/{cloud['id']}/verify", headers=tenant.admin.headers)

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is True, report
    checks = {check["name"]: check for check in report["checks"]}
    assert set(checks) == {"assume_role", "caller_identity", "describe_instances:us-east-1",
                           "events_topic:us-east-1", "claim"}
    assert outputs["RoleArn"] in checks["assume_role"]["detail"]
    assert outputs["TopicArn"] in checks["events_topic:us-east-1"]["detail"]
    assert "DescribeInstances works in us-east-1" in checks["describe_instances:us-east-1"]["detail"]


async def test_stack_in_another_region_adds_events_but_no_second_role(moto: str) -> None:
    aws = AwsAccess(endpoint_url=moto, max_attempts=2)
    parameters = {"ZeroCloudAccountId": ZEROCLOUD_ACCOUNT, "ExternalId": "zc-" + "x" * 32}

    home = await create_stack(aws, "zerocloud", CUSTOMER_TEMPLATE, parameters, region="us-east-1")
    other = await create_stack(aws, "zerocloud", CUSTOMER_TEMPLATE, parameters, region="eu-west-1")

    assert "RoleArn" in home and "RoleArn" not in other
    assert other["TopicArn"] == f"arn:aws:sns:eu-west-1:{MOTO_ACCOUNT}:ZeroCloudEvents"


async def test_events_reach_the_queue_and_the_ingestor_reads_them(moto: str) -> None:
    aws = AwsAccess(endpoint_url=moto, max_attempts=2)
    customer = await create_stack(aws, "zerocloud", CUSTOMER_TEMPLATE, {
        "ZeroCloudAccountId": MOTO_ACCOUNT, "ExternalId": "zc-" + "x" * 32,
    })
    zerocloud = await create_stack(aws, "zerocloud-events", ZEROCLOUD_TEMPLATE, {
        "CustomerTopicArns": f"arn:aws:sns:*:{MOTO_ACCOUNT}:ZeroCloudEvents",
    })
    async with aws.client("sqs") as sqs:
        attributes = (await sqs.get_queue_attributes(QueueUrl=zerocloud["QueueUrl"], AttributeNames=["All"]))[
            "Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": zerocloud["DeadLetterQueueArn"], "maxReceiveCount": 5,
    }
    assert int(attributes["VisibilityTimeout"]) == IngestorSettings.model_fields["visibility_timeout"].default

    # moto's EventBridge cannot deliver to SNS, so the two legs are tried apart: the rules'
    # patterns (on rules aimed at the queue) choose the events; the topic carries them.
    patterns = [r["Properties"]["EventPattern"] for r in load(CUSTOMER_TEMPLATE)["Resources"].values()
                if r["Type"] == "AWS::Events::Rule"]
    state = state_change_event(account_id=MOTO_ACCOUNT, region="us-east-1", instance_id="i-0123456789abcdef0",
                               state="running")
    tagged = {"eventSource": "ec2.amazonaws.com", "eventName": "CreateTags", "awsRegion": "us-east-1",
              "requestParameters": {"resourcesSet": {"items": [{"resourceId": "i-0123456789abcdef1"}]}}}
    entries = [
        {"Source": "aws.ec2", "DetailType": STATE_CHANGE, "Detail": json.dumps(state["detail"])},
        {"Source": "aws.ec2", "DetailType": CLOUDTRAIL_CALL, "Detail": json.dumps(tagged)},
        {"Source": "aws.ec2", "DetailType": CLOUDTRAIL_CALL,  # failed: changed nothing
         "Detail": json.dumps({**tagged, "errorCode": "Client.UnauthorizedOperation"})},
        {"Source": "aws.ec2", "DetailType": CLOUDTRAIL_CALL,  # a read
         "Detail": json.dumps({**tagged, "eventName": "DescribeInstances"})},
    ]
    async with aws.client("events") as events, aws.client("sns") as sns, aws.client("sqs") as sqs:
        # A bus of their own: the stack's rules on the default bus aim at SNS.
        await events.create_event_bus(Name="patterns")
        for index, pattern in enumerate(patterns):
            await events.put_rule(Name=f"pattern-{index}", EventBusName="patterns", EventPattern=json.dumps(pattern))
            await events.put_targets(
                Rule=f"pattern-{index}", EventBusName="patterns", Targets=[{"Id": "q", "Arn": zerocloud["QueueArn"]}]
            )
        await events.put_events(Entries=[{**entry, "EventBusName": "patterns"} for entry in entries])
        await sns.subscribe(TopicArn=customer["TopicArn"], Protocol="sqs", Endpoint=zerocloud["QueueArn"])
        await sns.publish(TopicArn=customer["TopicArn"], Message=json.dumps(state))
        received = (await sqs.receive_message(
            QueueUrl=zerocloud["QueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1))["Messages"]

    bodies = [json.loads(m["Body"]) for m in received]
    for body in bodies:
        if "detail-type" in body:  # moto's EventBridge leaves out the "account" every AWS event has
            body.setdefault("account", MOTO_ACCOUNT)
    hints = sorted((hint.event_name, hint.instance_ids) for hint in map(parse_event, bodies))
    assert hints == [
        ("CreateTags", ("i-0123456789abcdef1",)),
        (STATE_CHANGE, ("i-0123456789abcdef0",)),  # through EventBridge's pattern
        (STATE_CHANGE, ("i-0123456789abcdef0",)),  # through the topic, in SNS's envelope
    ]
    assert sum(body.get("Type") == "Notification" for body in bodies) == 1
