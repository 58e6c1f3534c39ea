"""Market rule profiles: what an order must look like and what a fill costs. Pure functions.

Profile `cn_a` (China A-shares):
- buy qty a positive multiple of the lot (100); sell any positive whole qty up to what is
  held and not reserved by other open sells;
- price a positive multiple of the tick (0.01 CNY);
- commission = commission_rate x fill value, rounded half-up to the cent, at least
  min_commission (5.00 CNY) per fill;
- stamp tax on sells only = stamp_tax_rate x fill value, rounded half-up to the cent.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from protocol.errors import ErrorCode, RejectError
from protocol.settings import Settings, SymbolSettings
from protocol.values import CENT

ZERO = Decimal(0)


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
        )

    # COSTS ---------------------------------------------------------------------------

    def commission(self, value: Decimal) -> Decimal:
        """Commission of one fill worth `value`: rate x value to the cent, at least the minimum."""
        return max(_cents(value * self.commission_rate), self.min_commission)

    def tax(self, side: str, value: Decimal) -> Decimal:
        """Stamp tax of one fill: sells only, rate x value to the cent."""
        return _cents(value * self.stamp_tax_rate) if side == "sell" else ZERO

    def fees(self, side: str, value: Decimal) -> tuple[Decimal, Decimal]:
        return self.commission(value), self.tax(side, value)

    def cash_to_reserve(self, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Cash an open order holds back so that filling it can never overdraw the account.

        A buy fills at its limit or better, so qty x limit plus that value's commission is
        the most it can cost. A sell adds qty x price, at least, minus fees; only a sell so
        small that fees exceed proceeds needs cash, and the worst case is at the limit.
        """
        value = qty * price
        commission, tax = self.fees(side, value)
        if side == "buy":
            return value + commission
        return max(ZERO, commission + tax - value)

    # ORDER CHECKS --------------------------------------------------------------------

    def check_order(
        self, symbols: dict[str, SymbolSettings], symbol: str, side: str, qty: str, price: str
    ) -> tuple[Decimal, Decimal]:
        """Validate an order's symbol, qty and price; return qty and price as exact decimals.

        Raises:
            RejectError: REQUEST_UNKNOWN_SYMBOL, REQUEST_INVALID_QTY, REQUEST_LOT_SIZE,
                REQUEST_INVALID_PRICE or REQUEST_PRICE_TICK.
        """
        if symbol not in symbols:
            raise RejectError(ErrorCode.REQUEST_UNKNOWN_SYMBOL, f"no symbol {symbol[:32]!r}")
        q = Decimal(qty)
        if q <= 0 or q != q.to_integral_value() or q > self.max_qty:
            raise RejectError(
                ErrorCode.REQUEST_INVALID_QTY,
                f"qty must be a whole number from 1 to {self.max_qty}, got {qty}",
            )
        if side == "buy" and q % self.lot_size:
            raise RejectError(
                ErrorCode.REQUEST_LOT_SIZE,
                f"buy qty must be a multiple of {self.lot_size}, got {qty}",
            )
        p = Decimal(price)
        if p <= 0 or p > self.max_price:
            raise RejectError(
                ErrorCode.REQUEST_INVALID_PRICE,
                f"price must be above 0 and at most {self.max_price}, got {price}",
            )
        if p % self.tick_size:
            raise RejectError(
                ErrorCode.REQUEST_PRICE_TICK,
                f"price must be a multiple of {self.tick_size}, got {price}",
            )
        return q.quantize(Decimal(1)), p.quantize(self.tick_size)


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def symbol_table(settings: Settings) -> dict[str, SymbolSettings]:
    return {s.symbol: s for s in settings.market.symbols}
