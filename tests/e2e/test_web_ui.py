"""The web UI in a real Chromium (Playwright, the system's /usr/bin/chromium): an admin signs
in through the fake GitHub, onboards an AWS account (moto) and sees its external ID,
verifies it, switches it to enforce and sets the policy; a developer joins by the allowed
email pattern, confirms their address, sees the leases of the instances they launched,
renews one (the page shows the new end) and shuts another down (the page says so).

Every page is screenshotted to test-artifacts/web-ui/<step>.png (and /leases at 375 px
too), so a person can look at what the test saw."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from zc_common.bus.memory import InProcessBus
from zc_common.cloudevents import state_change_event
from zc_common.settings import ApiSettings, IngestorSettings

from tests.e2e.conftest import eventually
from tests.support.aws_doubles import CustomerAccount, deploy_stack
from tests.support.credentials import API_CREDENTIALS, INGESTOR_TOKEN, bearer
from tests.support.fake_github import running_fake_github
from tests.support.ports import free_port
from tests.support.serving import serving_api
from zc_cli.fake_github import FakeIdentity
from zc_ingestor.main import wired

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web-ui"
CUSTOMER = "111111111111"
REGION = "us-east-1"
ADA = FakeIdentity(login="ada", email="ada@bigdb.com", name="Ada Admin")
DAN = FakeIdentity(login="dan-dev", email="dan@bigdb.com", name="Dan Developer")

# What sticks out of the window sideways (the page would scroll or cut it off).
FITS_THE_WIDTH = """
[...document.querySelectorAll('main a, main button, main select, main input, main td, main p, main h1, main label')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .map(e => e.tagName + ': ' + e.textContent.trim().slice(0, 40))
"""

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"needs Chromium at {CHROMIUM}")


@dataclass
class WebStack:
    api_url: str
    internal_url: str
    moto_url: str


@contextlib.asynccontextmanager
async def web_stack(database_url: str, moto_url: str) -> AsyncIterator[WebStack]:
    """The api served over HTTP with GitHub sign-in sent to the fake GitHub, and an ingestor
    on the same in-process bus (events POSTed to the api are followed in moto)."""
    async with running_fake_github([ADA, DAN]) as github:
        port = free_port()
        api_url = f"http://127.0.0.1:{port}"
        common: dict[str, Any] = {"amqp_url": "memory://", "bus": "memory", "aws_endpoint_url": moto_url}
        settings = ApiSettings(
            **common, database_url=database_url, **API_CREDENTIALS, public_url=api_url,
            http_port=port, internal_port=free_port(), aws_max_attempts=2, **github.api_settings(),
        )
        bus = InProcessBus()
        try:
            async with serving_api(settings, bus=bus) as served:
                ingestor = IngestorSettings(
                    **common, api_url=served.internal_url, service_token=INGESTOR_TOKEN, account_cache_seconds=0
                )
                async with wired(ingestor, bus=bus):
                    yield WebStack(api_url=api_url, internal_url=served.internal_url, moto_url=moto_url)
        finally:
            await bus.close()


class Screens:
    """Screenshots named by step, and every console error a page logged: a refused script or
    style (CSP), a broken page. Pages answered with an error status on purpose (a form
    refused with 422, a 403) log "Failed to load resource", which is not one."""

    def __init__(self) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.errors: list[str] = []

    def watch(self, page: Page) -> Page:
        page.on("console", lambda message: self.errors.append(message.text)
                if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    async def shot(self, page: Page, step: str) -> None:
        await page.screenshot(path=str(SHOTS / f"{step}.png"), full_page=True)


async def sign_in(page: Page, stack: WebStack, who: FakeIdentity) -> None:
    """The whole round trip a person makes: ZeroCloud's sign-in page, GitHub (the fake), back."""
    await page.goto(f"{stack.api_url}/login")
    await page.get_by_role("button", name="Sign in with GitHub").click()
    await page.get_by_role("button", name=f"{who.login} ({who.email})").click()
    await page.wait_for_url(re.compile(re.escape(stack.api_url) + r"/(summary|leases)"))


async def lease_of(http: httpx.AsyncClient, instance_id: str) -> dict[str, Any] | None:
    answer = await http.get("/api/v1/leases", params={"instance_id": instance_id, "status": "active"})
    answer.raise_for_status()
    data = answer.json()["data"]
    return data[0] if data else None


async def test_admin_onboards_and_a_developer_renews_and_shuts_down(clean_database: str, moto: str) -> None:
    screens = Screens()
    async with web_stack(clean_database, moto) as stack, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            token = await admin_sets_up(browser, stack, screens)
            async with httpx.AsyncClient(base_url=stack.api_url, headers={"Authorization": f"Bearer {token}"},
                                         timeout=30) as admin_api:
                await developer_works(browser, stack, screens, admin_api)
        finally:
            await browser.close()
    assert screens.errors == [], f"the pages logged errors: {screens.errors}"


async def admin_sets_up(browser: Browser, stack: WebStack, screens: Screens) -> str:
    """The admin's part; answers an API token the admin made on the tokens page."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = screens.watch(await context.new_page())
    await page.goto(f"{stack.api_url}/leases")
    await expect(page).to_have_url(re.compile(r"/login\?next=/leases"))
    await screens.shot(page, "01-sign-in")

    await sign_in(page, stack, ADA)  # the first person: admin of a new account
    await expect(page.get_by_role("heading", name="Summary")).to_be_visible()
    await screens.shot(page, "02-summary-empty")

    # Onboard the AWS account: a mistake first, said next to its field, what was typed kept.
    await page.get_by_role("link", name="Cloud accounts").click()
    await page.get_by_role("link", name="Onboard an AWS account").click()
    await page.get_by_label("Name", exact=True).fill("prod")
    await page.get_by_label("AWS account id").fill("1234")
    await page.get_by_label("Regions").fill("us-east-1")
    await page.get_by_role("button", name="Register the AWS account").click()
    await expect(page.locator("#e-upstream_account_id")).to_be_visible()
    await expect(page.get_by_label("Name", exact=True)).to_have_value("prod")
    await screens.shot(page, "03-onboard-invalid")
    await page.get_by_label("AWS account id").fill(CUSTOMER)
    await page.get_by_role("button", name="Register the AWS account").click()
    await expect(page.locator(".notice")).to_contain_text("The AWS account is registered")
    external_id = (await page.locator("#external-id").inner_text()).strip()
    assert external_id.startswith("zc-") and len(external_id) > 20
    await screens.shot(page, "04-cloud-account-external-id")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download the CloudFormation template").click()
    template = await asyncio.to_thread(Path(await (await download_info.value).path()).read_text)
    assert f'Default: "{external_id}"' in template and "ZeroCloudAccountId" in template

    # The customer creates the stack (in moto, through the role): verify finds its topic.
    role_arn = (await page.locator(".facts code").first.inner_text()).strip()
    await deploy_stack(stack.moto_url, {"assume_role_arn": role_arn, "external_id": external_id}, REGION)
    await page.get_by_role("button", name="Verify the AWS account").click()
    await expect(page.locator(".verdict")).to_have_text("All checks passed: ZeroCloud can work in this AWS account.")
    # assume_role, caller_identity, describe_instances and events_topic in the one region, claim
    await expect(page.locator("ul.checks li")).to_have_count(5)
    await expect(page.locator("ul.checks li").nth(3)).to_contain_text("events_topic:us-east-1")
    await screens.shot(page, "05-verified")
    await page.get_by_role("button", name="Switch to enforce").click()
    await expect(page.locator(".notice")).to_contain_text("Enforce mode is on")
    await screens.shot(page, "06-enforce")

    # The policy: developers of bigdb.com may join; a wrong value first.
    await page.get_by_role("link", name="Policy").click()
    await page.get_by_label("Allowed email patterns").fill("*@bigdb.com")
    await page.get_by_label("Maximum lease", exact=True).fill("ten")
    await page.get_by_role("button", name="Save the policy").click()
    await expect(page.locator("#e-max_lease")).to_contain_text("whole number")
    await expect(page.get_by_label("Allowed email patterns")).to_have_value("*@bigdb.com")
    await screens.shot(page, "07-policy-invalid")
    await page.get_by_label("Maximum lease", exact=True).fill("8")
    await page.get_by_label("Default lease", exact=True).fill("2")
    await page.get_by_role("button", name="Save the policy").click()
    await expect(page.locator(".notice")).to_contain_text("The policy was saved")
    await screens.shot(page, "08-policy-saved")

    # An API token, shown once: the test posts the cloud events with it.
    await page.get_by_role("link", name="API tokens").click()
    await page.get_by_label("Name").fill("events")
    await page.get_by_role("button", name="Create the token").click()
    token = await page.locator("#token").input_value()
    assert token.startswith("zc_")
    await expect(page.locator("pre.command")).to_contain_text(f"zerocloud-cli login --api-url {stack.api_url} --token {token}")
    await screens.shot(page, "09-token-created")
    await context.close()
    return token


async def developer_works(browser: Browser, stack: WebStack, screens: Screens, admin_api: httpx.AsyncClient) -> None:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = screens.watch(await context.new_page())
    await sign_in(page, stack, DAN)  # joins by the allowed email pattern
    await expect(page.get_by_role("heading", name="My leases")).to_be_visible()
    await expect(page.get_by_role("note")).to_contain_text("Confirm your address dan@bigdb.com")
    await screens.shot(page, "10-dev-unconfirmed")
    await confirm_address(page, stack, screens, admin_api)

    # Two instances launched with Dan's owner tag; EventBridge's events posted to ZeroCloud.
    customer = CustomerAccount(stack.moto_url, account_id=CUSTOMER)
    [build] = await customer.launch(tags={"owner": DAN.email or "", "Name": "build-box"}, instance_type="t3.micro")
    [spare] = await customer.launch(tags={"owner": DAN.email or "", "Name": "spare-box"}, instance_type="m5.large")
    for instance in (build, spare):
        event = state_change_event(account_id=CUSTOMER, region=REGION, instance_id=instance, state="running")
        assert (await admin_api.post("/api/v1/cloudevents", json=event)).status_code == 202
    leases = {i: await eventually(lambda i=i: lease_of(admin_api, i), timeout=20) for i in (build, spare)}
    assert {lease["owner_email"] for lease in leases.values()} == {DAN.email}

    await page.goto(f"{stack.api_url}/leases")
    await expect(page.get_by_role("link", name=f"build-box ({build})", exact=True)).to_be_visible()
    await expect(page.get_by_role("link", name=f"spare-box ({spare})", exact=True)).to_be_visible()
    await expect(page.locator("tbody tr").first).to_contain_text("in 2 days")
    await screens.shot(page, "12-dev-leases")
    phone = screens.watch(await context.new_page())
    await phone.set_viewport_size({"width": 375, "height": 812})
    await phone.goto(f"{stack.api_url}/leases")
    assert await phone.evaluate(FITS_THE_WIDTH) == [], "parts of /leases stick out at 375 px"
    await screens.shot(phone, "13-dev-leases-375px")
    await phone.close()

    # Renew build-box by a day, with the keyboard only.
    build_id = leases[build]["id"]
    renew = page.locator(f"#renew-{build_id}")
    await renew.focus()
    await renew.select_option("86400")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name=f"Renew build-box ({build})")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator(".notice")).to_contain_text("Renewed build-box")
    renewed = await lease_of(admin_api, build)
    assert renewed is not None and renewed["version"] == 2
    new_end = datetime.fromisoformat(str(renewed["expires_at"]))
    await expect(page.locator(".notice")).to_have_text(re.compile(
        rf"^Renewed build-box \({build}\) until {new_end:%Y-%m-%d %H:%M} UTC \(in 3 days\)\.$"))
    await screens.shot(page, "14-renewed")

    # Past the maximum lease: the page says the maximum and keeps the choice.
    await page.locator(f"#renew-{build_id}").select_option(str(7 * 86400))
    await page.get_by_role("button", name=f"Renew build-box ({build})").click()
    await expect(page.locator(".problem")).to_have_text("The lease was not renewed: see why under Renew.")
    await expect(page.locator("#e-extend")).to_contain_text("You asked for 7 days more, but a lease can run at most 8 days")
    await expect(page.get_by_label("Renew by")).to_have_value(str(7 * 86400))
    await screens.shot(page, "15-renew-past-the-max")

    # Shut spare-box down: a confirmation page, then the result.
    await page.goto(f"{stack.api_url}/leases")
    await page.get_by_role("link", name=f"Shut down… spare-box ({spare})").click()
    await expect(page.get_by_role("heading")).to_have_text("Shut down spare-box now?")
    await screens.shot(page, "16-shutdown-confirm")
    await page.get_by_role("button", name="Shut down now (stop)").click()
    await expect(page.locator(".notice")).to_have_text(
        f"Shutting down spare-box ({spare}): the lease has ended and the instance will be stopped within moments.")
    await screens.shot(page, "17-shut-down")
    shut = (await admin_api.get(f"/api/v1/leases/{leases[spare]['id']}")).json()
    assert shut["status"] == "expired" and shut["version"] == 2

    await page.get_by_role("link", name=f"build-box ({build})", exact=True).click()
    await expect(page.locator("table")).to_contain_text("lease.renewed")
    await screens.shot(page, "18-lease-detail")
    forbidden = await page.goto(f"{stack.api_url}/summary")
    assert forbidden is not None and forbidden.status == 403
    await screens.shot(page, "19-dev-forbidden")
    await context.close()
    await admin_looks_around(browser, stack, screens)


async def confirm_address(page: Page, stack: WebStack, screens: Screens, admin_api: httpx.AsyncClient) -> None:
    """Follow the confirmation link ZeroCloud mails (minted here as the notifier would)."""
    account_id = (await admin_api.get("/api/v1/users/me")).json()["account_id"]
    people = (await admin_api.get(f"/api/v1/accounts/{account_id}/users")).json()["data"]
    [dan] = [person for person in people if person["email"] == DAN.email]
    async with httpx.AsyncClient(base_url=stack.internal_url, headers=bearer("notifier")) as service:
        minted = await service.post("/internal/v1/people-links", json={"kind": "email_confirmation", "id": dan["id"]})
    assert minted.status_code == 200, minted.text
    await page.goto(minted.json()["url"])
    await screens.shot(page, "11-confirm-address")
    await page.get_by_role("button", name=f"Confirm {DAN.email}").click()
    await expect(page.get_by_role("status")).to_be_visible()


async def admin_looks_around(browser: Browser, stack: WebStack, screens: Screens) -> None:
    context: BrowserContext = await browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = screens.watch(await context.new_page())
    await sign_in(page, stack, ADA)
    await expect(page.locator("figure.chart svg rect").first).to_be_visible()
    await screens.shot(page, "20-summary")
    await page.get_by_role("link", name="Leases", exact=True).click()
    await page.get_by_label("Owner").select_option(DAN.email or "")
    await page.get_by_label("State").select_option("")
    await page.get_by_role("button", name="Show").click()
    await expect(page.locator("tbody tr")).to_have_count(2)
    await screens.shot(page, "21-admin-leases")
    await page.get_by_role("link", name="People").click()
    await expect(page.locator("table").first).to_contain_text(DAN.email or "")
    await screens.shot(page, "22-people")
    await page.get_by_role("link", name="Audit log").click()
    await expect(page.locator("table")).to_contain_text("lease.shutdown_requested")
    await screens.shot(page, "23-audit")
    await context.close()
