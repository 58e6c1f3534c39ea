"""Price-time priority, the fill model, stops and instant fills of the plain book
(actors/matcher/book.py).

Every expected price and quantity below is worked out by hand from docs/fill-model.md,
with the cn_a defaults: lot 100, tick 0.01, market protection 500 bp.
"""

from __future__ import annotations

from decimal import Decimal as D

from actors.market.rules import Market
from actors.matcher.book import Book, FillModel, Match, Resting, Trade, Trigger
from protocol.settings import Settings

PROFILE = Market.from_settings(Settings()).rules("600000")


def make_book(rate: str = "0.25", ticks: int = 0, bp: str = "0") -> Book:
    return Book("600000", FillModel(PROFILE, D(rate), ticks, D(bp)))


def resting(order_id: int, side: str, price: str, qty: int = 100, **fields: object) -> Resting:
    """An order with nothing filled; `price` is its bound, seq follows the id."""
    return Resting(order_id, side, D(price), D(qty), D(0), order_id, **fields)  # type: ignore[arg-type]


def trade(
    last: str, volume: int | None = None, bid: str | None = None, ask: str | None = None
) -> Trade:
    return Trade(
        D(last),
        None if volume is None else D(volume),
        None if bid is None else D(bid),
        None if ask is None else D(ask),
    )


def fills(matches: list[Match]) -> list[tuple[int, int, str]]:
    """(order_id, qty, price) of each match, in the order the book decided them."""
    return [(m.order_id, int(m.qty), str(m.price)) for m in matches]


def see_and_match(book: Book, t: Trade) -> list[tuple[int, int, str]]:
    book.see(t)
    return fills(book.match())


# PRICE-TIME PRIORITY ---------------------------------------------------------------------


def test_a_trade_fills_bids_at_or_above_and_asks_at_or_below_its_price() -> None:
    book = make_book()
    for order in (
        resting(1, "buy", "10.00"),
        resting(2, "buy", "9.99"),
        resting(3, "sell", "10.00"),
        resting(4, "sell", "10.01"),
    ):
        book.add(order)
    book.see(trade("10.00"))
    matches = book.match()
    # both rested before any trade: they made liquidity
    assert matches == [
        Match(1, D(100), D("10.00"), D(100), "maker"),
        Match(3, D(100), D("10.00"), D(100), "maker"),
    ]
    assert len(book) == 2 and 2 in book and 4 in book
    assert 1 not in book and book.get(1) is None


def test_crossed_bids_come_best_price_first_then_earliest_first() -> None:
    book = make_book()
    for order in (
        resting(1, "buy", "10.00"),
        resting(2, "buy", "10.05"),
        resting(3, "buy", "10.00"),
        resting(4, "buy", "10.05"),
    ):
        book.add(order)
    assert [m[0] for m in see_and_match(book, trade("9.00"))] == [2, 4, 1, 3]


def test_crossed_asks_come_lowest_price_first_then_earliest_first() -> None:
    book = make_book()
    for order in (
        resting(1, "sell", "10.05"),
        resting(2, "sell", "10.00"),
        resting(3, "sell", "10.05"),
        resting(4, "sell", "10.00"),
    ):
        book.add(order)
    assert [m[0] for m in see_and_match(book, trade("11.00"))] == [2, 4, 1, 3]


def test_nothing_matches_before_the_first_trade() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.00"))
    assert book.match() == []
    assert book.trigger() == []
    assert book.fillable(book.orders()[0]) == 0
    assert 1 in book


def test_a_removed_order_never_fills() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.00"))
    assert book.remove(1) is not None
    assert book.remove(1) is None
    assert see_and_match(book, trade("1.00")) == []
    assert book.best_bid() is None
    assert len(book) == 0


def test_best_prices_follow_the_book() -> None:
    book = make_book()
    book.add(resting(1, "buy", "9.98"))
    book.add(resting(2, "buy", "9.99"))
    book.add(resting(3, "sell", "10.02"))
    book.add(resting(4, "sell", "10.01"))
    assert (book.best_bid(), book.best_ask()) == (D("9.99"), D("10.01"))
    book.remove(2)
    book.remove(4)
    assert (book.best_bid(), book.best_ask()) == (D("9.98"), D("10.02"))


