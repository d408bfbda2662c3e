"""The README's walkthrough, as a newcomer follows it: `make run` from the checkout (in the
background, on free ports and a fresh data folder), then every command of the
walkthrough's shell blocks, read from README.md and run by bash with the token and URL the
banner printed. The sandbox must have made a lease owned by alice and mailed her (the
mailbox page shows it), and must stop cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECTION = "## Walkthrough (the sandbox)"
README_URL = "http://127.0.0.1:8000"
README_TOKEN = "<the admin token it printed>"
START_SECONDS = 90.0


def walkthrough_blocks(readme: str) -> list[list[str]]:
    """The commands of each ```sh block of the walkthrough section, comments and blank
    lines left out, continuation lines joined."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end != -1 else len(readme)]
    blocks = []
    for body in re.findall(r"^```sh\n(.*?)^```", section, flags=re.S | re.M):
        commands: list[str] = []
        pending = ""
        for line in body.splitlines():
            stripped = line.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1].rstrip() + " "
                continue
            commands.append(pending + stripped)
            pending = ""
        blocks.append(commands)
    return blocks


@dataclass
class Sandbox:
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
        self.done.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output, flags=re.M)
            if found:
                return found
            if self.done.is_set():
                break
            time.sleep(0.2)
        raise AssertionError(f"`make run` did not print {pattern!r}; it printed:\n{self.output}")


@pytest.fixture
def sandbox_env(tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ZC_")}
    env.update(
        ZC_SANDBOX_DIR=str(tmp_path / "zerocloud"),
        ZC_SANDBOX_PORT=str(free_port()),
        ZC_SANDBOX_MOTO_PORT=str(free_port()),
        XDG_CONFIG_HOME=str(tmp_path / "config"),  # no stored token of the developer's
    )
    return env


@pytest.fixture
def sandbox(sandbox_env: dict[str, str]) -> Iterator[Sandbox]:
    """`make run`, in a session of its own so the test can press Ctrl-C (SIGINT to the group)."""
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run"], cwd=ROOT, env=sandbox_env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    running = Sandbox(process)
    threading.Thread(target=running.read, daemon=True).start()
    try:
        yield running
    finally:
        if process.poll() is None:  # the test failed half-way: Ctrl-C, and only then force
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def test_the_readme_walkthrough_gives_alice_a_lease_and_a_mail(
    sandbox: Sandbox, sandbox_env: dict[str, str]
) -> None:
    blocks = walkthrough_blocks(README.read_text())
    assert blocks and blocks[0] == ["make run"], "the walkthrough starts with `make run`"
    script = [command for block in blocks[1:] for command in block]
    assert any(README_TOKEN in command for command in script), "the walkthrough exports the printed token"
    assert any(c.startswith("zerocloud-cli sandbox launch --owner alice@example.com") for c in script)

    api_url = sandbox.wait_for(r"^\s*API\s+(http://127\.0\.0\.1:\d+)", START_SECONDS).group(1)
    token = sandbox.wait_for(r"^\s*admin token\s+(zc_\S+)", 5).group(1)
    sandbox.wait_for(r"^then open ", 5)
    assert api_url.endswith(f":{sandbox_env['ZC_SANDBOX_PORT']}")
    assert re.search(rf"^\s*mailbox\s+{re.escape(api_url)}/mailbox\b", sandbox.output, flags=re.M)
    assert "ENFORCE" in sandbox.output and "Demo" in sandbox.output

    # Every command of the walkthrough, as typed, with what this sandbox printed.
    commands = [c.replace(README_TOKEN, token).replace(README_URL, api_url) for c in script]
    ran = subprocess.run(
        ["bash", "-euo", "pipefail", "-xc", "\n".join(commands)], cwd=ROOT, env=sandbox_env,
        capture_output=True, text=True, timeout=120,
    )
    assert ran.returncode == 0, f"the walkthrough failed:\n{ran.stderr}\n{ran.stdout}"
    assert "ZeroCloud noticed them and made these leases" in ran.stdout

    env = {**sandbox_env, "ZC_API_URL": api_url, "ZC_API_TOKEN": token}
    cli = str(ROOT / ".venv" / "bin" / "zerocloud-cli")
    listed = subprocess.run([cli, "list", "leases", "--json"], env=env, capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    leases = {lease["id"]: lease for lease in json.loads(listed.stdout)["data"]}
    assert len(leases) == 3
    assert {lease["owner_email"] for lease in leases.values()} == {"alice@example.com"}
    assert leases[1]["version"] == 2  # renewed by the walkthrough

    with httpx.Client(base_url=api_url, timeout=10) as web:
        # The shut-down lease is reaped (enforce mode), and alice is told of both events.
        deadline = time.monotonic() + 30
        while True:
            lease = web.get("/api/v1/leases/3", headers={"Authorization": f"Bearer {token}"}).json()
            mails = mailbox_rows(web.get("/mailbox").text)
            if lease["status"] == "reaped" and len(mails) >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert lease["status"] == "reaped"
        assert mails and all(to == "alice@example.com" for _, to, _ in mails), web.get("/mailbox").text[:3000]
        # Newest first: the oldest is the confirmation mail alice was sent when the demo
        # added her (the sandbox followed its link), then the new-lease digest.
        assert "confirm your address" in mails[-1][2].lower()
        mails = [row for row in mails if "confirm your address" not in row[2].lower()]
        first = mails[-1]
        assert "new lease" in first[2].lower()
        page = web.get(first[0])
        assert page.status_code == 200
        assert re.search(rf'<a href="{re.escape(api_url)}/a/[\w-]+">', page.text), "clickable action links"

    # Ctrl-C to the sandbox (not to make, which would report the interrupt as its own
    # failure): it stops every part of itself, says so and exits 0 — so make does too.
    runner = [child for child in psutil.Process(sandbox.process.pid).children(recursive=True)
              if "sandbox" in child.cmdline() and "run" in child.cmdline()]
    assert len(runner) == 1, runner
    runner[0].send_signal(signal.SIGINT)
    code = sandbox.process.wait(timeout=60)
    sandbox.done.wait(timeout=10)
    assert "the sandbox has stopped" in sandbox.output
    assert "Traceback" not in sandbox.output, sandbox.output
    assert code == 0, f"make exited {code}:\n{sandbox.output}"
    data_dir = Path(sandbox_env["ZC_SANDBOX_DIR"])
    assert not (data_dir / "pgdata" / "postmaster.pid").exists(), "PostgreSQL was left running"
    for port in (sandbox_env["ZC_SANDBOX_PORT"], sandbox_env["ZC_SANDBOX_MOTO_PORT"]):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def mailbox_rows(page: str) -> list[tuple[str, str, str]]:
    """(link, to, subject) of each mail the mailbox page lists, in its order."""
    rows = re.findall(
        r'<td data-label="To">([^<]*)</td>\s*<td data-label="Subject"><a href="([^"]+)">([^<]*)</a>', page
    )
    return [(href, to, subject) for to, href, subject in rows]


def test_the_walkthrough_reader_keeps_every_command() -> None:
    readme = "\n".join([
        "# x", SECTION, "", "```sh", "make run", "```", "text", "```sh", "# a comment", "export A=1 \\",
        "  B=2", "", "zerocloud-cli list leases", "```", "## Next", "```sh", "not this", "```",
    ])
    assert walkthrough_blocks(readme) == [["make run"], ["export A=1 B=2", "zerocloud-cli list leases"]]
