"""ZeroCloud beside Cloud Custodian on the same moto server, counting every AWS call.

    make bench                                  # N = 1,000 and 5,000; both layouts; 3 runs
    .venv/bin/python bench/side_by_side.py --sizes 1000 --runs 1 --layouts one-region

One moto server stands in for AWS, behind the counting proxy (tests/support/aws_proxy.py)
that both tools call through. ZeroCloud runs as in production: its five services, each
its own process, already running (on this machine's PostgreSQL and RabbitMQ); Cloud
Custodian 0.9.53 runs from its own virtualenv (``--custodian``, made by ``make bench``;
it pins its own boto3), one ``custodian run`` per AWS account, over that account's
regions, as its documentation shows.

Two layouts: N instances in one account and region, and N spread over 2 accounts × 3
regions. Each run starts both tools from a freshly reset moto holding the same N running
instances (one per RunInstances, so moto pages DescribeInstances as AWS does), then:

- **detect + lease**. ZeroCloud: an operator's sweep (POST /api/v1/sweeps) until every
  instance has a committed lease. Custodian: a policy tags every instance without a lease
  tag with ``mark-for-op`` (its way of recording when to act).
- **reap on expiry**. ZeroCloud: the leases (default lease --lease-seconds, no warnings,
  enforce mode, stop) expire; the time runs from the last lease's expiry until every lease
  is reaped. Custodian: a policy stops every running instance marked for it
  (``marked-for-op`` with a skew, so it acts at once).

Prints, per phase, the calls by action and the wall time of each tool (medians of the
runs), their ratios, and writes bench/results/side_by_side.md and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.processes import ProcessStack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
AMI = "ami-12c6146b"
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
# Layout -> (AWS accounts, regions in each). Every run of each tool gets AWS accounts of its
# own in moto (fresh account ids), so no run sees another's instances and no client's
# cached credentials outlive the account they were made for.
LAYOUTS = {"one-region": (1, REGIONS[:1]), "2-accounts-3-regions": (2, REGIONS)}
_next_account = iter(range(100_000_000_001, 999_999_999_999, 1111))


def fresh_cells(layout: str) -> list[tuple[str, str]]:
    """(AWS account, region) pairs of a new run in this layout."""
    accounts, regions = LAYOUTS[layout]
    owners = [str(next(_next_account)) for _ in range(accounts)]
    return [(account, region) for account in owners for region in regions]


ROLE = "arn:aws:iam::{account}:role/ZeroCloud"
LEASE_POLICY = """policies:
  - name: lease-ec2
    resource: ec2
    filters:
      - "tag:c7n_lease": absent
    actions:
      - type: mark-for-op
        tag: c7n_lease
        op: stop
        hours: 1
"""
REAP_POLICY = """policies:
  - name: reap-ec2
    resource: ec2
    filters:
      - "State.Name": running
      - type: marked-for-op
        tag: c7n_lease
        op: stop
        skew_hours: 2
    actions:
      - stop
"""


@dataclass
class Phase:
    """One tool's figures for one phase of one run."""

    seconds: float
    calls: Counter[str] = field(default_factory=Counter)
    # Of those, the pages only moto's paging asked for (tests/support/aws_proxy.py).
    moto_only: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def on_aws(self) -> int:
        """The calls AWS would have taken: moto pages an EC2 Describe asked without
        MaxResults by 100 reservations, where AWS answers it whole."""
        return self.total - sum(self.moto_only.values())


@dataclass
class Cell:
    """The runs of one (layout, N, tool, phase)."""

    phases: list[Phase] = field(default_factory=list)

    def median_seconds(self) -> float:
        return statistics.median(p.seconds for p in self.phases)

    def median_calls(self) -> float:
        return statistics.median(p.total for p in self.phases)

    def median_on_aws(self) -> float:
        return statistics.median(p.on_aws for p in self.phases)

    def median_by_action(self) -> dict[str, float]:
        actions = sorted({a for p in self.phases for a in p.calls})
        return {a: statistics.median(p.calls.get(a, 0) for p in self.phases) for a in actions}


