"""The web console in headless Chromium (Debian's `chromium`, driven by Playwright): sign
in, place an order and see it fill and the equity move, cancel a resting order, download
the operation log, reset the account after confirming, see none of another user's data,
a wrong token refused; the price and equity charts drawn and moved by the market stream;
the operator (admin token) pausing and resuming while a trader's page sees it live,
creating a user whose token signs in, reading a backtest report; a trader without the
operator view. Screenshots at desktop and phone size go to test-artifacts/.

Without a Chromium these tests are skipped, unless REQUIRE_BROWSER_TESTS is set
(.ci/run sets it and installs Debian's chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from backtest.runner import RUNS_FOLDER
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
EXPECT_TIMEOUT_MS = 20_000  # the test machine is slow: pages take seconds to fill
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

if not CHROMIUM and not os.environ.get("REQUIRE_BROWSER_TESTS"):
    pytest.skip("no chromium here (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import (  # noqa: E402
    Browser,
    ConsoleMessage,
    Locator,
    Page,
    Request,
    expect,
    sync_playwright,
)

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


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
    """A desktop-sized page; the test fails if the page throws or breaks its CSP."""
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    page = watched(context.new_page())
    yield page
    context.close()
    assert not page_problems(page)


def watched(page: Page) -> Page:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error.stack or error}"))
    page.set_default_timeout(EXPECT_TIMEOUT_MS)
    _PROBLEMS[page] = problems
    return page


_PROBLEMS: dict[Page, list[str]] = {}


def page_problems(page: Page) -> list[str]:
    return _PROBLEMS.pop(page, [])


@pytest.fixture
def second_page(browser: Browser) -> Iterator[Page]:
    """Another browser, with its own cookies: a second user at the same time."""
    context = browser.new_context(viewport=DESKTOP)
    page = watched(context.new_page())
    yield page
    context.close()
    assert not page_problems(page)


def sign_in(page: Page, server: Server, token: str) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Token", exact=True).fill(token)
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


def account_fields(page: Page, *names: str) -> list[str]:
    """The account's figures at one moment: the equity moves with every quote."""
    return list(
        page.evaluate(
            "(names) => names.map((n) => document.querySelector(`#account dd[data-field=${n}]`)"
            ".textContent)",
            list(names),
        )
    )


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
    cash, value, equity_now = map(Decimal, account_fields(page, "cash", "market_value", "equity"))
    assert equity_now == cash + value
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


def test_a_trader_resets_the_account_after_confirming_and_the_history_stays(
    server: Server, page: Page
) -> None:
    token = server.new_user(fresh_name("resetter"))
    sign_in(page, server, token)
    filled_id = send_order(page, "buy", "100", f"{float(market_price(server)) * 1.2:.2f}")
    expect(page.locator("#positions tbody")).to_contain_text("600000")
    resting_id = send_order(page, "buy", "100", "1.00")
    expect(page.locator(f"#orders tbody tr[data-order-id='{resting_id}']")).to_be_visible()

    page.get_by_role("button", name="Reset account…").click()  # asks first
    confirm = page.locator("#reset-confirm")
    expect(confirm).to_be_visible()
    expect(confirm.get_by_label("Starting cash")).to_have_value("1000000.00")
    page.get_by_role("button", name="Keep it as is").click()
    expect(confirm).to_be_hidden()
    assert server.client(token).account()["epoch"] == 0

    page.get_by_role("button", name="Reset account…").click()
    confirm.get_by_label("Starting cash").fill("250000")
    page.get_by_role("button", name="Yes, reset the account").click()
    expect(page.locator("#reset-message")).to_have_text(
        "Account reset with 250000.00; orders canceled: 1; written off: 100 600000."
    )
    expect(page.locator("#account dd[data-field=equity]")).to_have_text("250000.00")
    expect(page.locator("#account dd[data-field=since]")).to_contain_text("epoch 1")
    expect(page.locator("#orders tbody")).to_have_text("Nothing yet.")
    expect(page.locator("#positions tbody")).to_have_text("Nothing yet.")
    expect(page.locator("#fills tbody")).to_contain_text(filled_id)  # history stays readable
    expect(page.locator("#history tbody")).to_contain_text("account.reset")
    expect(page.locator("#equity-summary")).to_have_text(re.compile(r"^Equity 250000\.00,"))


