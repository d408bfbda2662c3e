"""Tenant isolation of the policy bounds (issue 10): tenant A's ``GET /api/v1/users/me``
p99 while tenant B holds the largest policy the api accepts (100 email patterns, each about as
long as a pattern may be, and 10 warnings 60 s apart), against B holding an empty one.
Target: within 2x.

    .venv/bin/python bench/policy_isolation.py [--requests 2000] [--repeat 3] [--concurrency 4]

The api is served for real, as an operator runs it: ``zerocloud-api serve`` in its own
process (in-process bus, a scratch database ``zc_bench_<hex>`` on the local PostgreSQL,
migrated here and dropped at the end), with GitHub sign-in sent to the fake GitHub
(zc_cli.fake_github) in a process of its own. Each run has four phases, each timing
``--requests`` requests of A's developer (``--concurrency`` at a time, after a warm-up):

  empty         B's policy empty (no patterns, the default warnings); B idle.
  largest-idle  B's policy the largest; B idle.
  empty+load    B's policy empty; B's admin keeps PATCHing it (two empty policies in
                turn), reading its policy and /users/me, and people keep signing in with
                GitHub (so the api looks their addresses up in every policy's patterns:
                every other one matches B's, when B has patterns).
  largest       the same load, but B's two policies in turn are both the largest.

B's load runs in a process of its own (``--b-workers`` loops; ``--no-sign-ins`` leaves
the sign-ins out). Prints each run (with the CPU the api process used), the medians of
p50 and p99 per phase, the ratios of the median p99 of largest to empty (the issue's
figure), of largest to empty+load (the policy's size alone, B's load being the same)
and of largest-idle to empty (B merely holding it), and the status codes the api
answers 101 patterns, 11 warnings and warnings 59 s apart with (expected 422)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import asyncpg
import httpx

from zc_api.auth.bootstrap import create_admin
from zc_api.auth.service import issue_token
from zc_api.database import create_engine, migrate, session_maker, transaction
from zc_api.leases.policy import MAX_EMAIL_PATTERNS, MAX_WARNINGS, MIN_WARNING_SPACING_SECONDS
from zc_api.models import User

# The suite's shared scaffolding (tests/support), from the repository this script is in.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.ports import free_port  # noqa: E402

BIN = Path(sys.executable).parent
GITHUB_CLIENT_ID = "zc-bench-github-client"
EMPTY_WARNINGS = ([86400, 3600], [86400, 7200])  # the default, and one as small
REFUSED_DOMAIN = "nowhere.example.net"  # B's unmatched sign-ins: no policy holds it


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", "-n", type=int, default=2000, help="timed GET /users/me of A per phase")
    parser.add_argument("--repeat", type=int, default=3, help="runs of the four phases")
    parser.add_argument("--concurrency", type=int, default=4, help="A's requests in flight at once")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests of A before each phase")
    parser.add_argument("--b-workers", type=int, default=2, help="B's load: loops running at once")
    parser.add_argument("--no-sign-ins", action="store_true", help="B's load without the GitHub sign-ins")
    parser.add_argument("--short-patterns", action="store_true",
                        help="patterns like *@team7.example.com instead of the longest the api accepts")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432")
    return parser.parse_args(argv)


# --- the policies ----------------------------------------------------------------------------


def _labels(length: int, fill: str) -> str:
    """Labels of at most 63 characters, dot-separated, ``length`` characters in all."""
    labels = []
    while length > 63:
        size = min(63, length - 2)  # leave at least one character after the dot
        labels.append(fill[:size])
        length -= size + 1
    labels.append(fill[:length])
    return ".".join(labels)


def padded(front: str, fill: str, short: bool, *, extra: int = 0) -> str:
    """``front.example.com``; unless ``short``, with labels between making it ``253 - extra``
    characters, the longest domain (a pattern's domain must be at most 253)."""
    if short:
        return f"{front}.example.com"
    room = 253 - extra - len(front) - len(".example.com") - 1
    return f"{front}.{_labels(room, fill)}.example.com"


def largest_policy(variant: int, fill: str, short: bool) -> dict[str, Any]:
    """100 patterns — a third ``*@teamN.…``, a third ``*@*.divN.…``, a third addresses
    ``userN@…``, each unless ``short`` about as long as the api accepts (255, 252 and 318
    characters: the subdomains leave room for the ``dept.`` of the addresses that join) — and 10 warnings 60 s apart. Both variants hold the same subdomain
    patterns (whom B's sign-ins join by) and differ in the rest, so each PATCH changes 67
    patterns and every warning."""
    teams = [f"*@{padded(f'team{100 * variant + n}', fill, short)}" for n in range(34)]
    divisions = [f"*@*.{padded(f'div{n}', fill, short, extra=len('dept.'))}" for n in range(33)]
    addresses = []
    for n in range(33):
        local = f"user{100 * variant + n}"
        if not short:
            local = f"{local}-{fill}"[:64]
        addresses.append(f"{local}@{padded(f'org{100 * variant + n}', fill, short)}")
    patterns = teams + divisions + addresses
    assert len(patterns) == MAX_EMAIL_PATTERNS
    first = 3600 * (1 + variant)
    warnings = [first + MIN_WARNING_SPACING_SECONDS * k for k in range(MAX_WARNINGS)]
    return {"allowed_email_patterns": patterns, "warning_seconds": warnings}


def join_email(login: str, n: int, fill: str, short: bool) -> str:
    """An address on a subdomain of ``div{n % 33}`` (a pattern both largest policies hold)."""
    return f"{login}@dept.{padded(f'div{n % 33}', fill, short, extra=len('dept.'))}"


def empty_policy(variant: int) -> dict[str, Any]:
    return {"allowed_email_patterns": [], "warning_seconds": EMPTY_WARNINGS[variant]}


# --- processes and the database ----------------------------------------------------------------


def wait_until(url: str, alive: Callable[[], bool], *, ok: Sequence[int] = (200,), timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{url}: the server exited before it answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).status_code in ok:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


def sql(server_url: str, statement: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(f"{server_url}/postgres")
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(run())


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    name = f"zc_bench_{secrets.token_hex(6)}"
    sql(server_url, f'CREATE DATABASE "{name}"')
    url = f"{server_url}/{name}"
    try:
        asyncio.run(migrate(url))
        yield url
    finally:
        sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _serve_fake_github(port: int, client_secret: str) -> None:  # in a process of its own
    import uvicorn

    from zc_cli.fake_github import create_fake_github

    app = create_fake_github(GITHUB_CLIENT_ID, client_secret, [])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextlib.contextmanager
def fake_github() -> Iterator[tuple[str, str]]:
    """The fake GitHub on a free port, in its own process: (its URL, the client secret)."""
    port, client_secret = free_port(), f"zc-bench-github-{secrets.token_urlsafe(32)}"
    process = multiprocessing.get_context("spawn").Process(
        target=_serve_fake_github, args=(port, client_secret), name="fake-github", daemon=True
    )
    process.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(f"{url}/login/oauth/authorize", process.is_alive, ok=(400,))  # 400: asked nothing
        yield url, client_secret
    finally:
        process.terminate()
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


@dataclass
class Served:
    url: str
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)


@contextlib.contextmanager
def serve_api(database_url: str, github_url: str, github_secret: str, workdir: Path) -> Iterator[Served]:
    """``zerocloud-api serve`` in its own process, as an operator runs it."""
    port, internal_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{port}"
    github = github_url.rstrip("/")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ZC_")},
        "ZC_DATABASE_URL": database_url, "ZC_BUS": "memory", "ZC_AMQP_URL": "memory://",
        **{f"ZC_{service.upper()}_TOKEN": f"zc_{service}_{secrets.token_urlsafe(32)}"
           for service in ("ingestor", "notifier", "reaper")},
        "ZC_HTTP_HOST": "127.0.0.1", "ZC_HTTP_PORT": str(port),
        "ZC_INTERNAL_HOST": "127.0.0.1", "ZC_INTERNAL_PORT": str(internal_port),
        "ZC_PUBLIC_URL": public_url, "ZC_LOG_LEVEL": "WARNING",
        "ZC_GITHUB_CLIENT_ID": GITHUB_CLIENT_ID, "ZC_GITHUB_CLIENT_SECRET": github_secret,
        "ZC_GITHUB_AUTHORIZE_URL": f"{github}/login/oauth/authorize",
        "ZC_GITHUB_TOKEN_URL": f"{github}/login/oauth/access_token", "ZC_GITHUB_API_URL": github,
    }
    log = workdir / "api.log"
    with log.open("wb") as output:
        process = subprocess.Popen([str(BIN / "zerocloud-api"), "serve"], env=env, stdout=output,
                                   stderr=subprocess.STDOUT)
    served = Served(url=public_url, log=log, process=process)
    try:
        try:
            wait_until(f"{public_url}/readyz", lambda: process.poll() is None)
        except RuntimeError:
            sys.stderr.write(log.read_text()[-4000:])
            raise
        yield served
    finally:
        process.terminate()  # SIGTERM: drains and exits 0
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- tenants ------------------------------------------------------------------------------------