# --- the customer's AWS, straight to moto (not counted) ---------------------------------
def moto_client(moto_url: str, service: str, account: str, region: str) -> Any:
    sts = boto3.client("sts", endpoint_url=moto_url, region_name=region,
                       aws_access_key_id="bench", aws_secret_access_key="bench")
    credentials = sts.assume_role(RoleArn=ROLE.format(account=account), RoleSessionName="bench-setup")["Credentials"]
    return boto3.client(
        service, endpoint_url=moto_url, region_name=region, aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"], aws_session_token=credentials["SessionToken"],
    )


def launch(moto_url: str, cells: list[tuple[str, str]], count: int) -> None:
    """``count`` running instances spread evenly over the cells, one per RunInstances."""
    for index, (account, region) in enumerate(cells):
        share = count // len(cells) + (1 if index < count % len(cells) else 0)
        ec2 = moto_client(moto_url, "ec2", account, region)
        for _ in range(share):
            ec2.run_instances(ImageId=AMI, MinCount=1, MaxCount=1, InstanceType="t3.micro")


def stopped(moto_url: str, cells: list[tuple[str, str]]) -> int:
    total = 0
    for account, region in cells:
        ec2 = moto_client(moto_url, "ec2", account, region)
        for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": ["stopping", "stopped"]}], PaginationConfig={"PageSize": 1000}
        ):
            total += sum(len(r["Instances"]) for r in page["Reservations"])
    return total


# --- Cloud Custodian -------------------------------------------------------------------
def custodian(binary: str, stack: ProcessStack, policy: str, cells: list[tuple[str, str]], work: Path) -> Phase:
    """Run ``policy`` once per account over its regions; wall time of all the runs."""
    policy_file = work / "policy.yml"
    policy_file.write_text(policy)
    env = {
        **os.environ, "AWS_ENDPOINT_URL": stack.aws_url, "AWS_ACCESS_KEY_ID": "custodian",
        "AWS_SECRET_ACCESS_KEY": "custodian", "AWS_DEFAULT_REGION": REGIONS[0],
    }
    stack.reset_aws_calls()
    started = time.monotonic()
    for account in dict.fromkeys(a for a, _ in cells):
        regions = [arg for owner, region in cells if owner == account for arg in ("-r", region)]
        done = subprocess.run(
            [binary, "run", "-s", str(work / "out"), "--cache-period", "0", "--assume", ROLE.format(account=account),
             *regions, str(policy_file)],
            env=env, capture_output=True, text=True, timeout=3600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"custodian failed: {done.stderr[-3000:]}")
    seconds = time.monotonic() - started
    return Phase(seconds, Counter(stack.aws_calls()), Counter(stack.aws_moto_only_calls()))


