"""The web console's order book and trade tape in headless Chromium, on a server in exchange
mode (docs/protocol.md 9.7): the ladder shows the levels users' orders rest at, with their
quantities, kept live from a snapshot and the numbered depth events; a crossing order
moves the ladder and puts its trades on the tape; a click on a level fills the ticket's
price; a paper-mode symbol shows neither. The book's client algorithm itself is checked
in the page, gaps and resets included. Screenshots at desktop and phone size go to
test-artifacts/ (docs/img/ has copies).

Skipped without a Chromium as test_console_browser is, whose helpers these tests share."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.conftest import fresh_name
from tests.harness import Server
from tests.integration.test_console_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    PHONE,
    page_problems,
    send_order,
    sign_in,
    watched,
)

pytestmark = pytest.mark.browser

SYMBOL = "600000"  # cn_a, in exchange mode here; the first symbol: the one charted first
PAPER = "AAPL"  # us_equity, in paper mode here


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The cn_a symbols in exchange mode, the US ones in paper mode, trading around the
    clock."""
    with Server(
        tmp_path_factory.mktemp("console-exchange"),
        fill_mode="wait",
        market={"mode": "exchange"},
        profiles={"us_equity": {"mode": "paper"}},
        control={"sessions": "always"},
    ) as srv:
        yield srv
        srv.assert_no_crash()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """As test_console_browser's, whose module this one's skip comes from."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page; the test fails if the page throws or breaks its CSP."""
    context = browser.new_context(viewport=DESKTOP)
    page = watched(context.new_page())
    yield page
    context.close()
    assert not page_problems(page)


def trader(server: Server, shares: str = "10000") -> str:
    """A user with cash and shares of SYMBOL to sell; its token."""
    return server.new_user(fresh_name("booker"), "10000000", positions={SYMBOL: shares})