@dataclass
class Tenants:
    a_account: int
    a_admin: str
    a_dev: str
    b_account: int
    b_admin: str


async def make_tenants(database_url: str, api_url: str) -> Tenants:
    """Two admins (as ``zerocloud-api create-admin`` makes them), each creating an account
    through the API; A also gets a developer with a token of their own."""
    engine = create_engine(database_url, pool_size=1)
    try:
        sessions = session_maker(engine)
        async with transaction(sessions) as session:
            _, a_admin = await create_admin(session, "admin@a.bench.test", token_name="bench")
            _, b_admin = await create_admin(session, "admin@b.bench.test", token_name="bench")
        accounts = []
        async with httpx.AsyncClient(base_url=api_url) as client:
            for name, token in (("Tenant A", a_admin), ("Tenant B", b_admin)):
                response = await client.post(
                    "/api/v1/accounts", headers=bearer(token),
                    json={"name": name, "lease_expires_in": 3, "lease_expires_in_units": "days"},
                )
                assert response.status_code == 201, response.text
                accounts.append(int(response.json()["id"]))
        async with transaction(sessions) as session:
            dev = User(account_id=accounts[0], email="dev@a.bench.test", role="dev",
                       email_confirmed_at=datetime.now(timezone.utc))
            session.add(dev)
            await session.flush()
            a_dev = await issue_token(session, dev, "bench")
    finally:
        await engine.dispose()
    return Tenants(a_account=accounts[0], a_admin=a_admin, a_dev=a_dev, b_account=accounts[1], b_admin=b_admin)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- tenant A, timed ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def time_me(api_url: str, token: str, requests: int, concurrency: int, warmup: int, api_pid: int
                  ) -> tuple[list[float], float, float]:
    """Seconds each of ``requests`` GET /api/v1/users/me took, ``concurrency`` at a time
    (after ``warmup`` untimed ones); the wall time they took and the share of a CPU the
    api process used meanwhile."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(token), limits=limits, timeout=60) as client:

        async def run(count: int, into: list[float] | None) -> None:
            left = count

            async def worker() -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    started = time.perf_counter()
                    response = await client.get("/api/v1/users/me")
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise RuntimeError(f"GET /users/me: {response.status_code} {response.text[:200]}")
                    if into is not None:
                        into.append(elapsed)

            await asyncio.gather(*(worker() for _ in range(concurrency)))

        await run(warmup, None)
        latencies: list[float] = []
        began, cpu = time.perf_counter(), cpu_seconds(api_pid)
        await run(requests, latencies)
        elapsed = time.perf_counter() - began
        api_cpu = (cpu_seconds(api_pid) - cpu) / elapsed
    return latencies, elapsed, api_cpu


# --- tenant B's load, in a process of its own -------------------------------------------------------


def _b_load(api_url: str, github_url: str, account_id: int, admin_token: str, policies: list[dict[str, Any]],
            fill: str, short: bool, workers: int, sign_ins: bool, started: Event, stop: Event, report: Any) -> None:
    report.send(asyncio.run(_b_load_async(api_url, github_url, account_id, admin_token, policies, fill, short,
                                          workers, sign_ins, started, stop)))


async def _b_load_async(api_url: str, github_url: str, account_id: int, admin_token: str,
                        policies: list[dict[str, Any]], fill: str, short: bool, workers: int, sign_ins: bool,
                        started: Event, stop: Event) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    patch_seconds: list[float] = []
    signin_seconds: list[float] = []
    tag = secrets.token_hex(3)
    policy_url = f"/api/v1/accounts/{account_id}/policy"
    began = time.perf_counter()
    async with (
        httpx.AsyncClient(base_url=api_url, headers=bearer(admin_token), timeout=60) as admin,
        httpx.AsyncClient(timeout=60) as github,
    ):

        async def sign_in(login: str, email: str) -> int:
            """The GitHub round trip of someone new, as a browser does it: the status of the
            api's callback (303 signed in, 403 refused)."""
            async with httpx.AsyncClient(base_url=api_url, timeout=60) as browser:
                start = await browser.post("/login/github", data={})
                assert start.status_code == 303, start.text[:300]
                authorize = start.headers["location"]
                form = dict(parse_qsl(urlsplit(authorize).query))
                form.update(new_login=login, new_email=email)
                chosen = await github.post(authorize.split("?", 1)[0], data=form)
                assert chosen.status_code == 302, chosen.text[:300]
                back = urlsplit(chosen.headers["location"])
                began = time.perf_counter()
                callback = await browser.get(f"{back.path}?{back.query}")
                signin_seconds.append(time.perf_counter() - began)
                return callback.status_code

        async def loop(worker: int) -> None:
            n = 0
            while not stop.is_set():
                began = time.perf_counter()
                response = await admin.patch(policy_url, json=policies[n % len(policies)])
                patch_seconds.append(time.perf_counter() - began)
                counts[f"PATCH policy {response.status_code}"] += 1
                response = await admin.get(policy_url)
                counts[f"GET policy {response.status_code}"] += 1
                response = await admin.get("/api/v1/users/me")
                counts[f"GET me {response.status_code}"] += 1
                if sign_ins:
                    login = f"bench-{tag}-{worker}-{n}"
                    joining = n % 2 == 0
                    email = join_email(login, n, fill, short) if joining else f"{login}@{REFUSED_DOMAIN}"
                    status = await sign_in(login, email)
                    counts[f"sign-in {'matching' if joining else 'unmatched'} {status}"] += 1
                n += 1
                if worker == 0 and n == 1:
                    started.set()

        await asyncio.gather(*(loop(worker) for worker in range(workers)))
    return {"counts": dict(counts), "patch": patch_seconds, "signin": signin_seconds,
            "seconds": time.perf_counter() - began}


