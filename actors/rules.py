"""Market rule profiles: what an order must look like and what a fill costs. Pure functions.

Profile `cn_a` (China A-shares):
- buy qty a positive multiple of the lot (100); sell any positive whole qty up to what is
  held and not reserved by other open sells;
- prices (limit, stop, trail amount) positive multiples of the tick (0.01 CNY);
- commission = commission_rate x the order's filled value, rounded half-up to the cent,
  at least min_commission (5.00 CNY) per order: an order filled in several parts pays
  what it would have paid filled at once, and each fill pays the difference;
- stamp tax on sells only = stamp_tax_rate x the order's filled value, half-up to the cent,
  each fill paying the difference likewise; an optional transfer fee on both sides,
  transfer_fee_rate x value, is counted with it (`tax` is taxes and levies);
- T+1: shares bought on a trading day may be sold from the next (actors/accounts.py);
  a sell of an odd lot must sell all the shares that may be sold;
- daily price limits: limit and stop prices within +/-10% of the previous close (20% for
  boards 300xxx and 688xxx, 5% for names marked ST), rounded half-up to the tick; a market
  order's bound stays inside the band.

Every order has a price bound, the least favourable price it may fill at: its limit, or
for market and stop orders a protection price `market_protection_bp` away from the price
they start from (docs/fill-model.md). Reservations are computed at the bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from protocol.errors import ErrorCode, RejectError
from protocol.settings import Settings, SymbolSettings
from protocol.values import CENT

ZERO = Decimal(0)
BP = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """A new order that passed every check that needs no account: exact values, bound set."""

    symbol: str
    side: str
    order_type: str
    time_in_force: str
    qty: Decimal
    price: Decimal  # the bound: the least favourable price a fill may get
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None  # for a trailing stop, where it starts
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """Costs and order rules of one market, built from Settings.trading."""

    name: str
    lot_size: int
    tick_size: Decimal
    commission_rate: Decimal
    min_commission: Decimal
    stamp_tax_rate: Decimal
    max_qty: int
    max_price: Decimal
    market_protection: Decimal  # a fraction: 0.05 for 500 bp
    t_plus_one: bool = False
    transfer_fee_rate: Decimal = ZERO
    price_limits: bool = False
    odd_lots_sell_all: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Profile:
        t = settings.trading
        return cls(
            name=settings.market.profile,
            lot_size=t.lot_size,
            tick_size=t.tick_size,
            commission_rate=t.commission_rate,
            min_commission=t.min_commission,
            stamp_tax_rate=t.stamp_tax_rate,
            max_qty=t.max_qty,
            max_price=t.max_price,
            market_protection=t.market_protection_bp / BP,
            t_plus_one=t.t_plus_one,
            transfer_fee_rate=t.transfer_fee_rate,
            price_limits=t.price_limits,
            odd_lots_sell_all=t.odd_lots == "sell_all",
        )

    # COSTS ---------------------------------------------------------------------------

    def commission(self, value: Decimal) -> Decimal:
        """Commission of an order that filled `value` in all: rate x value, at least the minimum."""
        return max(_cents(value * self.commission_rate), self.min_commission) if value else ZERO

    def tax(self, side: str, value: Decimal) -> Decimal:
        """Taxes and levies of an order that filled `value` in all: stamp tax on sells,
        and the transfer fee on both sides, each rate x value to the cent."""
        stamp = _cents(value * self.stamp_tax_rate) if side == "sell" else ZERO
        return stamp + _cents(value * self.transfer_fee_rate)

    def fees(self, side: str, value: Decimal) -> tuple[Decimal, Decimal]:
        return self.commission(value), self.tax(side, value)

    def fill_fees(
        self, side: str, value_before: Decimal, value: Decimal, paid: tuple[Decimal, Decimal]
    ) -> tuple[Decimal, Decimal]:
        """Commission and tax of a fill worth `value` of an order that had filled
        `value_before` and paid `paid`: what the order owes in all, less what it paid."""
        commission, tax = self.fees(side, value_before + value)
        return max(ZERO, commission - paid[0]), max(ZERO, tax - paid[1])

    def cash_to_reserve(
        self,
        side: str,
        qty: Decimal,
        price: Decimal,
        filled_value: Decimal = ZERO,
        paid: tuple[Decimal, Decimal] = (ZERO, ZERO),
    ) -> Decimal:
        """Cash an open order holds back so that filling its `qty` left can never overdraw.

        A buy fills at its bound `price` or better, so qty x price plus the fees that value
        adds is the most it can cost. A sell brings in qty x price at least, less fees;
        only a sell so small that fees exceed proceeds needs cash, most at the bound and
        most after its smallest next fill (one fill increment, or all that is left), which
        may have to pay the whole minimum commission: each fill after it brings in more
        than the fees it adds.
        """
        value = qty * price
        commission, tax = self.fill_fees(side, filled_value, value, paid)
        if side == "buy":
            return value + commission + tax
        first = min(qty, self.fill_increment(side)) * price
        first_fees = sum(self.fill_fees(side, filled_value, first, paid))
        return max(ZERO, commission + tax - value, first_fees - first)

    # PRICES --------------------------------------------------------------------------

    def price_band(self, listed: SymbolSettings, prev_close: Decimal) -> tuple[Decimal, Decimal]:
        """The day's lowest and highest allowed prices: prev_close -/+ the symbol's limit,
        half-up to the tick; without price limits, one tick to max_price."""
        if not self.price_limits:
            return self.tick_size, self.max_price
        if listed.price_limit_pct is not None:
            pct = listed.price_limit_pct
        elif listed.st:
            pct = Decimal("0.05")
        elif listed.symbol.startswith(("300", "688")):
            pct = Decimal("0.20")
        else:
            pct = Decimal("0.10")
        low = _to_tick(prev_close * (1 - pct), self.tick_size, ROUND_HALF_UP)
        high = _to_tick(prev_close * (1 + pct), self.tick_size, ROUND_HALF_UP)
        return max(low, self.tick_size), min(high, self.max_price)

    def protection_price(self, side: str, start: Decimal) -> Decimal:
        """The bound of a market order starting from `start`: market_protection away, on the
        tick, outward (a buy rounds up, a sell down), within one tick and max_price."""
        if side == "buy":
            price = _to_tick(start * (1 + self.market_protection), self.tick_size, ROUND_CEILING)
        else:
            price = _to_tick(start * (1 - self.market_protection), self.tick_size, ROUND_FLOOR)
        return min(max(price, self.tick_size), self.max_price)

    def trailing_stop(
        self, side: str, reference: Decimal, amount: Decimal | None, percent: Decimal | None
    ) -> Decimal:
        """Where a trailing stop stands when the price it trails is `reference`.

        A sell stop trails below (amount or percent under the highest price seen), a buy
        stop above the lowest; percent stops round away from the price, to the tick."""
        offset = amount if amount is not None else reference * (percent or ZERO) / 100
        if side == "buy":
            return _to_tick(reference + offset, self.tick_size, ROUND_CEILING)
        return _to_tick(reference - offset, self.tick_size, ROUND_FLOOR)

    # ORDER CHECKS --------------------------------------------------------------------

    def check_order(
        self,
        symbols: dict[str, SymbolSettings],
        command: dict[str, Any],
        reference: Decimal,
        prev_close: Decimal | None = None,
    ) -> OrderSpec:
        """Validate an `order.new` command (fields already fit its type, protocol.orders)
        against this market; `reference` is the last price, a market order's start, and
        `prev_close` (default: the symbol table's) sets the day's price limits.

        Raises:
            RejectError: REQUEST_UNKNOWN_SYMBOL, REQUEST_INVALID_QTY, REQUEST_LOT_SIZE,
                REQUEST_INVALID_PRICE, REQUEST_PRICE_TICK, REQUEST_PRICE_LIMIT or
                REQUEST_INVALID_TRAIL.
        """
        symbol, side, order_type = command["symbol"], command["side"], command["order_type"]
        if symbol not in symbols:
            raise RejectError(ErrorCode.REQUEST_UNKNOWN_SYMBOL, f"no symbol {symbol[:32]!r}")
        low, high = self.price_band(symbols[symbol], prev_close or symbols[symbol].prev_close)
        qty = self.check_qty(side, command["qty"])
        limit = self.check_price(command, "limit_price")
        stop = self.check_price(command, "stop_price")
        for field, price in (("limit_price", limit), ("stop_price", stop)):
            if price is not None and not low <= price <= high:
                raise RejectError(
                    ErrorCode.REQUEST_PRICE_LIMIT,
                    f"{field} {price} is outside today's limits {low} to {high}",
                )
        trail = self.check_price(command, "trail_price")
        percent = (
            None if command.get("trail_percent") is None else Decimal(command["trail_percent"])
        )
        if order_type == "trailing_stop":
            stop = self.trailing_stop(side, reference, trail, percent)
            if stop < self.tick_size or stop > self.max_price:
                raise RejectError(
                    ErrorCode.REQUEST_INVALID_TRAIL,
                    f"a trail this wide puts the stop at {stop}, outside the price range",
                )
        if limit is not None:
            bound = limit
        elif stop is not None:
            bound = self.protection_price(side, stop)
        else:
            bound = self.protection_price(side, reference)
        bound = min(bound, high) if side == "buy" else max(bound, low)
        return OrderSpec(
            symbol=symbol,
            side=side,
            order_type=order_type,
            time_in_force=command["time_in_force"],
            qty=qty,
            price=bound,
            limit_price=limit,
            stop_price=stop,
            trail_price=trail,
            trail_percent=percent,
        )

    def check_qty(self, side: str, text: str) -> Decimal:
        qty = Decimal(text)
        if qty <= 0 or qty != qty.to_integral_value() or qty > self.max_qty:
            raise RejectError(
                ErrorCode.REQUEST_INVALID_QTY,
                f"qty must be a whole number from 1 to {self.max_qty}, got {text}",
            )
        if side == "buy" and qty % self.lot_size:
            raise RejectError(
                ErrorCode.REQUEST_LOT_SIZE,
                f"buy qty must be a multiple of {self.lot_size}, got {text}",
            )
        return qty.quantize(Decimal(1))

    def check_price(self, command: dict[str, Any], field: str) -> Decimal | None:
        text = command.get(field)
        if text is None:
            return None
        price = Decimal(text)
        if price <= 0 or price > self.max_price:
            raise RejectError(
                ErrorCode.REQUEST_INVALID_PRICE,
                f"{field} must be above 0 and at most {self.max_price}, got {text}",
            )
        if price % self.tick_size:
            raise RejectError(
                ErrorCode.REQUEST_PRICE_TICK,
                f"{field} must be a multiple of {self.tick_size}, got {text}",
            )
        return price.quantize(self.tick_size)

    def fill_increment(self, side: str) -> Decimal:
        """Partial fills come in multiples of this (the rest of an order below it fills whole)."""
        return Decimal(self.lot_size)


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _to_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (price / tick).to_integral_value(rounding=rounding) * tick


def symbol_table(settings: Settings) -> dict[str, SymbolSettings]:
    return {s.symbol: s for s in settings.market.symbols}