# PARTICIPATION CAP -----------------------------------------------------------------------


def test_each_side_takes_at_most_its_share_of_the_volume_in_whole_lots() -> None:
    """Volume 1000 at 25%: 250 shares per side, 200 of them in whole lots for a big order;
    the 50 left cannot start the next 300-share order."""
    book = make_book("0.25")
    book.add(resting(1, "buy", "10.00", 300))
    book.add(resting(2, "buy", "10.00", 300))
    book.add(resting(3, "sell", "10.00", 100))
    book.add(resting(4, "sell", "10.00", 100))
    book.add(resting(5, "sell", "10.00", 100))
    matches = see_and_match(book, trade("10.00", volume=1000))
    assert matches == [(1, 200, "10.00"), (3, 100, "10.00"), (4, 100, "10.00")]
    assert (book.get(1).leaves_qty, book.get(1).cum_qty) == (100, 200)  # type: ignore[union-attr]
    assert book.get(2).cum_qty == 0  # type: ignore[union-attr]
    assert 3 not in book and 4 not in book and 5 in book


def test_the_cap_is_split_across_orders_in_priority_and_never_exceeded() -> None:
    """Volume 2000 at 25%: 500 shares, 200 + 200 + the first 100 of the third order."""
    book = make_book("0.25")
    book.add(resting(1, "buy", "10.00", 200))
    book.add(resting(2, "buy", "10.05", 200))
    book.add(resting(3, "buy", "10.00", 300))
    matches = see_and_match(book, trade("10.00", volume=2000))
    assert matches == [(2, 200, "10.00"), (1, 200, "10.00"), (3, 100, "10.00")]
    assert sum(qty for _, qty, _ in matches) == 500
    assert book.get(3).leaves_qty == 200  # type: ignore[union-attr]


def test_each_trade_brings_fresh_volume_and_orders_keep_their_place() -> None:
    book = make_book("0.25")
    book.add(resting(1, "buy", "10.00", 300))
    book.add(resting(2, "buy", "10.00", 100))
    assert see_and_match(book, trade("10.00", volume=400)) == [(1, 100, "10.00")]
    assert see_and_match(book, trade("10.00", volume=400)) == [(1, 100, "10.00")]
    assert book.match() == []  # the same trade again: its volume is used up
    book.see(trade("9.99", volume=1600))
    assert book.match() == [
        Match(1, D(100), D("9.99"), D(300), "maker"),
        Match(2, D(100), D("9.99"), D(100), "maker"),
    ]
    assert len(book) == 0


def test_an_order_arriving_after_a_trade_gets_only_what_that_trade_has_left() -> None:
    book = make_book("0.25")
    book.add(resting(1, "buy", "10.00", 200))
    assert see_and_match(book, trade("10.00", volume=1000)) == [(1, 200, "10.00")]
    book.add(resting(2, "buy", "10.00", 100))
    assert book.match() == []  # 50 left on the buy side: not a lot
    book.add(resting(3, "sell", "10.00", 30))
    book.add(resting(4, "sell", "10.00", 300))
    # the sell side still has all 250: 30 whole, then 200 of the 300 (220 left, in lots)
    assert fills(book.match()) == [(3, 30, "10.00"), (4, 200, "10.00")]


def test_without_a_volume_fills_are_not_capped() -> None:
    book = make_book("0.01")
    book.add(resting(1, "buy", "10.00", 1_000_000))
    book.add(resting(2, "sell", "9.00", 12_345))
    assert see_and_match(book, trade("9.50")) == [(1, 1_000_000, "9.50"), (2, 12_345, "9.50")]


def test_a_quote_of_volume_zero_is_no_trade_and_leaves_the_latest_trade_alone() -> None:
    book = make_book("1")
    book.add(resting(1, "sell", "9.00", 50))
    book.add(stop(2, "sell", "9.00", "8.55"))
    assert book.see(trade("9.60", volume=50)) is True
    assert fills(book.match()) == [(1, 50, "9.60")]
    assert book.see(trade("8.90", volume=0)) is False  # at the stop, but no trade
    assert book.trade == trade("9.60", volume=50)
    assert book.trigger() == []
    book.add(resting(3, "sell", "9.00", 50))
    assert book.match() == []  # the 9.60 trade's room is used up
    assert see_and_match(book, trade("9.40", volume=100)) == [(3, 50, "9.40")]