def test_pages_read_of_fills_and_the_log_stay_when_a_new_fill_arrives(
    server: Server, page: Page
) -> None:
    token = server.new_user(fresh_name("pager"), "10000000")
    client = server.client(token)
    for _ in range(55):  # marketable: each fills, with two or more log entries
        client.place_order("600000", "buy", 100, "20.00")
    deadline = time.monotonic() + 60
    while len(client.fills(limit=100)) < 55 and time.monotonic() < deadline:
        time.sleep(0.2)
    sign_in(page, server, token)
    fills, log = page.locator("#fills tbody tr"), page.locator("#history tbody tr")
    expect(fills).to_have_count(50)
    page.get_by_role("button", name="Older fills").click()
    expect(fills).to_have_count(55)
    expect(log).to_have_count(50)
    later = page.get_by_role("button", name="Later entries")
    while later.is_visible():
        shown = log.count()
        later.click()
        expect(log).not_to_have_count(shown)
    entries = log.count()
    assert entries > 100
    new_order = client.place_order("600000", "buy", 100, "20.00")
    # the event brings the new fill on top, the pages read stay, the log grows at its end
    expect(fills).to_have_count(56)
    expect(fills.first.locator("td").nth(1)).to_have_text(str(new_order["id"]))
    expect(log.last.locator("td").nth(3)).to_have_text(str(new_order["id"]))
    assert log.count() > entries


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
    page.get_by_label("Token", exact=True).fill("not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("That token is not valid.")
    expect(page.locator("#trader")).to_be_hidden()
    status = page.evaluate("async () => (await fetch('/v1/account')).status")
    assert status == 401


# CHARTS AND LIVE VALUATION ---------------------------------------------------------------


def chart_points(page: Page, selector: str) -> int:
    return int(page.locator(selector).get_attribute("data-points") or 0)


def wait_for_points(page: Page, selector: str, at_least: int) -> None:
    page.wait_for_function(
        "([selector, n]) => Number(document.querySelector(selector).dataset.points || 0) >= n",
        arg=[selector, at_least],
    )


def wait_for_status(server: Server, token: str, order_id: str, status: str) -> None:
    http = server.http(token)
    deadline = time.monotonic() + 60
    while http.get(f"/v1/orders/{order_id}").json()["status"] != status:
        assert time.monotonic() < deadline, f"order {order_id} not {status}"
        time.sleep(0.2)


def test_the_charts_draw_and_the_equity_moves_with_the_market_stream(
    server: Server, page: Page
) -> None:
    """After the buy has filled nothing private happens: the account is not asked for
    again, yet its equity follows the price of the position, exactly."""
    token = server.new_user(fresh_name("charts"))
    sign_in(page, server, token)
    expect(page.locator("#price-chart canvas").first).to_be_visible()
    expect(page.locator("#equity-chart canvas").first).to_be_visible()
    assert chart_points(page, "#price-chart") >= 1  # seeded from /v1/quotes/600000
    assert chart_points(page, "#equity-chart") >= 1  # the curve of /v1/stats
    wait_for_points(page, "#price-chart", 3)  # a point a second from the stream
    expect(page.locator("#price-summary")).to_contain_text("600000 last")
    expect(page.locator("#market-state")).to_have_text("Market running, session open")

    order_id = send_order(page, "buy", "100", f"{float(market_price(server)) * 1.2:.2f}")
    wait_for_status(server, token, order_id, "filled")
    position = page.locator("#positions tbody tr[data-symbol='600000']")
    expect(position).to_be_visible()
    expect(page.locator("#fills tbody")).to_contain_text(order_id)
    page.wait_for_timeout(1000)  # the last refresh the fill's events asked for is done

    asked: list[str] = []

    def on_request(request: Request) -> None:
        if request.url.endswith(("/v1/account", "/v1/positions")):
            asked.append(request.url)

    page.on("request", on_request)
    equity = page.locator("#account dd[data-field=equity]")
    before = equity.inner_text()
    expect(equity).not_to_have_text(before, timeout=30_000)  # the price moved
    assert asked == []

    shown = page.evaluate(  # at one moment: quotes come every 50 ms
        """() => {
            const cells = document.querySelectorAll("#positions tr[data-symbol='600000'] td");
            const field = (name) => document.querySelector(`#account dd[data-field=${name}]`);
            return [cells[4], cells[5], field("market_value"), field("cash"), field("equity")]
                .map((element) => element.textContent);
        }"""
    )
    last, value, market_value, cash, equity_now = map(Decimal, shown)
    assert value == (100 * last).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert market_value == value
    assert equity_now == cash + value
    points = chart_points(page, "#equity-chart")
    wait_for_points(page, "#equity-chart", points + 1)  # the live equity is plotted too

    page.get_by_label("Chart style").select_option("10")  # candles of 10 s
    expect(page.locator("#price-chart canvas").first).to_be_visible()
    wait_for_points(page, "#price-chart", 1)
    page.get_by_label("Chart symbol").select_option("000001")
    expect(page.locator("#price-summary")).to_contain_text("000001 last")
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#charts-title").locator("xpath=..").screenshot(
        path=str(ARTIFACTS / "console-charts.png")
    )


