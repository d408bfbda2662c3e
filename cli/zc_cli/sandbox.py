"""`zerocloud-cli sandbox`: run the embedded default, and launch instances into its
moto account the way a developer would, with the EventBridge events AWS would send."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # the runner pulls in AWS and the bus: import it only when a command runs
    from zc_cli.embedded import SandboxState

sandbox_app = typer.Typer(help="The sandbox: ZeroCloud on your laptop with a fake AWS.", no_args_is_help=True)

def _fake_aws_credentials() -> None:
    """The sandbox only ever talks to its moto server; it needs some credentials to sign with."""
    for key, value in (("AWS_ACCESS_KEY_ID", "sandbox"), ("AWS_SECRET_ACCESS_KEY", "sandbox")):
        os.environ.setdefault(key, value)


DataDir = Annotated[Path, typer.Option("--data-dir", help="Where the sandbox keeps its database and state.")]
DEFAULT_DATA_DIR = Path(".zerocloud")


@sandbox_app.command("run")
def run(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    port: Annotated[int, typer.Option(help="Port of the API.")] = 8000,
    moto_port: Annotated[int, typer.Option(help="Port of the local moto server (the fake AWS).")] = 5005,
    sweep_interval: Annotated[float, typer.Option(help="Seconds between inventory sweeps.")] = 60.0,
) -> None:
    """Start every service in one process (Ctrl-C stops it; the database is kept)."""
    from zc_common.logging import configure_logging

    from zc_cli.embedded import run_sandbox

    configure_logging("sandbox", "WARNING")
    _fake_aws_credentials()
    asyncio.run(run_sandbox(data_dir, api_port=port, moto_port=moto_port, sweep_interval=sweep_interval))


@sandbox_app.command("launch")
def launch(
    owner: Annotated[str, typer.Option(help="Value of the instance's owner tag (an email).")],
    instance_type: Annotated[str, typer.Option("--type", help="EC2 instance type.")] = "t3.micro",
    count: Annotated[int, typer.Option(min=1, max=100, help="How many instances.")] = 1,
    region: Annotated[str, typer.Option(help="AWS region.")] = "us-east-1",
    name: Annotated[str | None, typer.Option(help="Name tag.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Run instances in the sandbox's AWS account and put their EventBridge events on the queue."""
    from zc_cli.embedded import SandboxState

    try:
        state = SandboxState.load(data_dir)
    except FileNotFoundError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    _fake_aws_credentials()
    ids = asyncio.run(_launch(state, owner=owner, instance_type=instance_type, count=count, region=region, name=name))
    for instance_id in ids:
        typer.echo(instance_id)


async def _launch(state: SandboxState, *, owner: str, instance_type: str, count: int, region: str, name: str | None) -> list[str]:
    from zc_common.aws import AwsAccess, CloudAccountRole
    from zc_common.cloudevents import state_change_event

    aws = AwsAccess(endpoint_url=state.aws_endpoint_url, session_name="sandbox-developer")
    # The developer acts with their own access in their own account; in moto that is a role there.
    developer = CloudAccountRole(state.customer_role_arn, "sandbox-developer")
    tags = [{"Key": "owner", "Value": owner}] + ([{"Key": "Name", "Value": name}] if name else [])
    async with aws.client("ec2", region, developer) as ec2:
        answer = await ec2.run_instances(
            ImageId="ami-12c6146b", MinCount=count, MaxCount=count, InstanceType=instance_type,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
    ids = [instance["InstanceId"] for instance in answer["Instances"]]
    events = [
        state_change_event(account_id=state.customer_account_id, region=region, instance_id=i, state="running")
        for i in ids
    ]
    async with aws.client("sqs") as sqs:  # the queue lives in ZeroCloud's own account and region
        for start in range(0, len(events), 10):
            chunk = events[start : start + 10]
            await sqs.send_message_batch(
                QueueUrl=state.queue_url,
                Entries=[{"Id": str(n), "MessageBody": json.dumps(e)} for n, e in enumerate(chunk)],
            )
    return ids