@contextlib.contextmanager
def b_loading(api_url: str, github_url: str, tenants: Tenants, policies: list[dict[str, Any]], fill: str,
              short: bool, workers: int, sign_ins: bool, into: dict[str, Any]) -> Iterator[None]:
    """B's load running (after its first round) for as long as the block lasts; what it
    did in ``into``."""
    context = multiprocessing.get_context("spawn")
    started, stop = context.Event(), context.Event()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(
        target=_b_load, name="tenant-b",
        args=(api_url, github_url, tenants.b_account, tenants.b_admin, policies, fill, short, workers, sign_ins,
              started, stop, send),
    )
    process.start()
    try:
        while not started.wait(0.2):
            if not process.is_alive():
                raise RuntimeError("tenant B's load stopped before it started")
        yield
    finally:
        stop.set()
        while process.is_alive() and not receive.poll(0.2):
            pass
        if receive.poll():
            into.update(receive.recv())
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
        if process.exitcode:
            raise RuntimeError(f"tenant B's load failed (exit {process.exitcode})")


def describe_load(load: dict[str, Any]) -> str:
    seconds = load["seconds"]
    counts: dict[str, int] = load.get("counts", {})
    patches = sum(v for k, v in counts.items() if k.startswith("PATCH"))
    joined = sum(v for k, v in counts.items() if k.startswith("sign-in matching 303"))
    refused = sum(v for k, v in counts.items() if k.startswith("sign-in") and k.endswith(" 403"))
    signins = sum(v for k, v in counts.items() if k.startswith("sign-in"))
    odd = {k: v for k, v in counts.items()
           if not (k.endswith(" 200") or k.startswith("sign-in matching 303") or k.endswith(" 403"))}
    def p50(name: str) -> float:
        return statistics.median(load[name]) * 1000 if load.get(name) else float("nan")

    text = (f"B: {patches / seconds:.0f} PATCH/s (p50 {p50('patch'):.1f} ms), "
            f"{signins / seconds:.0f} sign-ins/s ({joined} joined, {refused} refused, "
            f"callback p50 {p50('signin'):.1f} ms)")
    return text + (f"  other answers: {odd}" if odd else "")


