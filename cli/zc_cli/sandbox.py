"""`zerocloud-cli sandbox`: run the embedded default, and launch instances into its
moto account the way a developer would, with the EventBridge events AWS would send."""

from __future__ import annotations

import asyncio
import json
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # the runner pulls in AWS and the bus: import it only when a command runs
    from zc_cli.embedded import SandboxState

sandbox_app = typer.Typer(help="The sandbox: ZeroCloud on your laptop with a fake AWS.", no_args_is_help=True)

DATA_DIR_ENV = "ZC_SANDBOX_DIR"
DEFAULT_DATA_DIR = Path(".zerocloud")
AMI = "ami-12c6146b"  # an image moto knows
LEASE_WAIT_SECONDS = 60.0


def _fake_aws_credentials() -> None:
    """The sandbox only ever talks to its moto server; it needs some credentials to sign with."""
    for key, value in (("AWS_ACCESS_KEY_ID", "sandbox"), ("AWS_SECRET_ACCESS_KEY", "sandbox")):
        os.environ.setdefault(key, value)


DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar=DATA_DIR_ENV, help="Where the sandbox keeps its database, mailbox and state."),
]


@sandbox_app.command("run")
def run(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    port: Annotated[int, typer.Option(envvar="ZC_SANDBOX_PORT", help="Port of the API and web UI.")] = 8000,
    moto_port: Annotated[
        int, typer.Option(envvar="ZC_SANDBOX_MOTO_PORT", help="Port of the local moto server (the fake AWS).")
    ] = 5005,
    sweep_interval: Annotated[float, typer.Option(help="Seconds between inventory sweeps.")] = 60.0,
) -> None:
    """Start every service in one process on 127.0.0.1, with a demo account already set up
    (Ctrl-C stops it; the database and the mailbox are kept)."""
    from zc_common.logging import configure_logging

    from zc_cli.embedded import run_sandbox
    from zc_cli.sandbox_demo import DemoSetupError

    configure_logging("sandbox", "WARNING")
    # pgserver keeps its lock under the runtime folder and falls back to /tmp on its own.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    _fake_aws_credentials()
    try:
        asyncio.run(run_sandbox(data_dir, api_port=port, moto_port=moto_port, sweep_interval=sweep_interval))
    except DemoSetupError as error:  # everything it started is stopped by now
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None


@sandbox_app.command("launch")
def launch(
    owner: Annotated[str, typer.Option(help="Value of the instances' owner tag (an email).")],
    instance_type: Annotated[str, typer.Option("--type", help="EC2 instance type.")] = "t3.micro",
    count: Annotated[int, typer.Option(min=1, max=100, help="How many instances.")] = 1,
    region: Annotated[str, typer.Option(help="AWS region.")] = "us-east-1",
    name: Annotated[str | None, typer.Option(help="Name tag.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait until ZeroCloud has leased them, and show the leases.")
    ] = True,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Run instances in the sandbox's AWS account (moto) as a developer would, and put the
    EventBridge events AWS sends on ZeroCloud's queue: a state change to pending and to
    running per instance, and the CloudTrail RunInstances call."""
    from zc_cli.embedded import SandboxState

    try:
        state = SandboxState.load(data_dir)
    except FileNotFoundError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    _fake_aws_credentials()
    ids, queued = asyncio.run(
        _launch(state, owner=owner, instance_type=instance_type, count=count, region=region, name=name)
    )
    typer.echo(f"launched {len(ids)} × {instance_type} in AWS account {state.customer_account_id} ({region}), "
               f"tagged owner={owner}:")
    for instance_id in ids:
        typer.echo(f"  {instance_id}")
    typer.echo(f"queued {queued} EventBridge events (state changes pending and running, CloudTrail RunInstances)")
    if not wait:
        return
    leases = _wait_for_leases(state, ids)
    if len(leases) < len(ids):
        typer.echo(
            f"ZeroCloud has leased {len(leases)} of {len(ids)} after {LEASE_WAIT_SECONDS:.0f} s. Is {region} one "
            "of the cloud account's regions (`zerocloud-cli get cloudaccount 1`)? Otherwise the inventory sweep "
            "will find them (`zerocloud-cli list leases`).",
            err=True,
        )
        raise typer.Exit(1)
    from zc_cli.output import table

    typer.echo("ZeroCloud noticed them and made these leases:")
    typer.echo(table(leases, [("id", "LEASE"), ("instance_id", "INSTANCE"), ("owner_email", "OWNER"),
                              ("status", "STATUS"), ("expires_at", "EXPIRES")]))
    strangers = {lease["owner_reason"] for lease in leases if lease.get("owner_email") != owner.strip().lower()}
    for reason in sorted(strangers):
        typer.echo(f"not owned by {owner}: {reason}")


async def _launch(
    state: SandboxState, *, owner: str, instance_type: str, count: int, region: str, name: str | None
) -> tuple[list[str], int]:
    from zc_common.aws import AwsAccess, CloudAccountRole

    from zc_cli.sandbox_events import launch_events

    aws = AwsAccess(endpoint_url=state.aws_endpoint_url, session_name="sandbox-developer")
    # The developer acts with their own role in their own account; moto puts what it does there.
    developer = CloudAccountRole(f"arn:aws:iam::{state.customer_account_id}:role/Developer", "sandbox-developer")
    tags = [{"Key": "owner", "Value": owner}] + ([{"Key": "Name", "Value": name}] if name else [])
    async with aws.client("ec2", region, developer) as ec2:
        reservation = await ec2.run_instances(
            ImageId=AMI, MinCount=count, MaxCount=count, InstanceType=instance_type,
            TagSpecifications=[{"ResourceType": "instance", "Tags": tags}],
        )
    ids = [instance["InstanceId"] for instance in reservation["Instances"]]
    events = launch_events(
        account_id=state.customer_account_id, region=region,
        caller_arn=f"arn:aws:sts::{state.customer_account_id}:assumed-role/Developer/sandbox-developer",
        reservation=reservation, image_id=AMI, instance_type=instance_type, count=count, tags=tags,
    )
    async with aws.client("sqs") as sqs:  # the queue lives in ZeroCloud's own account and region
        for start in range(0, len(events), 10):
            chunk = events[start : start + 10]
            answer = await sqs.send_message_batch(
                QueueUrl=state.queue_url,
                Entries=[{"Id": str(n), "MessageBody": json.dumps(e)} for n, e in enumerate(chunk)],
            )
            if answer.get("Failed"):
                raise RuntimeError(f"the event queue refused events: {answer['Failed']}")
    return ids, len(events)


def _wait_for_leases(state: SandboxState, instance_ids: list[str]) -> list[dict[str, Any]]:
    """The live lease of each instance, as soon as ZeroCloud has made them all (or what
    there is after LEASE_WAIT_SECONDS)."""
    import httpx

    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + LEASE_WAIT_SECONDS
    headers = {"Authorization": f"Bearer {state.admin_token}"}
    with httpx.Client(base_url=f"{state.api_url}/api/v1", headers=headers, timeout=10) as api:
        while True:
            for instance_id in instance_ids:
                if instance_id in found:
                    continue
                response = api.get("/leases", params={"instance_id": instance_id})
                if response.is_success:
                    leases = response.json().get("data", [])
                    if leases:
                        found[instance_id] = leases[0]
            if len(found) == len(instance_ids) or time.monotonic() > deadline:
                return sorted(found.values(), key=lambda lease: int(lease["id"]))
            time.sleep(0.5)