# OPERATOR VIEW ---------------------------------------------------------------------------


def sign_in_operator(page: Page, server: Server) -> None:
    page.goto(server.url + "/")
    page.get_by_label("Token", exact=True).fill(server.admin_token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#operator")).to_be_visible()
    expect(page.locator("#trader")).to_be_hidden()
    expect(page.locator("#control dd[data-field=state]")).to_have_text("running")


def test_the_operator_pauses_and_resumes_and_a_traders_page_sees_it_live(
    server: Server, page: Page, second_page: Page
) -> None:
    sign_in(second_page, server, server.new_user(fresh_name("watching")))
    trader_state = second_page.locator("#market-state")
    expect(trader_state).to_have_text("Market running, session open")
    sign_in_operator(page, server)
    expect(page.locator("#users tbody")).to_contain_text("admin")
    joiner = fresh_name("joiner")
    server.new_user(joiner)  # over the API: the page learns of it from the admin stream
    expect(page.locator("#users tbody")).to_contain_text(joiner)
    # the processes' health, pushed every second
    expect(page.locator("#processes tbody tr")).to_have_count(4)
    for name in ("controller", "matcher", "accountant", "gateway"):
        row = page.locator(f"#processes tbody tr[data-process={name}]")
        expect(row.locator("td").nth(1)).to_have_text("up")
        expect(row.locator("td").nth(2)).to_have_text(str(server.pid(name)))
    expect(page.locator("#health-live")).to_have_text("live.")
    state = page.locator("#control dd[data-field=state]")
    try:
        page.get_by_role("button", name="Pause", exact=True).click()
        expect(state).to_have_text("paused")
        expect(page.locator("#control dd[data-field=trading]")).to_have_text("no")
        expect(page.get_by_role("button", name="Pause", exact=True)).to_have_attribute(
            "aria-pressed", "true"
        )
        expect(trader_state).to_have_text("Market paused, session open")  # from the stream
        assert server.http(server.admin_token).get("/v1/control").json()["state"] == "paused"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "console-operator-desktop.png"))
    finally:
        page.get_by_role("button", name="Run", exact=True).click()
    expect(state).to_have_text("running")
    expect(trader_state).to_have_text("Market running, session open")
    page.set_viewport_size(PHONE)
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "console-operator-phone.png"))
    # the same page shows the trading view too, from the keyboard
    page.locator("#show-trader").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#trader")).to_be_visible()
    expect(page.locator("#operator")).to_be_hidden()