# --- ZeroCloud ---------------------------------------------------------------------------
class ZeroCloud:
    def __init__(self, stack: ProcessStack, admin_token: str, lease_seconds: int) -> None:
        self.stack = stack
        self.http = stack.api(admin_token)
        self.lease_seconds = lease_seconds
        self.cloud_accounts: list[int] = []
        self.account_id: int | None = None

    def onboard(self, cells: list[tuple[str, str]]) -> None:
        """The bench's cloud accounts, in one ZeroCloud account made the first time (an
        admin belongs to one account) whose policy each run sets again."""
        if self.account_id is None:
            self.account_id = self._ok(self.http.post("/api/v1/accounts", json={"name": "bench"}))["id"]
        self._ok(self.http.patch(f"/api/v1/accounts/{self.account_id}/policy", json={
            "default_lease_seconds": self.lease_seconds, "max_lease_seconds": max(self.lease_seconds, 86400),
            "warning_seconds": [], "action_on_expiry": "stop", "blast_radius_percent": 100,
            "blast_radius_per_hour": 1_000_000,
        }))
        self.cloud_accounts = []
        for upstream in dict.fromkeys(a for a, _ in cells):
            cloud = self._ok(self.http.post(f"/api/v1/accounts/{self.account_id}/cloudaccounts", json={
                "name": f"aws-{upstream}", "upstream_account_id": upstream,
                "assume_role_arn": ROLE.format(account=upstream),
                "regions": [region for a, region in cells if a == upstream], "mode": "enforce",
            }))
            self.cloud_accounts.append(cloud["id"])

    def offboard(self) -> None:
        for cloud_account_id in self.cloud_accounts:
            answer = self.http.delete(f"/api/v1/cloudaccounts/{cloud_account_id}")
            if answer.status_code not in (200, 204, 404):
                raise RuntimeError(f"delete cloud account: {answer.status_code} {answer.text}")

    def detect(self, expected: int) -> Phase:
        self.stack.reset_aws_calls()
        started = time.monotonic()
        for cloud_account_id in self.cloud_accounts:
            self._ok(self.http.post("/api/v1/sweeps", json={"cloud_account_id": cloud_account_id}))
        self._until(lambda counts: counts["live"] >= expected, what=f"{expected} live leases")
        seconds = time.monotonic() - started
        calls, moto_only = Counter(self.stack.aws_calls()), Counter(self.stack.aws_moto_only_calls())
        self.stack.reset_aws_calls()  # the reap's count starts before the first lease expires
        return Phase(seconds, calls, moto_only)

    def reap(self, expected: int) -> tuple[Phase, float]:
        """Calls since the detect phase ended until every lease is reaped; seconds from the
        last expiry until then; and the median lag of one lease from its expiry to its reap."""
        counts = self._until(lambda c: c["reaped"] >= expected, what=f"{expected} reaped leases", timeout=1800)
        last_reap, last_expiry, median_lag = counts["last_reaped_at"], counts["last_expires_at"], counts["median_lag"]
        phase = Phase((last_reap - last_expiry).total_seconds(), Counter(self.stack.aws_calls()),
                      Counter(self.stack.aws_moto_only_calls()))
        return phase, float(median_lag)

    def _until(self, done: Any, *, what: str, timeout: float = 900) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            counts = asyncio.run(self._counts())
            if done(counts):
                return counts
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited {timeout:.0f}s for {what}; have {counts}")
            time.sleep(0.1)

    async def _counts(self) -> dict[str, Any]:
        connection = await asyncpg.connect(self.stack.database_url)
        try:
            row = await connection.fetchrow(
                """
                SELECT count(*) FILTER (WHERE status IN ('active', 'expired', 'reaping', 'exempt')) AS live,
                       count(*) FILTER (WHERE status = 'reaped') AS reaped,
                       max(reaped_at) AS last_reaped_at, max(expires_at) AS last_expires_at,
                       percentile_cont(0.5) WITHIN GROUP (
                           ORDER BY extract(epoch FROM reaped_at - expires_at)) AS median_lag
                FROM lease WHERE cloud_account_id = ANY($1::int[])
                """,
                self.cloud_accounts,
            )
        finally:
            await connection.close()
        return dict(row)

    @staticmethod
    def _ok(answer: httpx.Response) -> Any:
        if answer.status_code >= 300:
            raise RuntimeError(f"{answer.request.method} {answer.request.url.path}: {answer.status_code} {answer.text}")
        return answer.json()


# --- the run -----------------------------------------------------------------------------
def wait_for_expiry(stack: ProcessStack, cloud_accounts: list[int]) -> None:
    async def last_expiry() -> datetime:
        connection = await asyncpg.connect(stack.database_url)
        try:
            value = await connection.fetchval(
                "SELECT max(expires_at) FROM lease WHERE cloud_account_id = ANY($1::int[])", cloud_accounts
            )
        finally:
            await connection.close()
        return value  # type: ignore[no-any-return]

    pause = (asyncio.run(last_expiry()) - datetime.now(timezone.utc)).total_seconds()
    if pause > 0:
        time.sleep(pause)


