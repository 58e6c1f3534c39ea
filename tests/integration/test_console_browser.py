"""The web console in headless Chromium (Debian's `chromium`, driven by Playwright): sign
in, place an order and see it fill and the equity move, cancel a resting order, download
the operation log, see none of another user's data, a wrong token refused. Screenshots at
desktop and phone size go to test-artifacts/.

Without a Chromium these tests are skipped, unless REQUIRE_BROWSER_TESTS is set
(.ci/run sets it and installs Debian's chromium)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import fresh_name
from tests.harness import ROOT, Server

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or ""
# As the machine's notes advise for a closed network: nothing of Chromium's own calls home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

if not CHROMIUM and not os.environ.get("REQUIRE_BROWSER_TESTS"):
    pytest.skip("no chromium here (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server(wait_server: Server) -> Server:
    """Wait mode (conftest): a buy far below the market rests, one above it fills."""
    return wait_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM, "REQUIRE_BROWSER_TESTS is set but no chromium was found"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


def sign_in(page: Page, server: Server, token: str) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#trader")).to_be_visible()
    expect(page.locator("#live")).to_have_text("live")


def send_order(page: Page, side: str, qty: str, price: str) -> str:
    """Fill the ticket and send a limit order; the id the page reports."""
    ticket = page.locator("#ticket")
    ticket.get_by_label("Side").select_option(side)
    ticket.get_by_label("Type").select_option("limit")
    ticket.get_by_label("Quantity").fill(qty)
    ticket.get_by_label("Limit price").fill(price)
    ticket.get_by_role("button", name="Send order").click()
    message = page.locator("#ticket-message")
    expect(message).to_contain_text("accepted")
    found = re.search(r"Order (\d+) accepted", message.inner_text())
    assert found, message.inner_text()
    return found.group(1)


def market_price(server: Server) -> str:
    return str(server.client(server.demo_token).quote("600000")["last"])


def test_a_trader_signs_in_orders_sees_the_fill_cancels_and_downloads_the_log(
    server: Server, page: Page
) -> None:
    token = server.new_user(fresh_name("webtrader"))
    sign_in(page, server, token)
    assert token not in page.url
    assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly
    equity = page.locator("#account dd[data-field=equity]")
    expect(equity).to_have_text("1000000.00")

    # a buy above the market fills on the next trade; the page learns it from the stream
    last = market_price(server)
    filled_id = send_order(page, "buy", "100", f"{float(last) * 1.2:.2f}")
    fills = page.locator("#fills tbody")
    expect(fills).to_contain_text(filled_id)
    expect(page.locator("#positions tbody")).to_contain_text("600000")

    def field(name: str) -> Locator:
        return page.locator(f"#account dd[data-field={name}]")

    expect(field("fees_paid")).to_have_text(re.compile(r"^[1-9]\d*\.\d\d \+ tax 0\.00$"))
    expect(field("cash")).not_to_have_text("1000000.00")
    # the equity moved with the fee and the mark, and is cash plus the position's value
    cash, value = Decimal(field("cash").inner_text()), Decimal(field("market_value").inner_text())
    assert Decimal(equity.inner_text()) == cash + value
    assert cash < Decimal("1000000.00")

    # a buy far below rests; cancel it from the open orders
    resting_id = send_order(page, "buy", "100", "1.00")
    row = page.locator(f"#orders tbody tr[data-order-id='{resting_id}']")
    expect(row).to_be_visible()
    page.get_by_role("button", name=f"Cancel order {resting_id}").click()
    expect(row).to_have_count(0)
    expect(page.locator("#history tbody")).to_contain_text("order.canceled")

    # client-side checks say what is wrong before anything is sent
    page.locator("#ticket").get_by_label("Quantity").fill("150")
    page.locator("#ticket").get_by_role("button", name="Send order").click()
    expect(page.locator("#ticket-message")).to_contain_text("multiple of 100")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the whole log as CSV").click()
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.startswith("seq,time,kind,order_id,symbol")
    assert f",order.canceled,{resting_id}," in csv_text

    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "console-desktop.png"), full_page=False)
    page.set_viewport_size(PHONE)
    expect(page.locator("#ticket")).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "console-phone.png"), full_page=False)


def test_another_user_sees_none_of_the_first_users_data(server: Server, page: Page) -> None:
    first = server.new_user(fresh_name("first"))
    sign_in(page, server, first)
    resting_id = send_order(page, "buy", "100", "1.00")
    expect(page.locator(f"#orders tbody tr[data-order-id='{resting_id}']")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in")).to_be_visible()

    sign_in(page, server, server.new_user(fresh_name("second")))
    expect(page.locator("#orders tbody")).to_have_text("Nothing yet.")
    expect(page.locator("#fills tbody")).to_have_text("Nothing yet.")
    expect(page.locator("#history tbody")).to_have_text("Nothing yet.")
    # and asking for the first user's order by id is refused like an unknown one
    reply = page.evaluate("async (id) => (await fetch('/v1/orders/' + id)).status", int(resting_id))
    assert reply == 404


def test_a_wrong_token_is_refused(server: Server, page: Page) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Token").fill("not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is not valid.")
    expect(page.locator("#trader")).to_be_hidden()
    status = page.evaluate("async () => (await fetch('/v1/account')).status")
    assert status == 401