def test_a_quote_of_volume_zero_stands_in_for_a_trade_only_when_there_was_none() -> None:
    book = make_book("1")
    book.add(resting(1, "sell", "9.00", 1))
    book.add(resting(2, "buy", "10.50", order_type="market"))
    assert book.see(trade("10.00", volume=0)) is False
    assert book.trade == trade("10.00", volume=0)
    assert book.match() == []  # no room
    assert book.fill_instantly(2) == Match(
        2, D(100), D("10.00"), D(100), "taker"
    )  # a price, though


def test_after_trading_resumes_nothing_fills_against_the_trade_before() -> None:
    book = make_book("1")
    book.see(trade("10.00"))  # no volume: uncapped
    book.exhaust()
    book.add(resting(1, "buy", "10.00"))
    assert book.match() == []
    assert book.fillable(book.get(1)) == 0  # type: ignore[arg-type]
    assert see_and_match(book, trade("10.00")) == [(1, 100, "10.00")]


def test_a_rest_below_one_lot_fills_whole_when_it_fits_and_waits_when_it_does_not() -> None:
    book = make_book("0.25")
    book.add(resting(1, "sell", "10.00", 150))
    # volume 400: room 100, the 150 takes one lot and keeps 50
    assert see_and_match(book, trade("10.00", volume=400)) == [(1, 100, "10.00")]
    # volume 180: room 45, the 50 left is below a lot but does not fit: nothing
    assert see_and_match(book, trade("10.00", volume=180)) == []
    # volume 200: room exactly 50, the rest fills whole
    assert see_and_match(book, trade("10.00", volume=200)) == [(1, 50, "10.00")]
    assert len(book) == 0


def test_a_fractional_room_still_takes_an_odd_lot_that_fits() -> None:
    book = make_book("0.25")
    book.add(resting(1, "sell", "10.00", 32))
    book.add(resting(2, "sell", "10.00", 1))
    # volume 130: room 32.5 shares; 32 fit, then 0.5 is too little for even one share
    assert see_and_match(book, trade("10.00", volume=130)) == [(1, 32, "10.00")]
    assert 2 in book


def test_the_first_order_that_cannot_take_anything_stops_its_side() -> None:
    """Room 250: A takes 200 (room 50), B's 40 fits whole (room 10), C's 200 cannot take a
    lot, so D's 5 waits behind it even though it would fit."""
    book = make_book("0.25")
    book.add(resting(1, "sell", "10.00", 300))
    book.add(resting(2, "sell", "10.00", 40))
    book.add(resting(3, "sell", "10.00", 200))
    book.add(resting(4, "sell", "10.00", 5))
    assert see_and_match(book, trade("10.00", volume=1000)) == [
        (1, 200, "10.00"),
        (2, 40, "10.00"),
    ]
    assert [book.get(i).leaves_qty for i in (1, 3, 4)] == [100, 200, 5]  # type: ignore[union-attr]


def test_an_order_that_cannot_take_anything_also_stops_the_worse_priced_levels() -> None:
    book = make_book("0.5")
    book.add(resting(1, "sell", "9.98", 300))
    book.add(resting(2, "sell", "9.99", 100))
    book.add(resting(3, "sell", "10.00", 30))
    # volume 500: room 250; order 1 takes 200, the 50 left cannot start order 2's 100,
    # and order 3's 30 at a worse price waits behind it
    assert see_and_match(book, trade("10.00", volume=500)) == [(1, 200, "10.00")]
    assert book.get(3).cum_qty == 0  # type: ignore[union-attr]


# FILL PRICES -----------------------------------------------------------------------------


def test_without_a_quote_both_sides_fill_at_the_last_price_not_their_limits() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.50"))
    book.add(resting(2, "sell", "9.50"))
    assert see_and_match(book, trade("10.00")) == [(1, 100, "10.00"), (2, 100, "10.00")]


