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
- T+1: shares bought on a trading day may be sold from the next (actors/accountant/accounts.py);
  a sell of an odd lot must sell all the shares that may be sold;
- daily price limits: limit and stop prices within +/-10% of the previous close (20% for
  boards 300xxx and 688xxx, 5% for names marked ST), rounded half-up to the tick; a market
  order's bound stays inside the band.

Every order has a price bound, the least favourable price it may fill at: its limit, or
for market and stop orders a protection price `market_protection_bp` away from the price
they start from (docs/fill-model.md). Reservations are computed at the bound.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from protocol.errors import ErrorCode, RejectError
from protocol.settings import Settings, SymbolSettings
from protocol.values import CENT

ZERO = Decimal(0)
BP = Decimal(10_000)
MAKER, TAKER = "maker", "taker"  # a fill's liquidity: it rested in the book, or it took


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


class Costs(Protocol):
    """What an order that filled `qty` worth `value` in all pays: (commission, tax).

    Fees grow with qty and value, so each fill of an order pays what the order owes in
    all less what it paid: a minimum or a cap applies once per order, however it fills."""

    def fees(self, side: str, qty: Decimal, value: Decimal, liquidity: str) -> Fees: ...


Fees = tuple[Decimal, Decimal]
NO_FEES: Fees = (ZERO, ZERO)


@dataclass(frozen=True, slots=True)
class CnACosts:
    """Commission rate x value half-up to the cent, at least `min_commission`; stamp tax on
    sells and the transfer fee on both sides, each rate x value half-up to the cent."""

    commission_rate: Decimal
    min_commission: Decimal
    stamp_tax_rate: Decimal
    transfer_fee_rate: Decimal = ZERO

    def fees(self, side: str, qty: Decimal, value: Decimal, liquidity: str) -> Fees:
        if not value:
            return NO_FEES
        commission = max(_round(value * self.commission_rate, CENT), self.min_commission)
        stamp = _round(value * self.stamp_tax_rate, CENT) if side == "sell" else ZERO
        return commission, stamp + _round(value * self.transfer_fee_rate, CENT)


@dataclass(frozen=True, slots=True)
class UsEquityCosts:
    """Commission per share half-up to the cent, at least `min_commission` when there is
    any; on sells the SEC fee (rate x value) and the FINRA TAF (per share, at most
    `taf_max`), each rounded up to the cent as the regulators bill them."""

    commission_per_share: Decimal
    min_commission: Decimal
    sec_fee_rate: Decimal
    taf_per_share: Decimal
    taf_max: Decimal

    def fees(self, side: str, qty: Decimal, value: Decimal, liquidity: str) -> Fees:
        if not qty:
            return NO_FEES
        commission = _round(qty * self.commission_per_share, CENT)
        if commission or self.commission_per_share:
            commission = max(commission, self.min_commission)
        if side != "sell":
            return commission, ZERO
        sec = _round(value * self.sec_fee_rate, CENT, ROUND_CEILING)
        taf = min(_round(qty * self.taf_per_share, CENT, ROUND_CEILING), self.taf_max)
        return commission, sec + taf


@dataclass(frozen=True, slots=True)
class CryptoCosts:
    """A maker or taker rate x value, half-up to `cash_unit`; no taxes."""

    maker_fee_rate: Decimal
    taker_fee_rate: Decimal
    cash_unit: Decimal

    def fees(self, side: str, qty: Decimal, value: Decimal, liquidity: str) -> Fees:
        rate = self.maker_fee_rate if liquidity == MAKER else self.taker_fee_rate
        return _round(value * rate, self.cash_unit), ZERO


