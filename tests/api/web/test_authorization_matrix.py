"""Who may call what: every route of the api — the REST API, the internal API and the
pages — against five callers: nobody, a developer of account A, the admin of A, the
admin of another account B, and a service (on an internal route, the service whose route
it is; each other service's credential is refused there: tests/api/test_auth.py). Each gets exactly the answer in the
table below; a route that is not in the table fails the test, so a new route cannot
ship without someone deciding who may use it.

Outcomes: "ok" (2xx/3xx), "in" (past authorization: anything but 401/403/404, used
where the body is deliberately empty and 422 is the expected answer), "login" (a page
that sends the browser to /login?next=…), or an exact status code. A person reaches the REST
API with a bearer token and pages with a session cookie; the service token has no
session, so on pages it is nobody."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from fastapi.routing import iter_route_contexts

from tests.api.factories import (
    Api,
    Caller,
    Tenant,
    make_cloud_account,
    make_lease,
    make_tenant,
    make_user_token,
)
from tests.support.credentials import SERVICE_TOKENS

if TYPE_CHECKING:
    from tests.api.web.pages_fixtures import PageClient, PageClientFactory

pytest_plugins = ["tests.api.web.pages_fixtures"]

CALLERS = ("anonymous", "dev_a", "admin_a", "admin_b", "service")
DENIALS = {401, 403, 404}

# Profiles: the expected outcome for each caller, in CALLERS order.
API_ANY_PERSON = ("401", "ok", "ok", "ok", "404")  # a person's own things (their tokens, their leases)
API_MEMBER_OF_A = ("401", "ok", "ok", "404", "404")  # A's objects a developer may read
API_OWN_LEASE = ("401", "ok", "ok", "404", "404")  # dev_a's lease: its owner and A's admin
API_ADMIN_OF_A = ("401", "403", "ok", "404", "404")  # A's objects only A's admin may change
API_INTERNAL = ("401", "404", "404", "404", "in")  # the service token only (empty body → 422)
PAGE_ANY_PERSON = ("login", "ok", "ok", "ok", "login")
PAGE_OWN_LEASE = ("login", "ok", "ok", "404", "login")
PAGE_ADMIN = ("login", "403", "ok", "ok", "login")  # an admin page about one's own account
PAGE_ADMIN_OF_A = ("login", "403", "ok", "404", "login")
OPEN = ("ok", "ok", "ok", "ok", "ok")  # health, docs, sign-in
BY_TOKEN = ("404", "404", "404", "404", "404")  # the link's token is the credential: a forged one is nothing


@dataclass
class World:
    a: Tenant
    b: Tenant
    ids: dict[str, int]


@dataclass(frozen=True)
class Case:
    profile: tuple[str, str, str, str, str]
    body: Callable[[World], dict[str, Any]] | None = None
    form: Callable[[World], dict[str, str]] | None = None


def _none(_: World) -> dict[str, Any]:
    return {}


MATRIX: dict[tuple[str, str], Case] = {
    # Operations and documentation: open to everyone.
    ("GET", "/healthz"): Case(OPEN),
    ("GET", "/readyz"): Case(OPEN),
    ("GET", "/metrics"): Case(OPEN),  # on the internal listener only (tests/api/test_auth.py)
    ("GET", "/openapi.json"): Case(OPEN),
    ("GET", "/docs"): Case(OPEN),
    ("GET", "/docs/oauth2-redirect"): Case(OPEN),
    ("GET", "/redoc"): Case(OPEN),
    # REST API: accounts.
    ("GET", "/api/v1/accounts"): Case(API_ANY_PERSON),
    # Everyone here already belongs to an account: a second one is a 409, past authorization.
    ("POST", "/api/v1/accounts"): Case(("401", "409", "409", "409", "404"), body=lambda w: {"name": "Another"}),
    ("GET", "/api/v1/accounts/{account_id}"): Case(API_MEMBER_OF_A),
    ("PATCH", "/api/v1/accounts/{account_id}"): Case(API_ADMIN_OF_A, body=lambda w: {"name": "BigDB renamed"}),
    ("GET", "/api/v1/accounts/{account_id}/policy"): Case(API_MEMBER_OF_A),
    ("PATCH", "/api/v1/accounts/{account_id}/policy"): Case(
        API_ADMIN_OF_A, body=lambda w: {"default_lease_seconds": 7200}
    ),
    ("GET", "/api/v1/accounts/{account_id}/users"): Case(API_MEMBER_OF_A),
    ("POST", "/api/v1/accounts/{account_id}/users"): Case(
        API_ADMIN_OF_A, body=lambda w: {"email": f"new-{secrets.token_hex(3)}@example.com", "role": "dev"}
    ),
    ("GET", "/api/v1/accounts/{account_id}/invitations"): Case(API_ADMIN_OF_A),
    ("POST", "/api/v1/accounts/{account_id}/invitations"): Case(
        API_ADMIN_OF_A, body=lambda w: {"email": f"invited-{secrets.token_hex(3)}@example.com", "role": "dev"}
    ),
    ("DELETE", "/api/v1/invitations/{invitation_id}"): Case(API_ADMIN_OF_A),
    ("GET", "/api/v1/accounts/{account_id}/cloudaccounts"): Case(API_MEMBER_OF_A),
    ("POST", "/api/v1/accounts/{account_id}/cloudaccounts"): Case(API_ADMIN_OF_A, body=lambda w: _cloud_body()),
    ("GET", "/api/v1/cloudaccounts/{cloud_account_id}"): Case(API_MEMBER_OF_A),
    ("PATCH", "/api/v1/cloudaccounts/{cloud_account_id}"): Case(API_ADMIN_OF_A, body=lambda w: {"name": "renamed"}),
    ("POST", "/api/v1/cloudaccounts/{cloud_account_id}/verify"): Case(API_ADMIN_OF_A),
    ("DELETE", "/api/v1/cloudaccounts/{cloud_account_id}"): Case(API_ADMIN_OF_A),
    # Users and their policies.
    ("GET", "/api/v1/users/me"): Case(API_ANY_PERSON),
    ("GET", "/api/v1/users/{user_id}"): Case(API_MEMBER_OF_A),
    ("PATCH", "/api/v1/users/{user_id}"): Case(API_ADMIN_OF_A, body=lambda w: {"role": "dev"}),
    ("DELETE", "/api/v1/users/{user_id}"): Case(API_ADMIN_OF_A),
    ("GET", "/api/v1/users/{user_id}/policy"): Case(API_MEMBER_OF_A),
    ("PUT", "/api/v1/users/{user_id}/policy"): Case(API_ADMIN_OF_A, body=lambda w: {"max_instances": 5}),
    # Tokens: one's own only (token_id is admin_a's spare token).
    ("GET", "/api/v1/tokens"): Case(API_ANY_PERSON),
    ("POST", "/api/v1/tokens"): Case(API_ANY_PERSON, body=lambda w: {"name": "laptop"}),
    ("DELETE", "/api/v1/tokens/{token_id}"): Case(("401", "404", "ok", "404", "404")),
    # Resources, leases, audit.
    ("GET", "/api/v1/resources"): Case(API_ANY_PERSON),
    ("GET", "/api/v1/resources/{resource_id}"): Case(API_OWN_LEASE),
    ("GET", "/api/v1/leases"): Case(API_ANY_PERSON),
    ("GET", "/api/v1/leases/{lease_id}"): Case(API_OWN_LEASE),
    ("POST", "/api/v1/leases/{lease_id}/renew"): Case(API_OWN_LEASE, body=lambda w: {"extend_by_seconds": 3600}),
    ("POST", "/api/v1/leases/{lease_id}/shutdown"): Case(API_OWN_LEASE),
    ("POST", "/api/v1/leases/{lease_id}/exempt"): Case(
        ("401", "403", "ok", "404", "404"), body=lambda w: {"reason": "the build server"}
    ),
    ("POST", "/api/v1/leases/{lease_id}/owner"): Case(
        ("401", "403", "ok", "404", "404"), body=lambda w: {"email": w.a.dev.email}
    ),
    ("GET", "/api/v1/audit-events"): Case(("401", "403", "ok", "ok", "404")),
    # An event for an account nobody onboarded: a person may hand it in, it is then refused (422).
    ("POST", "/api/v1/cloudevents"): Case(("401", "in", "in", "in", "404"), body=_none),
    # Sweeps: A's admin only; B's admin does not find A's cloud account (sweep_id is A's).
    ("POST", "/api/v1/sweeps"): Case(API_ADMIN_OF_A, body=lambda w: {"cloud_account_id": w.ids["cloud_account_id"]}),
    ("GET", "/api/v1/sweeps/{sweep_id}"): Case(API_ADMIN_OF_A),
    # The internal API: the service token only.
    ("GET", "/internal/v1/cloudaccounts"): Case(("401", "404", "404", "404", "ok")),
    # (without its required region: 422, past authorization)
    ("GET", "/internal/v1/cloudaccounts/{cloud_account_id}/instances"): Case(API_INTERNAL),
    ("POST", "/internal/v1/cloudaccounts/event-arrivals"): Case(API_INTERNAL),
    ("POST", "/internal/v1/action-links"): Case(API_INTERNAL, body=_none),
    ("POST", "/internal/v1/leases/claim"): Case(API_INTERNAL, body=_none),
    ("POST", "/internal/v1/leases/outcomes"): Case(API_INTERNAL, body=_none),
    ("POST", "/internal/v1/leases/warned"): Case(API_INTERNAL, body=_none),
    ("POST", "/internal/v1/leases/defer"): Case(API_INTERNAL, body=_none),
    ("POST", "/internal/v1/notifications/reserve"): Case(API_INTERNAL, body=_none),
    ("POST", "/internal/v1/notifications/sent"): Case(API_INTERNAL, body=_none),
    ("POST", "/internal/v1/notifications/recipients"): Case(API_INTERNAL, body=_none),
    ("POST", "/internal/v1/people-links"): Case(API_INTERNAL, body=_none),
    ("POST", "/internal/v1/sweeps/{sweep_id}/report"): Case(API_INTERNAL, body=_none),
    # Pages anyone may open; links whose token is the credential.
    ("GET", "/"): Case(("303", "ok", "ok", "ok", "303")),  # to /login, or to the person's start page
    ("GET", "/login"): Case(OPEN),
    # GitHub sign-in is not configured in this api: starting one says so (503), for anyone.
    ("POST", "/login/github"): Case(("503", "503", "503", "503", "503"), form=lambda w: {}),
    # Sign-in is not configured in this api: its callback says so too, for anyone.
    ("GET", "/auth/github/callback"): Case(("503", "503", "503", "503", "503")),
    ("POST", "/logout"): Case(("login", "303", "303", "303", "login"), form=lambda w: {}),
    ("GET", "/a/{token}"): Case(BY_TOKEN),
    ("POST", "/a/{token}"): Case(BY_TOKEN, form=lambda w: {}),
    ("GET", "/invitations/{token}"): Case(BY_TOKEN),
    ("GET", "/confirm-email/{token}"): Case(BY_TOKEN),
    ("POST", "/confirm-email/{token}"): Case(BY_TOKEN, form=lambda w: {}),
    # The sandbox's mailbox exists only in the sandbox.
    ("GET", "/mailbox"): Case(BY_TOKEN),
    ("GET", "/mailbox/{name}"): Case(BY_TOKEN),
    ("GET", "/mailbox/{name}/html"): Case(BY_TOKEN),
    # A person's pages.
    ("GET", "/leases"): Case(PAGE_ANY_PERSON),
    ("GET", "/leases/{lease_id}"): Case(PAGE_OWN_LEASE),
    ("POST", "/leases/{lease_id}/renew"): Case(PAGE_OWN_LEASE, form=lambda w: {"extend": "3600"}),
    ("GET", "/leases/{lease_id}/shutdown"): Case(PAGE_OWN_LEASE),
    ("POST", "/leases/{lease_id}/shutdown"): Case(PAGE_OWN_LEASE, form=lambda w: {}),
    ("GET", "/tokens"): Case(PAGE_ANY_PERSON),
    ("POST", "/tokens"): Case(PAGE_ANY_PERSON, form=lambda w: {"name": "laptop"}),
    # token_id is admin_a's spare token: nobody else's page can revoke it.
    ("POST", "/tokens/{token_id}/revoke"): Case(("login", "404", "ok", "404", "login"), form=lambda w: {}),
    # Admin pages.
    ("GET", "/summary"): Case(PAGE_ADMIN),
    ("GET", "/audit"): Case(PAGE_ADMIN),
    ("GET", "/policy"): Case(PAGE_ADMIN),
    ("POST", "/policy"): Case(PAGE_ADMIN, form=lambda w: _policy_form()),
    ("GET", "/users"): Case(PAGE_ADMIN),
    ("POST", "/users/invitations"): Case(
        PAGE_ADMIN, form=lambda w: {"email": f"page-{secrets.token_hex(3)}@example.com", "role": "dev"}
    ),
    ("POST", "/users/invitations/{invitation_id}/revoke"): Case(PAGE_ADMIN_OF_A, form=lambda w: {}),
    ("GET", "/users/{user_id}"): Case(PAGE_ADMIN_OF_A),
    ("POST", "/users/{user_id}/role"): Case(PAGE_ADMIN_OF_A, form=lambda w: {"role": "dev"}),
    ("POST", "/users/{user_id}/policy"): Case(PAGE_ADMIN_OF_A, form=lambda w: {"max_instances": "5"}),
    ("POST", "/users/{user_id}/remove"): Case(PAGE_ADMIN_OF_A, form=lambda w: {"confirm": "yes"}),
    ("GET", "/cloud-accounts"): Case(PAGE_ADMIN),
    ("GET", "/cloud-accounts/new"): Case(PAGE_ADMIN),
    ("POST", "/cloud-accounts/new"): Case(PAGE_ADMIN, form=lambda w: _cloud_form()),
    ("GET", "/cloud-accounts/{cloud_account_id}"): Case(PAGE_ADMIN_OF_A),
    ("GET", "/cloud-accounts/{cloud_account_id}/template.yaml"): Case(PAGE_ADMIN_OF_A),
    ("POST", "/cloud-accounts/{cloud_account_id}/verify"): Case(PAGE_ADMIN_OF_A, form=lambda w: {}),
    ("POST", "/cloud-accounts/{cloud_account_id}/mode"): Case(PAGE_ADMIN_OF_A, form=lambda w: {"mode": "observe"}),
    ("POST", "/cloud-accounts/{cloud_account_id}/remove"): Case(PAGE_ADMIN_OF_A, form=lambda w: {"confirm": "yes"}),
}


def _upstream() -> str:
    return "".join(secrets.choice("0123456789") for _ in range(12))


def _cloud_body() -> dict[str, Any]:
    upstream = _upstream()
    return {"name": f"acct {upstream}", "upstream_account_id": upstream,
            "assume_role_arn": f"arn:aws:iam::{upstream}:role/ZeroCloud"}


def _cloud_form() -> dict[str, str]:
    body = _cloud_body()
    return {"name": body["name"], "upstream_account_id": body["upstream_account_id"],
            "role_arn": body["assume_role_arn"], "regions": "us-east-1"}


def _policy_form() -> dict[str, str]:
    return {
        "default_lease": "2", "default_lease_unit": "hours", "max_lease": "2", "max_lease_unit": "days",
        "owner_tag": "owner", "action_on_expiry": "stop", "over_quota_grace": "1", "over_quota_grace_unit": "hours",
        "warning_times": "1h", "blast_radius_percent": "50", "blast_radius_per_hour": "100",
        "allowed_email_patterns": "*@example.com",
    }


def declared_routes(api: Api) -> set[tuple[str, str]]:
    routes: set[tuple[str, str]] = set()
    for context in iter_route_contexts([*api.app.routes, *api.internal_app.routes]):
        path = context.path
        methods = getattr(context, "methods", None)
        if path is None or not methods:
            continue  # a mount (/static): files, no authorization
        routes.update((method, path) for method in methods if method != "HEAD")
    return routes


def test_every_route_has_an_entry(api: Api) -> None:
    routes = declared_routes(api)
    missing = sorted(routes - MATRIX.keys())
    stale = sorted(MATRIX.keys() - routes)
    assert not missing, f"routes with no authorization entry (add them to MATRIX): {missing}"
    assert not stale, f"entries for routes that no longer exist: {stale}"


async def _world(api: Api) -> World:
    a, b = await make_tenant(api), await make_tenant(api)
    cloud = await make_cloud_account(api, a)
    resource_id, lease_id = await make_lease(api, cloud, a.dev)
    spare = await api.client.post("/api/v1/tokens", json={"name": "spare"}, headers=a.admin.headers)
    invitation = await api.client.post(
        f"/api/v1/accounts/{a.account_id}/invitations", json={"email": "invitee@example.com", "role": "dev"},
        headers=a.admin.headers,
    )
    sweep = await api.client.post(
        "/api/v1/sweeps", json={"cloud_account_id": cloud["id"]}, headers=a.admin.headers
    )
    assert spare.status_code == 201 and invitation.status_code == 201, (spare.text, invitation.text)
    assert sweep.status_code == 202, sweep.text
    ids = {
        "account_id": a.account_id, "cloud_account_id": cloud["id"], "lease_id": lease_id,
        "resource_id": resource_id, "user_id": a.dev.user_id, "token_id": spare.json()["id"],
        "invitation_id": invitation.json()["id"], "sweep_id": sweep.json()["data"][0]["id"],
    }
    return World(a=a, b=b, ids=ids)


def _fill(path: str, world: World) -> str:
    values: dict[str, Any] = {**world.ids, "token": "zc_forged" + "x" * 30, "name": "nothing.eml"}
    return path.format(**values)


def _outcome(response: httpx.Response) -> str:
    status = response.status_code
    if status in (302, 303, 307) and response.headers.get("location", "").startswith("/login?next="):
        return "login"
    return str(status)


def _matches(expected: str, response: httpx.Response) -> bool:
    got = _outcome(response)
    if expected == "ok":
        return got != "login" and response.status_code < 400
    if expected == "in":
        return response.status_code not in DENIALS and response.status_code < 500
    return got == expected


async def _call(
    method: str, path: str, case: Case, world: World, *, api: Api, caller: str, pages: dict[str, PageClient]
) -> httpx.Response:
    if path == "/metrics":
        return await api.internal.request(method, path)
    is_page = not path.startswith(("/api/", "/internal/"))
    if is_page:
        browser = pages.get(caller)
        http = browser.http if browser else api.client
        data = case.form(world) if case.form else None
        if data is not None and browser is not None:
            data = {**data, "csrf_token": browser.csrf_token}
        return await http.request(method, path, data=data, follow_redirects=False)
    headers = {}
    internal = path.startswith("/internal/")
    token = {"dev_a": world.a.dev.token, "admin_a": world.a.admin.token, "admin_b": world.b.admin.token,
             "service": SERVICE_TOKENS[_service_of(path)] if internal else SERVICE_TOKENS["reaper"]}.get(caller)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = case.body(world) if case.body else None
    return await (api.internal if internal else api.client).request(method, path, json=body, headers=headers)


def _service_of(path: str) -> str:
    """The service whose work an internal route is."""
    if path in ("/internal/v1/leases/warned", "/internal/v1/leases/defer"):
        return "notifier"  # what a warning came to is the notifier's to report
    if path.startswith("/internal/v1/leases/"):
        return "reaper"
    return "ingestor" if path.startswith(("/internal/v1/cloudaccounts", "/internal/v1/sweeps")) else "notifier"


# The callers who are refused go first, so an allowed call cannot change what they see.
def _order(case: Case) -> list[int]:
    return sorted(range(len(CALLERS)), key=lambda i: case.profile[i] in ("ok", "in"))


async def test_each_caller_gets_exactly_what_the_matrix_says(api: Api, page_client: PageClientFactory) -> None:
    failures: list[str] = []
    for (method, template), case in sorted(MATRIX.items(), key=lambda item: item[0][1]):
        world = await _world(api)  # fresh objects per route: one route's change cannot hide another's
        pages = {
            "dev_a": await page_client(world.a.dev), "admin_a": await page_client(world.a.admin),
            "admin_b": await page_client(world.b.admin),
        }
        path = _fill(template, world)
        for index in _order(case):
            caller, expected = CALLERS[index], case.profile[index]
            response = await _call(method, path, case, world, api=api, caller=caller, pages=pages)
            if not _matches(expected, response):
                failures.append(f"{method} {template} as {caller}: expected {expected}, got {_outcome(response)}")
    assert not failures, "\n".join(failures)


async def test_no_page_form_is_accepted_without_its_csrf_token(api: Api, page_client: PageClientFactory) -> None:
    """Every form a signed-in person can post, posted by the admin of A without the token:
    refused with 403 and nothing changed (the audit log stays as it was)."""
    signed_in_forms = [
        (method, path) for (method, path), case in MATRIX.items()
        if method == "POST" and case.form is not None and case.profile[2] == "ok" and not path.startswith("/a/")
        and path not in ("/confirm-email/{token}", "/login/github")
    ]
    assert len(signed_in_forms) >= 10, signed_in_forms
    world = await _world(api)
    admin = await page_client(world.a.admin)
    before = await _audit_count(api, world.a)
    refused = []
    for method, template in signed_in_forms:
        case = MATRIX[(method, template)]
        assert case.form is not None
        response = await admin.post(_fill(template, world), case.form(world), csrf=False)
        wrong = await admin.post(_fill(template, world), {**case.form(world), "csrf_token": "forged"}, csrf=False)
        refused.append((template, response.status_code, wrong.status_code))
    assert all(status == 403 and wrong == 403 for _, status, wrong in refused), refused
    assert await _audit_count(api, world.a) == before
    # The session itself still works: refusing a forged form does not sign the person out.
    assert (await admin.get("/leases")).status_code == 200


async def _audit_count(api: Api, tenant: Tenant) -> int:
    response = await api.client.get("/api/v1/audit-events", params={"limit": 1}, headers=tenant.admin.headers)
    assert response.status_code == 200, response.text
    count: int = response.json()["count"]
    return count


async def test_a_developer_of_another_account_sees_nothing_of_a(api: Api, page_client: PageClientFactory) -> None:
    """The matrix's callers are A's people and B's admin; B's developer reaches none of A's
    objects either, on the API or the pages."""
    world = await _world(api)
    outsider: Caller = await make_user_token(api, world.b.account_id)
    browser = await page_client(outsider)
    for path in ("/api/v1/leases/{lease_id}", "/api/v1/cloudaccounts/{cloud_account_id}",
                 "/api/v1/users/{user_id}", "/api/v1/resources/{resource_id}"):
        response = await api.client.get(_fill(path, world), headers=outsider.headers)
        assert response.status_code == 404, (path, response.status_code)
    for path in ("/leases/{lease_id}", "/leases/{lease_id}/shutdown"):
        response = await browser.get(_fill(path, world))
        assert response.status_code == 404, (path, response.status_code)
    listing = await api.client.get("/api/v1/leases", headers=outsider.headers)
    assert listing.json()["count"] == 0