def test_with_a_quote_buys_fill_at_the_ask_and_sells_at_the_bid() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.05"))
    book.add(resting(2, "buy", "10.01"))  # above the last but below the ask: not crossed
    book.add(resting(3, "sell", "9.90"))
    book.add(resting(4, "sell", "9.99"))  # below the last but above the bid: not crossed
    assert see_and_match(book, trade("10.00", bid="9.98", ask="10.02")) == [
        (1, 100, "10.02"),
        (3, 100, "9.98"),
    ]
    assert 2 in book and 4 in book


def test_an_ask_below_the_last_lets_a_buy_fill_at_the_ask() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.45"))
    assert see_and_match(book, trade("10.60", bid="10.35", ask="10.40")) == [(1, 100, "10.40")]


def test_slippage_in_ticks_moves_the_price_against_the_order() -> None:
    book = make_book(ticks=2)
    book.add(resting(1, "buy", "11.00"))
    book.add(resting(2, "sell", "9.00"))
    assert see_and_match(book, trade("10.00")) == [(1, 100, "10.02"), (2, 100, "9.98")]


def test_slippage_in_basis_points_rounds_to_the_tick_away_from_the_order() -> None:
    book = make_book(bp="5")  # 10.00 x 5 bp = 0.005: a buy pays 10.01, a sell gets 9.99
    book.add(resting(1, "buy", "11.00"))
    book.add(resting(2, "sell", "9.00"))
    assert see_and_match(book, trade("10.00")) == [(1, 100, "10.01"), (2, 100, "9.99")]


def test_slippage_in_ticks_and_basis_points_adds_up_from_the_quote() -> None:
    """ask 12.36 + 1 tick + 12.36 x 5 bp (0.00618) = 12.37618, up to 12.38;
    bid 12.32 - 1 tick - 12.32 x 5 bp (0.00616) = 12.30384, down to 12.30."""
    book = make_book(ticks=1, bp="5")
    book.add(resting(1, "buy", "13.00"))
    book.add(resting(2, "sell", "12.00"))
    assert see_and_match(book, trade("12.34", bid="12.32", ask="12.36")) == [
        (1, 100, "12.38"),
        (2, 100, "12.30"),
    ]


def test_slippage_never_takes_a_fill_past_its_bound() -> None:
    book = make_book(ticks=5, bp="100")
    book.add(resting(1, "buy", "10.01"))
    book.add(resting(2, "sell", "9.99"))
    book.add(resting(3, "buy", "10.00"))  # exactly at the last: fills at its bound
    assert see_and_match(book, trade("10.00")) == [
        (1, 100, "10.01"),
        (3, 100, "10.00"),
        (2, 100, "9.99"),
    ]


# STOPS -----------------------------------------------------------------------------------


def stop(
    order_id: int, side: str, stop_price: str, bound: str, qty: int = 100, **fields: object
) -> Resting:
    return resting(
        order_id, side, bound, qty, order_type="stop", stop_price=D(stop_price), **fields
    )


def test_a_stop_buy_waits_below_its_stop_and_triggers_when_the_last_reaches_it() -> None:
    book = make_book()
    book.add(stop(1, "buy", "10.00", "10.50"))  # bound: 10.00 + 5%
    assert book.best_bid() is None and 1 in book
    book.see(trade("9.99"))
    assert book.trigger() == [] and book.match() == []
    book.see(trade("10.00"))
    assert book.trigger() == [Trigger(1, D("10.00"), D("10.50"))]
    assert book.get(1).triggered  # type: ignore[union-attr]
    assert fills(book.match()) == [(1, 100, "10.00")]  # on the very trade that triggered it


def test_a_stop_sell_waits_above_its_stop_and_triggers_when_the_last_falls_to_it() -> None:
    book = make_book()
    book.add(stop(1, "sell", "10.00", "9.50"))
    book.see(trade("10.01"))
    assert book.trigger() == []
    book.see(trade("9.80", bid="9.79", ask="9.81"))
    assert book.trigger() == [Trigger(1, D("10.00"), D("9.50"))]
    assert fills(book.match()) == [(1, 100, "9.79")]
    assert book.trigger() == []  # triggers once