@dataclass(frozen=True, slots=True)
class Profile:
    """The rules and costs of one symbol: its market's profile with the symbol's own
    tick, lot, step and minimum notional (Market.rules)."""

    name: str
    lot_size: Decimal  # buys in multiples of it; partial fills come in multiples of it
    tick_size: Decimal
    costs: Costs
    max_qty: Decimal
    max_price: Decimal
    market_protection: Decimal  # a fraction: 0.05 for 500 bp
    qty_step: Decimal = Decimal(1)  # every qty a multiple of it (cn_a sells: 1)
    cash_unit: Decimal = CENT  # fees round to it; cost bases split to it
    min_notional: Decimal = ZERO
    t_plus_one: bool = False
    price_limits: bool = False
    odd_lots_sell_all: bool = False
    exchange: bool = False  # exchange mode: users trade with each other (docs/fill-model.md)

    @classmethod
    def for_symbol(cls, settings: Settings, listed: SymbolSettings) -> Profile:
        name = listed.profile or settings.market.profile
        trading = settings.trading
        common = {
            "name": name,
            "max_qty": trading.max_qty,
            "max_price": trading.max_price,
            "market_protection": trading.market_protection_bp / BP,
            "exchange": settings.mode_of(listed) == "exchange",
        }
        costs: Costs
        if name == "cn_a":
            cn = settings.profiles.cn_a
            costs = CnACosts(
                cn.commission_rate, cn.min_commission, cn.stamp_tax_rate, cn.transfer_fee_rate
            )
            profile = cls(
                lot_size=Decimal(cn.lot_size),
                tick_size=cn.tick_size,
                costs=costs,
                min_notional=cn.min_notional,
                t_plus_one=cn.t_plus_one,
                price_limits=cn.price_limits,
                odd_lots_sell_all=cn.odd_lots == "sell_all",
                **common,
            )
        elif name == "us_equity":
            us = settings.profiles.us_equity
            step = us.fraction_step if us.fractional else Decimal(1)
            costs = UsEquityCosts(
                us.commission_per_share,
                us.min_commission,
                us.sec_fee_rate,
                us.taf_per_share,
                us.taf_max,
            )
            profile = cls(
                lot_size=step,
                qty_step=step,
                tick_size=us.tick_size,
                costs=costs,
                min_notional=us.min_notional,
                **common,
            )
        else:
            crypto = settings.profiles.crypto
            costs = CryptoCosts(crypto.maker_fee_rate, crypto.taker_fee_rate, crypto.cash_unit)
            profile = cls(
                lot_size=crypto.qty_step,
                qty_step=crypto.qty_step,
                tick_size=crypto.tick_size,
                costs=costs,
                min_notional=crypto.min_notional,
                cash_unit=crypto.cash_unit,
                **common,
            )
        overrides: dict[str, Any] = {
            key: value
            for key in ("tick_size", "lot_size", "qty_step", "min_notional")
            if (value := getattr(listed, key)) is not None
        }
        if "qty_step" in overrides and "lot_size" not in overrides and name != "cn_a":
            overrides["lot_size"] = overrides["qty_step"]  # one step for both
        if "lot_size" in overrides and "qty_step" not in overrides and name != "cn_a":
            overrides["qty_step"] = overrides["lot_size"]
        return replace(profile, **overrides) if overrides else profile

    # COSTS ---------------------------------------------------------------------------

    def fees(self, side: str, qty: Decimal, value: Decimal, liquidity: str = TAKER) -> Fees:
        """Commission and tax of an order that filled `qty` worth `value` in all."""
        return self.costs.fees(side, qty, value, liquidity)

    def fill_fees(
        self,
        side: str,
        before: tuple[Decimal, Decimal],
        fill: tuple[Decimal, Decimal],
        paid: Fees,
        liquidity: str = TAKER,
    ) -> Fees:
        """Commission and tax of a fill (qty, value) of an order that had filled `before`
        (qty, value) and paid `paid`: what the order owes in all, less what it paid."""
        commission, tax = self.fees(side, before[0] + fill[0], before[1] + fill[1], liquidity)
        return max(ZERO, commission - paid[0]), max(ZERO, tax - paid[1])

    def cash_to_reserve(
        self,
        side: str,
        qty: Decimal,
        price: Decimal,
        before: tuple[Decimal, Decimal] = (ZERO, ZERO),
        paid: Fees = NO_FEES,
    ) -> Decimal:
        """Cash an open order holds back so that filling its `qty` left can never overdraw.

        A buy fills at its bound `price` or better, so qty x price plus the fees that value
        adds (at the dearer of maker and taker) is the most it can cost. A sell brings in
        qty x price at least, less fees; only a sell so small that fees exceed proceeds
        needs cash, most at the bound and most after its smallest next fill (one fill
        increment, or all that is left), which may have to pay a whole minimum: each fill
        after it brings in more than the fees it adds.
        """
        value = qty * price
        commission, tax = self._dearest_fees(side, before, (qty, value), paid)
        if side == "buy":
            return value + commission + tax
        first_qty = min(qty, self.fill_increment(side))
        first = first_qty * price
        first_fees = sum(self._dearest_fees(side, before, (first_qty, first), paid))
        return max(ZERO, commission + tax - value, first_fees - first)

    def _dearest_fees(
        self,
        side: str,
        before: tuple[Decimal, Decimal],
        fill: tuple[Decimal, Decimal],
        paid: Fees,
    ) -> Fees:
        maker = self.fill_fees(side, before, fill, paid, MAKER)
        taker = self.fill_fees(side, before, fill, paid, TAKER)
        return max(maker, taker, key=sum)

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
        listed: SymbolSettings,
        command: dict[str, Any],
        reference: Decimal,
        prev_close: Decimal | None = None,
    ) -> OrderSpec:
        """Validate an `order.new` command (fields already fit its type, protocol.orders)
        against this market; `reference` is the last price, a market order's start, and
        `prev_close` (default: the symbol table's) sets the day's price limits.

        Raises:
            RejectError: REQUEST_INVALID_QTY, REQUEST_LOT_SIZE, REQUEST_INVALID_PRICE,
                REQUEST_PRICE_TICK, REQUEST_PRICE_LIMIT, REQUEST_INVALID_TRAIL or
                REQUEST_MIN_NOTIONAL.
        """
        symbol, side, order_type = command["symbol"], command["side"], command["order_type"]
        low, high = self.price_band(listed, prev_close or listed.prev_close)
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
        notional = qty * (limit or stop or reference)
        if notional < self.min_notional:
            raise RejectError(
                ErrorCode.REQUEST_MIN_NOTIONAL,
                f"qty x price is {notional.normalize():f}, under the minimum {self.min_notional}",
            )
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
        """A qty above 0 and at most max_qty, a multiple of the step, and for buys of the
        lot. Whole-share markets (step 1) refuse fractions as REQUEST_INVALID_QTY."""
        qty = Decimal(text)
        whole = self.qty_step == 1
        if qty <= 0 or qty > self.max_qty or (whole and qty != qty.to_integral_value()):
            kind = "a whole number" if whole else "a number"
            raise RejectError(
                ErrorCode.REQUEST_INVALID_QTY,
                f"qty must be {kind} above 0 and at most {self.max_qty}, got {text}",
            )
        if qty % self.qty_step:
            raise RejectError(
                ErrorCode.REQUEST_LOT_SIZE,
                f"qty must be a multiple of {self.qty_step}, got {text}",
            )
        if side == "buy" and qty % self.lot_size:
            raise RejectError(
                ErrorCode.REQUEST_LOT_SIZE,
                f"buy qty must be a multiple of {self.lot_size}, got {text}",
            )
        return qty.quantize(Decimal(1)) if qty == qty.to_integral_value() else qty.normalize()

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
        return self.lot_size