# --- the bench --------------------------------------------------------------------------------------


PHASES = ("empty", "largest-idle", "empty+load", "largest")
LOADED = ("empty+load", "largest")


async def patch_b(api_url: str, tenants: Tenants, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api_url, headers=bearer(tenants.b_admin), timeout=60) as client:
        return await client.patch(f"/api/v1/accounts/{tenants.b_account}/policy", json=body)


def check_bounds(api_url: str, tenants: Tenants) -> None:
    largest = largest_policy(0, "", short=True)
    over = {
        f"{MAX_EMAIL_PATTERNS + 1} patterns": {
            "allowed_email_patterns": [*largest["allowed_email_patterns"], "*@one-more.example.com"]},
        f"{MAX_WARNINGS + 1} warnings {MIN_WARNING_SPACING_SECONDS} s apart": {
            "warning_seconds": [3600 + MIN_WARNING_SPACING_SECONDS * k for k in range(MAX_WARNINGS + 1)]},
        f"{MAX_WARNINGS} warnings {MIN_WARNING_SPACING_SECONDS - 1} s apart": {
            "warning_seconds": [3600 + (MIN_WARNING_SPACING_SECONDS - 1) * k for k in range(MAX_WARNINGS)]},
    }
    print("refused by the api (expected 422):")
    for what, body in over.items():
        response = asyncio.run(patch_b(api_url, tenants, body))
        detail = response.json().get("detail", "") if response.headers.get("content-type", "").startswith(
            "application/json") else response.text
        print(f"  {what:32} {response.status_code}  {str(detail)[:110]}")