def test_a_waiting_stop_never_fills_though_its_bound_crosses() -> None:
    book = make_book()
    book.add(stop(1, "buy", "10.00", "10.50"))
    book.see(trade("9.00"))
    assert book.trigger() == []
    assert book.match() == []
    assert book.fillable(book.get(1)) == 0  # type: ignore[arg-type]
    assert book.fill_instantly(1) is None
    assert book.fill_everything() == []
    assert book.remove(1) is not None and len(book) == 0


def test_stops_trigger_in_the_order_they_were_placed_and_join_the_back_of_their_level() -> None:
    book = make_book("0.25")
    for order_id, seq in ((1, 3), (2, 2)):  # order 1 was placed last, though its id is lower
        book.add(
            Resting(order_id, "buy", D("10.50"), D(100), D(0), seq, "stop", stop_price=D("10.00"))
        )
    book.add(resting(4, "buy", "10.50"))
    book.see(trade("10.00", volume=800))  # room 200
    assert [t.order_id for t in book.trigger()] == [2, 1]
    # order 4 was resting at 10.50 first; then the stops in trigger order
    assert fills(book.match()) == [(4, 100, "10.00"), (2, 100, "10.00")]


def test_a_stop_limit_keeps_its_limit_as_its_bound() -> None:
    """Even a limit looser than a stop order's protection (10.00 + 5% = 10.50) stays."""
    book = make_book()
    book.add(resting(1, "buy", "10.60", order_type="stop_limit", stop_price=D("10.00")))
    book.see(trade("10.70"))
    assert book.trigger() == [Trigger(1, D("10.00"), D("10.60"))]
    assert book.match() == []  # triggered above its limit: it waits in the book
    assert book.best_bid() == D("10.60")
    assert see_and_match(book, trade("10.55")) == [(1, 100, "10.55")]


def test_a_trailing_stop_sell_ratchets_up_behind_the_highest_last_and_never_down() -> None:
    """Trail 0.50 from a start of 10.00: stop 9.50, bound 9.50 x 95% = 9.025, down to 9.02."""
    book = make_book()
    order = resting(
        1, "sell", "9.02", order_type="trailing_stop", stop_price=D("9.50"), trail_price=D("0.50")
    )
    book.add(order)
    stops, moves = [], []
    for last in ("10.20", "10.10", "10.40", "9.95"):
        book.see(trade(last))
        assert book.trigger() == []
        stops.append(str(order.stop_price))
        moves.append(book.take_trailed())  # what the ledger is told
    assert stops == ["9.70", "9.70", "9.90", "9.90"]
    assert moves == [[(1, D("9.70"))], [], [(1, D("9.90"))], []]
    book.see(trade("9.90"))
    # triggered at 9.90, its bound tightens to 9.90 x 95% = 9.405, down to 9.40
    assert book.trigger() == [Trigger(1, D("9.90"), D("9.40"))]
    assert order.price == D("9.40")
    assert fills(book.match()) == [(1, 100, "9.90")]


def test_a_trailing_stop_sell_by_percent_rounds_its_stop_down_to_the_tick() -> None:
    book = make_book()
    order = resting(
        1, "sell", "9.02", order_type="trailing_stop", stop_price=D("9.50"), trail_percent=D(5)
    )
    book.add(order)
    book.see(trade("10.30"))  # 10.30 x 95% = 9.785: down to 9.78, though nearer 9.79
    assert book.trigger() == []
    assert order.stop_price == D("9.78")
    book.see(trade("10.20"))
    book.trigger()
    assert order.stop_price == D("9.78")
    book.see(trade("9.79"))
    assert book.trigger() == []
    book.see(trade("9.78"))  # bound 9.78 x 95% = 9.291, down to 9.29
    assert book.trigger() == [Trigger(1, D("9.78"), D("9.29"))]