def _round(amount: Decimal, unit: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    return amount.quantize(unit, rounding=rounding)


def _to_tick(price: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (price / tick).to_integral_value(rounding=rounding) * tick


class Market:
    """The symbol table and each symbol's rules (its profile with its own tick and lot)."""

    def __init__(self, symbols: dict[str, SymbolSettings], profiles: dict[str, Profile]) -> None:
        self.symbols = symbols
        self._profiles = profiles

    @classmethod
    def from_settings(cls, settings: Settings) -> Market:
        symbols = {s.symbol: s for s in settings.market.symbols}
        return cls(
            symbols, {s: Profile.for_symbol(settings, listed) for s, listed in symbols.items()}
        )

    def __contains__(self, symbol: str) -> bool:
        return symbol in self._profiles

    def rules(self, symbol: str) -> Profile:
        return self._profiles[symbol]

    def listed(self, symbol: str) -> SymbolSettings:
        """The symbol's row, or REQUEST_UNKNOWN_SYMBOL."""
        listed = self.symbols.get(symbol)
        if listed is None:
            raise RejectError(ErrorCode.REQUEST_UNKNOWN_SYMBOL, f"no symbol {symbol[:32]!r}")
        return listed

    def check_order(
        self, command: dict[str, Any], reference: Decimal, prev_close: Decimal | None = None
    ) -> OrderSpec:
        """Profile.check_order with the symbol's rules; REQUEST_UNKNOWN_SYMBOL first."""
        listed = self.listed(command["symbol"])
        return self.rules(listed.symbol).check_order(listed, command, reference, prev_close)

    def price_band(self, symbol: str, prev_close: Decimal) -> tuple[Decimal, Decimal]:
        return self.rules(symbol).price_band(self.symbols[symbol], prev_close)