def ratio(ours: float, theirs: float) -> str:
    return "–" if theirs == 0 else f"{ours / theirs:.2f}×"


def table(results: dict[tuple[str, int, str, str], Cell], extra: dict[tuple[str, int], list[float]]) -> str:
    lines = [
        "| layout | N | phase | ZeroCloud calls | c7n calls | calls ratio | calls AWS would take (ZeroCloud / c7n) "
        "| ratio | ZeroCloud s | c7n s | wall ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted({(layout, n) for layout, n, _, _ in results}, key=lambda k: (list(LAYOUTS).index(k[0]), k[1]))
    for layout, n in keys:
        for phase in ("detect", "reap"):
            ours, theirs = results[(layout, n, "zerocloud", phase)], results[(layout, n, "custodian", phase)]
            lines.append(
                f"| {layout} | {n:,} | {'detect + lease' if phase == 'detect' else 'reap on expiry'} "
                f"| {ours.median_calls():g} | {theirs.median_calls():g} | {ratio(ours.median_calls(), theirs.median_calls())} "
                f"| {ours.median_on_aws():g} / {theirs.median_on_aws():g} "
                f"| {ratio(ours.median_on_aws(), theirs.median_on_aws())} "
                f"| {ours.median_seconds():.2f} | {theirs.median_seconds():.2f} "
                f"| {ratio(ours.median_seconds(), theirs.median_seconds())} |"
            )
    lines += ["", "Calls by action (medians):", ""]
    for layout, n in keys:
        for phase in ("detect", "reap"):
            for tool in ("zerocloud", "custodian"):
                by_action = results[(layout, n, tool, phase)].median_by_action()
                shown = ", ".join(f"{action} {count:g}" for action, count in by_action.items())
                lines.append(f"- {layout}, N={n:,}, {phase}, {tool}: {shown}")
    lines += ["", "ZeroCloud's median lag of one lease from its own expiry to its reap (s):", ""]
    for (layout, n), lags in sorted(extra.items()):
        lines.append(f"- {layout}, N={n:,}: {statistics.median(lags):.2f}")
    return "\n".join(lines)


def chart(results: dict[tuple[str, int, str, str], Cell], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(layout, n) for layout, n, _, _ in results}, key=lambda k: (list(LAYOUTS).index(k[0]), k[1]))
    labels = [f"{layout}\nN={n:,}" for layout, n in keys]
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    for column, phase in enumerate(("detect", "reap")):
        for row, (metric, title) in enumerate((("calls", "AWS calls"), ("seconds", "wall time (s)"))):
            ax = axes[row][column]
            xs = range(len(keys))
            for offset, tool, colour in ((-0.2, "zerocloud", "#1f77b4"), (0.2, "custodian", "#ff7f0e")):
                cells = [results[(layout, n, tool, phase)] for layout, n in keys]
                values = [c.median_calls() if metric == "calls" else c.median_seconds() for c in cells]
                ax.bar([x + offset for x in xs], values, width=0.4, label=tool, color=colour)
            ax.set_xticks(list(xs), labels, fontsize=8)
            ax.set_title(f"{'detect + lease' if phase == 'detect' else 'reap on expiry'}: {title} (median)")
            if metric == "calls":
                ax.set_yscale("log")
            ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000", help="comma-separated instance counts")
    parser.add_argument("--layouts", default=",".join(LAYOUTS), help=f"comma-separated, of {', '.join(LAYOUTS)}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--custodian", default=str(ROOT / "bench" / ".venv-c7n" / "bin" / "custodian"))
    parser.add_argument("--lease-seconds", type=int, default=0,
                        help="ZeroCloud's default lease; 0: 30 s plus 10 s per 1,000 instances")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    layouts = [name.strip() for name in args.layouts.split(",")]
    version = subprocess.run([args.custodian, "version"], capture_output=True, text=True, check=True).stdout.strip()
    results: dict[tuple[str, int, str, str], Cell] = {}
    lags: dict[tuple[str, int], list[float]] = {}
    overrides = {"ZC_LOG_LEVEL": "WARNING"}
    with ProcessStack(overrides=overrides) as stack, tempfile.TemporaryDirectory() as scratch:
        stack.start_services()
        zerocloud = ZeroCloud(stack, stack.create_admin("bench@zerocloud.example"), lease_seconds=0)
        for layout in layouts:
            for n in sizes:
                zerocloud.lease_seconds = args.lease_seconds or 30 + 10 * n // 1000
                for run in range(args.runs):
                    cells = fresh_cells(layout)
                    launch(stack.moto_url, cells, n)
                    work = Path(scratch) / f"{layout}-{n}-{run}"
                    work.mkdir()
                    detect = custodian(args.custodian, stack, LEASE_POLICY, cells, work)
                    reap = custodian(args.custodian, stack, REAP_POLICY, cells, work)
                    if stopped(stack.moto_url, cells) != n:
                        raise RuntimeError("custodian did not stop every instance")
                    results.setdefault((layout, n, "custodian", "detect"), Cell()).phases.append(detect)
                    results.setdefault((layout, n, "custodian", "reap"), Cell()).phases.append(reap)

                    cells = fresh_cells(layout)
                    launch(stack.moto_url, cells, n)
                    zerocloud.onboard(cells)
                    detect = zerocloud.detect(n)
                    wait_for_expiry(stack, zerocloud.cloud_accounts)
                    reap, lag = zerocloud.reap(n)
                    if stopped(stack.moto_url, cells) != n:
                        raise RuntimeError("ZeroCloud did not stop every instance")
                    zerocloud.offboard()
                    results.setdefault((layout, n, "zerocloud", "detect"), Cell()).phases.append(detect)
                    results.setdefault((layout, n, "zerocloud", "reap"), Cell()).phases.append(reap)
                    lags.setdefault((layout, n), []).append(lag)
                    print(f"{layout} N={n} run {run + 1}: c7n detect {results[(layout, n, 'custodian', 'detect')].phases[-1].seconds:.2f}s, "
                          f"ZeroCloud detect {detect.seconds:.2f}s / {detect.total} calls, reap {reap.seconds:.2f}s / {reap.total} calls",
                          flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = "\n".join([
        f"# ZeroCloud beside Cloud Custodian ({version}), {datetime.now(timezone.utc):%Y-%m-%d}",
        "",
        f"Medians of {args.runs} runs on one moto server behind a counting proxy; {os.cpu_count()} cores. "
        "ZeroCloud's services were already running (as in production); each Cloud Custodian run is a "
        "`custodian run` process per AWS account, its start-up included. ZeroCloud's reap time runs from the "
        "last lease's expiry to the last lease reaped. *Calls AWS would take*: the calls less the pages only moto "
        "makes a client ask for (moto pages an EC2 Describe asked without MaxResults by 100 reservations; AWS "
        "answers it whole, and refuses MaxResults beside InstanceIds).",
        "",
        table(results, lags),
        "",
        f"Rerun: `make bench` (or `.venv/bin/python bench/side_by_side.py --sizes {args.sizes} --runs {args.runs}`).",
    ])
    (out / "side_by_side.md").write_text(report + "\n")
    (out / "side_by_side.json").write_text(json.dumps(
        {"|".join(map(str, key)): [{"seconds": p.seconds, "calls": dict(p.calls), "moto_only": dict(p.moto_only)}
                                   for p in cell.phases]
         for key, cell in results.items()}, indent=1))
    chart(results, out / "side_by_side.png")
    print(report)


if __name__ == "__main__":
    main()