def test_a_trailing_stop_buy_follows_the_lowest_last_down_rounding_up() -> None:
    """Trail 0.30 from 10.00: stop 10.30, bound 10.30 x 105% = 10.815, up to 10.82."""
    book = make_book()
    order = resting(
        1, "buy", "10.82", order_type="trailing_stop", stop_price=D("10.30"), trail_price=D("0.30")
    )
    book.add(order)
    for last, expected in (("9.80", "10.10"), ("9.90", "10.10"), ("10.09", "10.10")):
        book.see(trade(last))
        assert book.trigger() == []
        assert order.stop_price == D(expected)
    book.see(trade("10.10"))  # bound 10.10 x 105% = 10.605, up to 10.61
    assert book.trigger() == [Trigger(1, D("10.10"), D("10.61"))]
    assert fills(book.match()) == [(1, 100, "10.10")]

    by_percent = resting(
        2, "buy", "10.82", order_type="trailing_stop", stop_price=D("10.30"), trail_percent=D(3)
    )
    book.add(by_percent)
    book.see(trade("9.99"))  # 9.99 x 103% = 10.2897
    assert book.trigger() == []
    assert by_percent.stop_price == D("10.29")


def test_a_trailing_stop_triggers_on_a_gap_through_its_stop() -> None:
    book = make_book()
    order = resting(
        1, "sell", "9.02", order_type="trailing_stop", stop_price=D("9.50"), trail_price=D("0.50")
    )
    book.add(order)
    book.see(trade("9.40"))  # trailing from 9.40 would put the stop at 8.90: it stays 9.50
    assert book.trigger() == [Trigger(1, D("9.50"), D("9.02"))]
    assert fills(book.match()) == [(1, 100, "9.40")]


# REPLACE ---------------------------------------------------------------------------------


def test_a_replacement_at_the_same_price_for_no_more_qty_keeps_its_place() -> None:
    book = make_book("0.25")
    book.add(resting(1, "buy", "10.00", 300))
    book.add(resting(2, "buy", "10.00", 100))
    assert book.replace(1, resting(3, "buy", "10.00", 300))
    assert 1 not in book and 3 in book and len(book) == 2
    assert see_and_match(book, trade("10.00", volume=400)) == [(3, 100, "10.00")]
    assert book.replace(3, resting(4, "buy", "10.00", 100))  # less qty: still first
    assert see_and_match(book, trade("10.00", volume=400)) == [(4, 100, "10.00")]


def test_a_replacement_for_more_qty_goes_to_the_back_of_its_level() -> None:
    book = make_book("0.25")
    book.add(resting(1, "buy", "10.00", 100))
    book.add(resting(2, "buy", "10.00", 100))
    assert not book.replace(1, resting(3, "buy", "10.00", 200))  # not in its place
    assert see_and_match(book, trade("10.00", volume=400)) == [(2, 100, "10.00")]


def test_a_replacement_at_another_price_loses_its_place_even_when_it_comes_back() -> None:
    book = make_book("0.25")
    book.add(resting(1, "buy", "10.00", 100))
    book.add(resting(2, "buy", "10.00", 100))
    assert not book.replace(1, resting(3, "buy", "9.99", 100))
    assert book.best_bid() == D("10.00")
    assert not book.replace(3, resting(4, "buy", "10.00", 100))
    assert see_and_match(book, trade("10.00", volume=400)) == [(2, 100, "10.00")]
    assert list(book.orders()) == [book.get(4)]


def test_replacing_an_order_the_book_does_not_hold_changes_nothing() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.00"))
    assert not book.replace(9, resting(10, "buy", "10.00"))
    assert 10 not in book and 1 in book


def test_a_replaced_waiting_stop_still_waits() -> None:
    book = make_book()
    book.add(stop(1, "sell", "10.00", "9.50"))
    assert not book.replace(1, stop(2, "sell", "9.00", "8.55"))  # no place to keep
    book.see(trade("9.50"))
    assert book.trigger() == [] and book.match() == []
    assert 2 in book and book.best_ask() is None


# MAKER OR TAKER --------------------------------------------------------------------------


def test_a_limit_that_rests_before_the_market_reaches_it_makes_liquidity() -> None:
    book = make_book("0.25")
    book.add(resting(1, "buy", "9.90"))  # before any trade
    book.see(trade("10.00", bid="9.99", ask="10.02"))
    book.add(resting(2, "buy", "10.01", 200))  # above the last but below the ask: it rests
    book.add(resting(3, "sell", "10.10"))
    assert book.match() == []
    assert [book.get(i).maker for i in (1, 2, 3)] == [True, True, True]  # type: ignore[union-attr]
    # a replacement that keeps its place keeps being a maker
    assert book.replace(2, resting(4, "buy", "10.01", 200))
    book.see(trade("9.90", volume=400))  # room 100 a side
    assert book.match() == [Match(4, D(100), D("9.90"), D(100), "maker")]
    book.see(trade("9.90"))
    assert book.match() == [
        Match(4, D(100), D("9.90"), D(200), "maker"),
        Match(1, D(100), D("9.90"), D(100), "maker"),
    ]
    book.see(trade("10.10"))
    assert book.match() == [Match(3, D(100), D("10.10"), D(100), "maker")]