def main(args: argparse.Namespace) -> int:
    short = args.short_patterns
    fill = secrets.token_hex(32)[:63]  # the padding labels (random: no better compressed than real names)
    largest = [largest_policy(variant, fill, short) for variant in (0, 1)]
    empty = [empty_policy(variant) for variant in (0, 1)]
    results: dict[str, list[tuple[float, float]]] = {phase: [] for phase in PHASES}
    with tempfile.TemporaryDirectory(prefix="zc-policy-bench-") as workdir, \
            scratch_database(args.postgres) as database_url, fake_github() as (github_url, github_secret), \
            serve_api(database_url, github_url, github_secret, Path(workdir)) as api:
        tenants = asyncio.run(make_tenants(database_url, api.url))
        # What the api stored of the largest policy: all of it.
        stored = asyncio.run(patch_b(api.url, tenants, largest[0]))
        assert stored.status_code == 200, stored.text
        body = stored.json()
        size = len(stored.content)
        print(f"api {api.url} (zerocloud-api serve, one process, in-process bus), database "
              f"{database_url.rsplit('/', 1)[1]}; {os.cpu_count()} CPUs shared with PostgreSQL, the fake GitHub, "
              "A's client and B's load")
        print(f"B's largest policy: {len(body['allowed_email_patterns'])} patterns "
              f"(longest {max(map(len, body['allowed_email_patterns']))} characters), "
              f"{len(body['warning_seconds'])} warnings {MIN_WARNING_SPACING_SECONDS} s apart; "
              f"{size / 1024:.1f} KiB as the api answers it")
        check_bounds(api.url, tenants)
        print(f"A: {args.requests} GET /api/v1/users/me per phase, {args.concurrency} at a time, "
              f"after {args.warmup} untimed; B's load: {args.b_workers} loops of PATCH policy, GET policy, "
              + ("GET /users/me" if args.no_sign_ins else
                 "GET /users/me and a GitHub sign-in (every other one matching B's patterns)"))
        print()
        for run in range(1, args.repeat + 1):
            for phase in PHASES:
                policies = largest if phase.startswith("largest") else empty
                response = asyncio.run(patch_b(api.url, tenants, policies[0]))
                assert response.status_code == 200, response.text
                load: dict[str, Any] = {}
                with (b_loading(api.url, github_url, tenants, policies, fill, short, args.b_workers,
                                not args.no_sign_ins, load)
                      if phase in LOADED else contextlib.nullcontext()):
                    latencies, elapsed, api_cpu = asyncio.run(time_me(
                        api.url, tenants.a_dev, args.requests, args.concurrency, args.warmup, api.process.pid))
                p50, p99 = statistics.median(latencies) * 1000, percentile(latencies, 99) * 1000
                results[phase].append((p50, p99))
                line = (f"run {run}  {phase:12} A p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                        f"max {max(latencies) * 1000:7.2f} ms  {len(latencies) / elapsed:4.0f} req/s  "
                        f"api CPU {api_cpu:4.0%}")
                if load:
                    line += "  " + describe_load(load)
                print(line, flush=True)
        errors = [line for line in api.log.read_text().splitlines() if '"ERROR"' in line or "Traceback" in line]
    print()
    print(f"medians of {args.repeat} runs:")
    medians = {}
    for phase in PHASES:
        p50 = statistics.median(r[0] for r in results[phase])
        p99 = statistics.median(r[1] for r in results[phase])
        medians[phase] = p99
        print(f"  {phase:12} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    ratios = (
        ("largest", "empty", "B largest, loading / B empty, idle", "<- issue 10's figure"),
        ("largest", "empty+load", "B largest, loading / B empty, same load", "(the policy's size, under load)"),
        ("largest-idle", "empty", "B largest, idle / B empty, idle", "(B merely holding it)"),
    )
    for top, bottom, what, note in ratios:
        ratio = medians[top] / medians[bottom]
        print(f"A's p99, {what:40} {ratio:5.2f}x  ({'within' if ratio <= 2 else 'NOT within'} 2x)  {note}")
    if errors:
        print(f"the api logged {len(errors)} error lines; the first: {errors[0][:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