def rest(server: Server, token: str, side: str, qty: int, price: str) -> dict[str, Any]:
    reply = server.http(token).post(
        "/v1/orders",
        json={"symbol": SYMBOL, "side": side, "qty": qty, "price": price, "time_in_force": "gtc"},
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "new", reply.json()
    return dict(reply.json())


def cancel_all(server: Server, *tokens: str) -> None:
    """The next test starts from an empty book."""
    for token in tokens:
        http = server.http(token)
        for order in http.get("/v1/orders", params={"status": "open"}).json():
            http.delete(f"/v1/orders/{order['id']}")
    deadline = time.monotonic() + 20
    while True:
        book = server.http(tokens[0]).get(f"/v1/depth/{SYMBOL}").json()
        if not book["bids"] and not book["asks"]:
            return
        assert time.monotonic() < deadline, book
        time.sleep(0.2)


def level(page: Page, side: str, price: str) -> Locator:
    return page.locator(f"#{side} tr[data-price='{price}']")


def expect_level(page: Page, side: str, price: str, qty: str, total: str) -> None:
    row = level(page, side, price)
    expect(row.locator("td.qty")).to_have_text(qty)
    expect(row.locator("td.total")).to_have_text(total)


def test_the_ladder_and_the_tape_follow_the_book_as_users_trade(
    exchange: Server, page: Page
) -> None:
    maker, taker = trader(exchange), trader(exchange)
    rest(exchange, maker, "sell", 300, "8.55")
    rest(exchange, maker, "sell", 500, "8.56")
    rest(exchange, maker, "sell", 200, "8.56")  # behind the 500 at the same price
    rest(exchange, maker, "sell", 1000, "8.60")
    rest(exchange, maker, "sell", 1500, "8.62")
    rest(exchange, maker, "buy", 400, "8.50")
    rest(exchange, maker, "buy", 600, "8.48")
    rest(exchange, maker, "buy", 1200, "8.45")

    sign_in(page, exchange, taker)
    expect(page.locator("#chart-symbol")).to_have_value(SYMBOL)
    expect(page.get_by_role("heading", name="Order book", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Trades", exact=True)).to_be_visible()
    expect(page.locator("#paper-note")).to_be_hidden()
    # the snapshot's levels, best first from the spread outwards, with running totals
    expect_level(page, "asks", "8.55", "300", "300")
    expect_level(page, "asks", "8.56", "700", "1000")
    expect_level(page, "asks", "8.60", "1000", "2000")
    expect_level(page, "bids", "8.50", "400", "400")
    expect_level(page, "bids", "8.48", "600", "1000")
    expect_level(page, "bids", "8.45", "1200", "2200")
    expect(page.locator("#asks tr.best")).to_have_attribute("data-price", "8.55")
    expect(page.locator("#bids tr.best")).to_have_attribute("data-price", "8.50")
    expect(page.locator("#spread")).to_contain_text("Spread 0.05")
    asks = page.locator("#asks tr:not(.empty)")
    expect(asks).to_have_count(4)
    prices = [asks.nth(i).get_attribute("data-price") for i in range(4)]
    assert prices == ["8.62", "8.60", "8.56", "8.55"]  # the best ask next to the spread
    expect(page.locator("#trades tbody")).to_have_text("No trades since this page opened.")

    # an order another user rests now reaches the ladder by the depth events
    bid = rest(exchange, maker, "buy", 100, "8.52")
    expect_level(page, "bids", "8.52", "100", "100")
    expect(page.locator("#bids tr.best")).to_have_attribute("data-price", "8.52")
    expect(page.locator("#spread")).to_contain_text("Spread 0.03")
    exchange.http(maker).delete(f"/v1/orders/{bid['id']}")
    expect(level(page, "bids", "8.52")).to_have_count(0)

    # a click on a level puts its price in the ticket, for this symbol
    page.get_by_role("button", name="8.56, 700 offered: use this price in the order form").click()
    ticket = page.locator("#ticket")
    expect(ticket.get_by_label("Limit price")).to_have_value("8.56")
    expect(ticket.get_by_label("Symbol")).to_have_value(SYMBOL)

    # a buy of 500 up to 8.56 takes the 300 at 8.55, then 200 of the 500 first at 8.56
    send_order(page, "buy", "500", "8.56")
    expect(level(page, "asks", "8.55")).to_have_count(0)
    expect_level(page, "asks", "8.56", "500", "500")
    expect(page.locator("#asks tr.best")).to_have_attribute("data-price", "8.56")
    expect(page.locator("#spread")).to_contain_text("Spread 0.06 · last 8.56")
    tape = page.locator("#trades tbody tr")
    expect(tape).to_have_count(2)
    newest, oldest = tape.nth(0).locator("td"), tape.nth(1).locator("td")
    expect(newest.nth(1)).to_have_text("8.56")  # newest on top
    expect(newest.nth(2)).to_have_text("200")
    expect(newest.nth(3)).to_have_text("buy")  # the taker's side, coloured
    expect(newest.nth(3)).to_have_class("buy")
    expect(oldest.nth(1)).to_have_text("8.55")
    expect(oldest.nth(2)).to_have_text("300")
    # a sell of 300 down to 8.50 takes from the best bid: the tape says the taker sold
    send_order(page, "sell", "300", "8.50")
    expect(tape).to_have_count(3)
    expect(tape.nth(0).locator("td").nth(1)).to_have_text("8.50")
    expect(tape.nth(0).locator("td").nth(3)).to_have_text("sell")
    expect(tape.nth(0).locator("td").nth(3)).to_have_class("sell")
    expect_level(page, "bids", "8.50", "100", "100")
    expect(page.locator("#spread")).to_contain_text("Spread 0.06 · last 8.50")
    # the ladder is the server's book
    book = exchange.http(taker).get(f"/v1/depth/{SYMBOL}").json()
    expect(page.locator("#ladder")).to_have_attribute("data-seq", str(book["seq"]))
    shown = page.evaluate(
        """() => ["asks", "bids"].map((side) =>
            [...document.querySelectorAll(`#${side} tr:not(.empty)`)]
                .map((tr) => [tr.dataset.price, tr.dataset.qty]))"""
    )
    assert shown == [list(reversed(book["asks"])), book["bids"]]

    ARTIFACTS.mkdir(exist_ok=True)
    page.evaluate("document.querySelector('#charts-title').parentElement.scrollIntoView()")
    page.wait_for_timeout(300)  # the charts redraw at their new size
    page.screenshot(path=str(ARTIFACTS / "console-exchange-desktop.png"))
    page.set_viewport_size(PHONE)
    expect(page.get_by_role("heading", name="Order book", exact=True)).to_be_visible()
    page.evaluate("document.querySelector('#book').scrollIntoView()")
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "console-exchange-phone.png"))
    cancel_all(exchange, maker, taker)


def test_a_paper_symbol_shows_no_ladder_and_says_why(exchange: Server, page: Page) -> None:
    maker, taker = trader(exchange), trader(exchange)
    rest(exchange, maker, "sell", 100, "8.70")
    sign_in(page, exchange, taker)
    expect_level(page, "asks", "8.70", "100", "100")
    page.get_by_label("Chart symbol").select_option(PAPER)
    expect(page.locator("#paper-note")).to_have_text(
        f"{PAPER} is in paper mode: its orders fill against the market feed, so it has no "
        "order book or trade tape here."
    )
    expect(page.locator("#book")).to_be_hidden()
    expect(page.locator("#tape")).to_be_hidden()
    expect(page.locator(".charts.with-book")).to_have_count(0)
    expect(page.locator("#price-summary")).to_contain_text(f"{PAPER} last")
    # and back: the exchange symbol's book is there again, changes while away included
    rest(exchange, maker, "sell", 200, "8.71")
    page.get_by_label("Chart symbol").select_option(SYMBOL)
    expect(page.locator("#paper-note")).to_be_hidden()
    expect_level(page, "asks", "8.71", "200", "300")
    cancel_all(exchange, maker, taker)


def test_the_book_follows_the_client_algorithm_of_the_protocol(
    exchange: Server, page: Page
) -> None:
    """book.js's DepthBook in the page (protocol.md 9.7): events kept until the snapshot,
    those up to its seq dropped, a gap asks for a new snapshot, a reset replaces the book,
    and a side the snapshot cut off asks again before the ladder runs out of levels."""
    sign_in(page, exchange, trader(exchange))
    outcomes = page.evaluate(
        """async () => {
            const { DepthBook, LADDER_LEVELS } = await import("/console/book.js");
            const out = [];
            const levels = (book, side) =>
                book.top(side, 50).map(([p, q]) => `${p}x${q}`).join(" ");
            const event = (seq, bids, asks, reset = false) =>
                ({ type: "depth", symbol: "X", seq, reset, bids, asks });
            const book = new DepthBook("X");
            out.push(book.take(event(41, [["8.40", "100"]], [])));  // before the snapshot
            out.push(book.take(event(43, [["8.50", "0"], ["8.49", "1500"]], [])));
            const snapshot = { seq: 42, bids: [["8.50", "300"], ["8.49", "1200"]],
                               asks: [["8.51", "200"]], last: "8.50" };
            out.push(book.load(snapshot, 50), book.seq, levels(book, "bids"));
            out.push(book.take(event(43, [["8.48", "1"]], [])));  // again: in already
            out.push(book.take(event(45, [], [["8.52", "10"]])), book.live);  // 44 is lost
            out.push(book.take(event(46, [], [])));  // kept for the next snapshot
            out.push(book.load({ ...snapshot, seq: 45 }, 50), book.seq);  // 46 applied
            out.push(book.take(event(50, [["8.30", "5"]], [["8.60", "7"]], true)));  // reset
            out.push(book.seq, levels(book, "bids"), levels(book, "asks"));
            out.push(book.top("bids", 1)[0][2]);
            // a side cut off at `levels`: gone below the ladder's size, it asks again
            const deep = new DepthBook("X");
            const bids = Array.from({ length: 12 }, (_, i) => [`8.${50 - i}`, "100"]);
            deep.load({ seq: 1, bids, asks: [], last: null }, 12);
            out.push(deep.take(event(2, [["8.50", "0"], ["8.49", "0"]], [])));
            out.push(deep.take(event(3, [["8.48", "0"]], [])), LADDER_LEVELS);
            return out;
        }"""
    )
    assert outcomes == [
        "kept",
        "kept",
        True,
        43,
        "8.49x1500",  # 41 dropped (before the snapshot), 43 applied: 8.50 gone
        "old",
        "resync",
        False,
        "kept",
        True,
        46,
        "applied",
        50,
        "8.30x5",
        "8.60x7",
        "5",
        "applied",
        "resync",
        10,
    ]