def test_market_orders_and_limits_that_cross_the_latest_trade_take_liquidity() -> None:
    book = make_book("0.25")
    book.add(resting(1, "buy", "10.50", order_type="market"))  # a taker, trade or not
    book.see(trade("10.00", volume=400))  # room 100 a side
    assert book.match() == [Match(1, D(100), D("10.00"), D(100), "taker")]
    book.add(resting(2, "sell", "9.95", 300))  # crosses the latest trade when added
    book.add(resting(3, "buy", "10.05"))
    assert book.match() == [Match(2, D(100), D("10.00"), D(100), "taker")]
    # order 3 crossed when added, though the trade had no room left for it: a taker
    assert not book.get(3).maker  # type: ignore[union-attr]
    # an order is a taker as a whole: what rests of it after a partial fill still takes
    book.see(trade("10.00", volume=800))  # room 200 a side
    assert book.match() == [
        Match(3, D(100), D("10.00"), D(100), "taker"),
        Match(2, D(200), D("10.00"), D(300), "taker"),
    ]


def test_a_triggered_stop_limit_makes_liquidity_unless_its_limit_reaches_the_trade() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.60", order_type="stop_limit", stop_price=D("10.00")))
    book.add(resting(2, "buy", "10.80", order_type="stop_limit", stop_price=D("10.00")))
    book.add(stop(3, "buy", "10.00", "10.50"))
    book.see(trade("10.70"))
    assert [t.order_id for t in book.trigger()] == [1, 2, 3]
    # order 1's limit does not reach 10.70: it rests; order 2 crosses and takes at once;
    # a stop order takes, though its bound (10.50) does not reach the trade either
    assert [book.get(i).maker for i in (1, 2, 3)] == [True, False, False]  # type: ignore[union-attr]
    assert book.match() == [Match(2, D(100), D("10.70"), D(100), "taker")]
    book.see(trade("10.55"))
    assert book.match() == [Match(1, D(100), D("10.55"), D(100), "maker")]
    book.see(trade("10.40"))
    assert book.match() == [Match(3, D(100), D("10.40"), D(100), "taker")]


# DAY ORDERS ------------------------------------------------------------------------------


def test_day_orders_of_earlier_days_expire_and_an_order_of_no_known_day_takes_this_one() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.00", time_in_force="day", day="2024-05-06"))
    book.add(resting(2, "buy", "10.00", time_in_force="day"))
    book.add(resting(3, "buy", "10.00"))  # gtc
    book.add(resting(4, "sell", "11.00"))
    book.add(stop(5, "sell", "9.00", "8.55", time_in_force="day", day="2024-05-06"))
    assert book.expire("2024-05-06") == []
    assert book.get(2).day == "2024-05-06"  # type: ignore[union-attr]
    expired = book.expire("2024-05-07")
    assert sorted(o.order_id for o in expired) == [1, 2, 5]
    assert sorted(o.order_id for o in book.orders()) == [3, 4]
    assert book.best_bid() == D("10.00") and book.best_ask() == D("11.00")
    assert book.expire("2024-05-08") == []


# FILLABLE (FOK) --------------------------------------------------------------------------


def test_fillable_is_what_the_latest_trade_has_left_for_an_order_at_the_front() -> None:
    book = make_book("0.25")
    big, whole = resting(1, "buy", "10.00", 300), resting(2, "buy", "10.00", 200)
    odd = resting(3, "sell", "10.00", 30)
    book.see(trade("10.00", volume=1000))  # room 250 a side
    assert (book.fillable(big), book.fillable(whole), book.fillable(odd)) == (200, 200, 30)
    assert book.fillable(resting(4, "buy", "9.99", 100)) == 0  # does not cross
    assert book.fillable(stop(5, "buy", "9.00", "9.45")) == 0  # waiting
    book.add(whole)
    book.match()  # the buy side has 50 left: a 300 fills nothing, an odd 30 sell still does
    assert (book.fillable(big), book.fillable(odd)) == (0, 30)
    book.see(trade("10.00"))
    assert book.fillable(big) == 300