def test_the_operator_creates_a_user_whose_token_signs_in_without_operator_rights(
    server: Server, page: Page, second_page: Page
) -> None:
    sign_in_operator(page, server)
    name = fresh_name("created")
    form = page.locator("#new-user")
    form.get_by_label("User name").fill(name)
    form.get_by_label("Starting cash").fill("250000")
    form.get_by_role("button", name="Create user").click()
    expect(page.locator("#new-user-message")).to_contain_text(f"User {name}")
    token = page.get_by_label("New user's token, shown only this once").input_value()
    assert len(token) >= 20
    row = page.locator(f"#users tbody tr[data-name='{name}']")
    expect(row).to_contain_text("250000.00")
    expect(row).to_contain_text("trader")

    sign_in(second_page, server, token)
    expect(second_page.locator("#account dd[data-field=equity]")).to_have_text("250000.00")
    expect(second_page.locator("#user-name")).to_have_text(name)
    expect(second_page.locator("#operator")).to_be_hidden()
    expect(second_page.locator("#views")).to_be_hidden()
    statuses = second_page.evaluate(
        """async () => {
            const codes = [];
            for (const path of ["/v1/admin/users", "/v1/backtests"]) {
                const reply = await fetch(path);
                codes.push([reply.status, (await reply.json()).error.code]);
            }
            const headers = {"Content-Type": "application/json", "X-TradeServer-Console": "1"};
            for (const [path, body] of [["/v1/control", {state: "paused"}],
                                        ["/v1/admin/users", {name: "sneaky", cash: "1"}]]) {
                const init = {method: "POST", headers, body: JSON.stringify(body)};
                const reply = await fetch(path, init);
                codes.push([reply.status, (await reply.json()).error.code]);
            }
            return codes;
        }"""
    )
    assert statuses == [[403, "AUTH_NOT_ADMIN"]] * 4
    assert server.http(server.admin_token).get("/v1/control").json()["state"] == "running"


def test_the_operator_reads_a_backtest_report(server: Server, page: Page) -> None:
    """A finished run's folder as `run.py backtest` leaves it (report.json, report.html):
    the gateway only reads these."""
    run_id = "20240102-030405-abcd"
    folder = server.data_dir / RUNS_FOLDER / run_id
    folder.mkdir(parents=True)
    curve = [
        {"time": f"2023-01-0{day}T07:00:00.000000Z", "cash": "1000000.00", "equity": equity}
        for day, equity in ((3, "1000000.00"), (4, "1001500.00"), (5, "999250.50"))
    ]
    metrics = {"initial_cash": "1000000.00", "final_equity": "999250.50",
               "total_return": "-0.000750", "annual_return": "-0.050000",
               "max_drawdown": "0.002247", "sharpe": "-1.234567", "trades": 2, "round_trips": 1,
               "win_rate": "0.000000", "fees": "10.00", "commission": "10.00", "tax": "0.00",
               "turnover": "0.010000"}  # fmt: skip
    report = {"run_id": run_id, "name": "sample-run", "status": "finished", "note": "",
              "start": curve[0]["time"], "end": curve[-1]["time"], "speed": "max", "bars": 6,
              "seconds": 1.5, "metrics": metrics, "fills_digest": "0" * 64,
              "equity_curve": curve, "round_trips": [], "fills": []}  # fmt: skip
    (folder / "report.json").write_text(json.dumps(report))
    (folder / "report.html").write_text("<!doctype html><title>sample-run</title>")

    sign_in_operator(page, server)
    runs = page.locator("#backtests tbody")
    expect(runs).to_contain_text(run_id)
    expect(runs).to_contain_text("999250.50")
    page.get_by_role("button", name=f"View backtest {run_id}").click()
    expect(page.locator("#report-title")).to_have_text("Report of sample-run (finished)")
    expect(page.locator("#report-figures dd[data-field=final_equity]")).to_have_text("999250.50")
    expect(page.locator("#report-figures dd[data-field=sharpe]")).to_have_text("-1.234567")
    expect(page.locator("#report-chart canvas").first).to_be_visible()
    assert chart_points(page, "#report-chart") == 3
    link = page.get_by_role("link", name="The full report (round trips and every fill)")
    assert link.get_attribute("href") == f"/v1/backtests/{run_id}/report.html"
    html = page.evaluate("async (href) => (await fetch(href)).text()", link.get_attribute("href"))
    assert "sample-run" in html


def test_the_api_docs_render_offline_under_their_policy(server: Server, page: Page) -> None:
    """/docs draws every route from files this server serves (no CDN: the page's context
    refuses any other origin) and breaks none of its CSP (the page fixture checks)."""
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1)"), lambda route: route.abort())
    page.goto(server.url + "/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() > 20
    expect(page.locator(".swagger-ui")).to_contain_text("/v1/orders")
