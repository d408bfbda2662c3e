"""schemathesis over the public OpenAPI (/api/v1), in-process, with each role's token:
whatever anyone sends, the api answers no 5xx, only the status codes an operation
documents, and bodies that match the documented schemas.

Bounded in time: a few examples per operation, mode and role (valid and invalid input),
plus the same with the ids of seeded objects in the path, so the fuzz reaches past 404."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import ASGIClient, shutdown_lifespans
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from zc_common.settings import ApiSettings

from tests.api.factories import (
    Api,
    make_cloud_account,
    make_lease,
    make_tenant,
    make_user_token,
    running_api,
)
from zc_api.main import create_app

# Examples per operation, generation mode and role; with the seeded-id pass, about
# 1,000 requests per role: about 30 s in all on a 2-core machine.
MAX_EXAMPLES = 6
# Per example (one request); a slower one is a finding, not noise.
DEADLINE = timedelta(seconds=5)
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
BASE_URL = "http://testserver"

pytestmark = pytest.mark.timeout(85)


@dataclass
class Seeded:
    """Tokens per role, and per role the ids its fuzzed paths may name."""

    tokens: dict[str, str | None]
    ids: dict[str, dict[str, int]] = field(default_factory=dict)


async def _victim_token(api: Api, token: str) -> int:
    """A second token of the same person: revoking it must not lock the fuzz out."""
    response = await api.client.post(
        "/api/v1/tokens", json={"name": "to revoke"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 201, response.text
    token_id: int = response.json()["id"]
    return token_id


@pytest.fixture
async def seeded(api_settings: Callable[..., ApiSettings]) -> AsyncIterator[tuple[ApiSettings, Seeded]]:
    """Two tenants with a cloud account, a lease, a spare user, an invitation and a sweep each,
    written by one api instance; the fuzzed one (below) then serves the same database."""
    settings = api_settings()
    async with running_api(settings) as api:
        mine, theirs = await make_tenant(api), await make_tenant(api)
        cloud = await make_cloud_account(api, mine)
        await make_cloud_account(api, theirs)
        resource_id, lease_id = await make_lease(api, cloud, mine.dev)
        spare = await make_user_token(api, mine.account_id)
        invited = await api.client.post(
            f"/api/v1/accounts/{mine.account_id}/invitations",
            json={"email": "someone-new@example.com", "role": "dev"}, headers=mine.admin.headers,
        )
        assert invited.status_code == 201, invited.text
        swept = await api.client.post("/api/v1/sweeps", json={"cloud_account_id": cloud["id"]}, headers=mine.admin.headers)
        assert swept.status_code == 202, swept.text
        mine_ids = {
            "account_id": mine.account_id, "cloud_account_id": cloud["id"], "resource_id": resource_id,
            "lease_id": lease_id, "user_id": spare.user_id, "invitation_id": invited.json()["id"],
            "sweep_id": swept.json()["data"][0]["id"],
        }
        tokens: dict[str, str | None] = {
            "anonymous": None, "developer": mine.dev.token, "admin": mine.admin.token,
            "other_admin": theirs.admin.token,
        }
        ids = {
            role: {**mine_ids, "token_id": await _victim_token(api, token) if token else 1}
            for role, token in tokens.items()
        }
    yield settings, Seeded(tokens=tokens, ids=ids)


def _public_schema(app: Any) -> Any:
    # From the app's document itself, not a URL: /openapi.json is not for the public port.
    document = app.openapi()
    document["paths"] = {path: item for path, item in document["paths"].items() if path.startswith("/api/v1/")}
    return schemathesis.openapi.from_dict(document)


def _reproduction(error: BaseException) -> str:
    # The first lines name the failure; the curl line reproduces it.
    lines = str(error).splitlines()
    curl = [line.strip() for line in lines if line.strip().startswith("curl ")]
    head = [line.strip() for line in lines if line.strip() and not line.strip().startswith("curl ")][:8]
    return " | ".join(head + curl[:1])


@dataclass
class Run:
    """What one role's fuzz saw: the findings, and how many answers of each status class."""

    findings: list[str] = field(default_factory=list)
    answers: Counter[str] = field(default_factory=Counter)


def _fuzz_mode(operation: Any, mode: GenerationMode, client: ASGIClient, headers: dict[str, str], run: Run,
               path_parameters: dict[str, int] | None) -> None:
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES, deadline=DEADLINE, derandomize=True, database=None,
        suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def fuzz(case: Any) -> None:
        # A finding is recorded, not raised: no shrinking, so the time stays bounded.
        try:
            response = case.call(base_url=BASE_URL, session=client, headers=headers)
            run.answers[f"{response.status_code // 100}xx"] += 1
            case.validate_response(response, checks=CHECKS)
        except (Exception, FailureGroup) as error:  # noqa: BLE001 - every failure is a finding
            run.findings.append(f"{operation.label} [{mode.value}]: {_reproduction(error)}")

    fuzz()


@pytest.mark.parametrize("role", ["anonymous", "developer", "admin", "other_admin"])
def test_the_public_api_answers_only_what_it_documents(seeded: tuple[ApiSettings, Seeded], role: str) -> None:
    settings, seed = seeded
    app = create_app(settings)  # its own in-process bus (ZC_BUS=memory), closed with it
    token = seed.tokens[role]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    run = Run()
    started = time.monotonic()
    try:
        with ASGIClient(app) as client:
            for result in _public_schema(app).get_all_operations():
                operation = result.ok()
                names = {p.name for p in operation.path_parameters}
                seeded_ids = {name: seed.ids[role][name] for name in names}
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    _fuzz_mode(operation, mode, client, headers, run, None)
                    if seeded_ids:
                        _fuzz_mode(operation, mode, client, headers, run, seeded_ids)
    finally:
        shutdown_lifespans()
    elapsed = time.monotonic() - started
    assert not run.findings, f"{len(run.findings)} findings in {elapsed:.0f} s:\n" + "\n\n".join(run.findings)
    # The fuzz reached past the door: a token that works got answers, not only refusals.
    if token is not None:
        assert run.answers["2xx"] > 0, run.answers