# INSTANT MODE ----------------------------------------------------------------------------


def test_instant_mode_fills_a_limit_order_whole_at_its_limit() -> None:
    book = make_book()
    book.add(resting(7, "sell", "12.34", 300))
    match = book.fill_instantly(7)
    assert match == Match(7, D(300), D("12.34"), D(300), "taker")
    assert len(book) == 0
    assert book.fill_instantly(7) is None


def test_instant_mode_fills_the_rest_of_a_partly_filled_order() -> None:
    book = make_book()
    book.add(Resting(7, "buy", D("9.00"), D(200), D(100), 7))
    assert book.fill_instantly(7) == Match(7, D(200), D("9.00"), D(300), "taker")


def test_instant_mode_without_a_quote_fills_a_market_order_at_the_last_within_its_bound() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.50", 200, order_type="market"))
    book.add(resting(2, "sell", "9.50", 200, order_type="market"))
    assert book.fill_instantly(1) is None  # no trade yet: no price to fill at
    book.see(trade("10.51"))
    assert book.fill_instantly(1) is None and 1 in book
    assert book.fill_instantly(2) == Match(2, D(200), D("10.51"), D(200), "taker")
    book.see(trade("10.50"))
    assert book.fill_instantly(1) == Match(1, D(200), D("10.50"), D(200), "taker")
    book.add(resting(3, "sell", "9.50", 100, order_type="market"))
    book.see(trade("9.49"))
    assert book.fill_instantly(3) is None


def test_instant_mode_fills_a_triggered_stop_limit_at_its_limit_and_not_a_waiting_stop() -> None:
    book = make_book()
    book.add(resting(1, "buy", "10.02", order_type="stop_limit", stop_price=D("10.00")))
    book.add(stop(2, "buy", "11.00", "11.55"))
    book.see(trade("10.00"))
    assert book.trigger() == [Trigger(1, D("10.00"), D("10.02"))]
    assert book.fill_instantly(2) is None
    assert book.fill_instantly(1) == Match(1, D(100), D("10.02"), D(100), "taker")


def test_filling_everything_serves_bids_then_asks_in_priority_skipping_what_cannot_fill() -> None:
    book = make_book()
    book.add(resting(1, "sell", "10.10"))
    book.add(resting(2, "buy", "9.90"))
    book.add(resting(3, "buy", "9.95", order_type="market"))  # the last is beyond its bound
    book.add(resting(4, "sell", "9.00", order_type="market"))
    book.add(resting(5, "buy", "9.95"))
    book.see(trade("10.00"))
    assert fills(book.fill_everything()) == [
        (5, 100, "9.95"),
        (2, 100, "9.90"),
        (4, 100, "10.00"),
        (1, 100, "10.10"),
    ]
    assert [o.order_id for o in book.orders()] == [3]


def test_instant_mode_fills_a_market_order_at_the_quote_on_its_side_within_its_bound() -> None:
    """A quote that moved after the trade: the ask (bid) is within the bound, the last is
    not. The fill is at the price the market offers the order, never beyond its bound."""
    book = make_book()
    book.add(resting(1, "buy", "10.50", order_type="market"))
    book.add(resting(2, "sell", "9.50", order_type="market"))
    book.add(resting(3, "buy", "10.50", order_type="market"))
    book.see(trade("10.60", bid="10.35", ask="10.40"))
    assert book.fill_instantly(1) == Match(1, D(100), D("10.40"), D(100), "taker")
    book.see(trade("9.40", bid="9.60", ask="9.65"))
    assert book.fill_instantly(2) == Match(2, D(100), D("9.60"), D(100), "taker")
    book.see(trade("10.40", bid="10.39", ask="10.51"))  # the last is within, the ask is not
    assert book.fill_instantly(3) is None and 3 in book
