"""BarHistory: the bars the controller serves (`bars.get`, `bars.latest`; docs/alpaca.md section 4).

Two sources, one per feed:
- live feeds (synthetic, external): a 1-minute bar per symbol and minute, made from the
  trades the controller publishes (volume 0 is a price, not a trade: left out), the last
  MAX_MINUTES of them per symbol kept in memory (lost on a restart);
- a replay: the bars of its files, only those complete at or before the last bar time
  the accountant has settled, so a bot never sees a bar ahead of the replay.

Longer timeframes are made from these: N minutes or hours aligned on midnight in the
symbol's market zone, days from midnight to midnight there (a replay's daily bars are
taken as they are). A bar's `t` is its first instant, as Alpaca's.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from actors.controller.bars import MARKET_CLOSE, ReplayBar
from actors.market.rules import Market
from actors.runtime.bus import Message
from protocol.messages import timeframe_seconds
from protocol.values import number, wire_qty

NS = 1_000_000_000
MINUTE = 60 * NS
QUARTER = 15 * MINUTE
HOUR = 60 * MINUTE
DAY = 24 * HOUR
MAX_MINUTES = 4320  # live 1-minute bars kept per symbol: 3 days of round-the-clock trading
VWAP_PLACES = Decimal("0.000001")

# a bar on the wire: [t (ns, its first instant), open, high, low, close, volume, trades,
# vwap]; prices decimal texts, trades and vwap null when the source has none (a replay)
WireBar = list[int | str | None]


@dataclass(slots=True)
class Minute:
    """A source bar: one minute of trades (updated while it lasts) or one bar of a
    replay file. `value` is the sum of price x volume, for the vwap."""

    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int | None = None
    value: Decimal | None = None


def timeframe_width(text: str) -> int:
    """A timeframe's width in ns (DAY for a day); protocol.messages.timeframe_seconds."""
    return timeframe_seconds(text) * NS


@lru_cache(maxsize=4096)
def _midnight(quarter: int, zone: ZoneInfo) -> int:
    """The ns of the midnight, in `zone`, that starts the day of the quarter of an hour
    `quarter` (ns // QUARTER: every zone's offset is a multiple of it)."""
    local = datetime.fromtimestamp(quarter * 900, zone)
    return int(local.replace(hour=0, minute=0, second=0).timestamp()) * NS


def bucket_of(start: int, width: int, zone: ZoneInfo) -> int:
    """The first instant of the bar of `width` that the instant `start` falls in."""
    midnight = _midnight(start // QUARTER, zone)
    if width == DAY:
        return midnight
    return midnight + (start - midnight) // width * width


def combine(key: int, group: Sequence[Minute]) -> WireBar:
    """One bar from source bars in time order."""
    if len(group) == 1:  # most bars of a 1Min request: no sums
        m = group[0]
        vwap = None if m.value is None or not m.volume else m.value / m.volume
        return [
            key,
            number(m.open),
            number(m.high),
            number(m.low),
            number(m.close),
            wire_qty(m.volume),
            m.trades,
            None if vwap is None else number(vwap.quantize(VWAP_PLACES)),
        ]
    volume = sum((m.volume for m in group), Decimal(0))
    counts = [m.trades for m in group]
    values = [m.value for m in group]
    trades = None if None in counts else sum(counts)  # type: ignore[arg-type]
    vwap = None
    if None not in values and volume:
        total = sum(values, Decimal(0))  # type: ignore[arg-type]
        vwap = number((total / volume).quantize(VWAP_PLACES))
    return [
        key,
        number(group[0].open),
        number(max(m.high for m in group)),
        number(min(m.low for m in group)),
        number(group[-1].close),
        wire_qty(volume),
        trades,
        vwap,
    ]


def select(
    source: Sequence[Minute],
    usable: int,
    width: int,
    zone: ZoneInfo,
    start: int,
    end: int,
    descending: bool,
    want: int,
) -> list[WireBar]:
    """Up to `want` bars of `width` whose `t` is from start to end, made from the first
    `usable` source bars (in time order), oldest or newest first."""
    low = bisect_left(source, start, 0, usable, key=_start)
    if descending:
        # a source bar can start up to a day after its bar's t
        high = bisect_right(source, end + DAY + HOUR, low, usable, key=_start)
        indices: Iterator[int] = iter(range(high - 1, low - 1, -1))
    else:
        indices = iter(range(low, usable))
    out: list[WireBar] = []
    group: list[Minute] = []
    key = None
    for n in indices:
        minute = source[n]
        k = bucket_of(minute.start, width, zone)
        if k != key:
            if group and key is not None and start <= key <= end:
                out.append(combine(key, group[::-1] if descending else group))
                if len(out) >= want:
                    return out
            if (k > end and not descending) or (k < start and descending):
                group = []
                break
            group, key = [], k
        group.append(minute)
    if group and key is not None and start <= key <= end and len(out) < want:
        out.append(combine(key, group[::-1] if descending else group))
    return out


def _start(minute: Minute) -> int:
    return minute.start


class BarHistory:
    """Answers bars.get and bars.latest from the live minutes or a replay's bars."""

    def __init__(self, market: Market) -> None:
        self.zones = {
            symbol: ZoneInfo(MARKET_CLOSE[market.rules(symbol).name][0])
            for symbol in market.symbols
        }
        self.minutes: dict[str, deque[Minute]] = {s: deque(maxlen=MAX_MINUTES) for s in self.zones}
        # a replay's: each symbol's intraday bars and daily bars, with when each is complete
        self.intraday: dict[str, list[Minute]] = {}
        self.daily: dict[str, list[Minute]] = {}
        self.complete: dict[tuple[str, bool], list[int]] = {}
        self.settled_ts: Callable[[], int] | None = None  # a replay's: its present

    # SOURCES ---------------------------------------------------------------------------

    def on_trade(self, symbol: str, price: Decimal, volume: Decimal, ts: int) -> None:
        """A published trade goes into its minute's bar."""
        if volume <= 0:
            return
        minutes = self.minutes[symbol]
        start = ts - ts % MINUTE
        last = minutes[-1] if minutes else None
        if last is None or start > last.start:
            minutes.append(Minute(start, price, price, price, price, volume, 1, price * volume))
            return
        if start < last.start:
            return  # out of order (wall time stepped back): not in a closed minute
        last.high = max(last.high, price)
        last.low = min(last.low, price)
        last.close = price
        last.volume += volume
        last.trades = (last.trades or 0) + 1
        last.value = (last.value or Decimal(0)) + price * volume

    def load_replay(self, bars: Sequence[ReplayBar], settled_ts: Callable[[], int]) -> None:
        """A replay's bars (in time order), served once `settled_ts()` reaches theirs."""
        self.settled_ts = settled_ts
        for bar in bars:
            zone = self.zones[bar.symbol]
            last = bar.ts - 1  # the bar's last instant: it covers the time before its stamp
            start = _midnight(last // QUARTER, zone) if bar.daily else last - last % MINUTE
            kept = self.daily if bar.daily else self.intraday
            kept.setdefault(bar.symbol, []).append(
                Minute(start, bar.open, bar.high, bar.low, bar.close, bar.volume)
            )
            self.complete.setdefault((bar.symbol, bar.daily), []).append(bar.ts)

    def source(self, symbol: str, width: int) -> tuple[Sequence[Minute], int]:
        """The source bars of a symbol for a width, and how many of them may be used."""
        if self.settled_ts is None:  # a list: a deque's middle is slow to index
            minutes = list(self.minutes.get(symbol, ()))
            return minutes, len(minutes)
        daily = width == DAY and symbol in self.daily
        bars = (self.daily if daily else self.intraday).get(symbol, [])
        return bars, bisect_right(self.complete.get((symbol, daily), []), self.settled_ts())

    # REQUESTS --------------------------------------------------------------------------

    def bars(
        self,
        symbols: Sequence[str],
        width: int,
        start: int,
        end: int,
        limit: int,
        descending: bool,
        after: tuple[str, int] | None,
    ) -> tuple[dict[str, list[WireBar]], tuple[str, int] | None]:
        """Up to `limit` bars of the symbols, symbol by symbol in alphabetical order,
        after the cursor `after` (a symbol and the `t` of the last bar given), and the
        cursor for the next page (None when nothing is left)."""
        out: dict[str, list[WireBar]] = {}
        left = limit + 1  # one more than asked: whether there is a next page
        for symbol in sorted(set(symbols)):
            if symbol not in self.zones or (after is not None and symbol < after[0]):
                continue
            low, high = start, end
            if after is not None and symbol == after[0]:
                low, high = (
                    (low, min(high, after[1] - 1)) if descending else (max(low, after[1] + 1), high)
                )
            source, usable = self.source(symbol, width)
            found = select(source, usable, width, self.zones[symbol], low, high, descending, left)
            if found:
                out[symbol] = found
                left -= len(found)
            if left == 0:
                break
        if left > 0:
            return out, None
        last_symbol = next(reversed(out))
        out[last_symbol].pop()  # the probe
        if not out[last_symbol]:
            del out[last_symbol]
            last_symbol = next(reversed(out))
        return out, (last_symbol, int(out[last_symbol][-1][0]))  # type: ignore[arg-type]

    def latest(self, symbols: Sequence[str]) -> dict[str, dict[str, WireBar | None]]:
        """Each symbol's latest minute bar, its latest daily bar and the one before."""
        out = {}
        for symbol in sorted(set(symbols)):
            if symbol not in self.zones:
                continue
            zone = self.zones[symbol]
            minutes, usable = self.source(symbol, MINUTE)
            [minute] = select(minutes, usable, MINUTE, zone, -(2**63), 2**63 - 1, True, 1) or [None]
            days, usable = self.source(symbol, DAY)
            daily = select(days, usable, DAY, zone, -(2**63), 2**63 - 1, True, 2)
            if minute is None and not daily:
                continue
            out[symbol] = {
                "minute": minute,
                "daily": daily[0] if daily else None,
                "prev_daily": daily[1] if len(daily) > 1 else None,
            }
        return out

    def answer(self, msg: Message) -> Message:
        """The reply to bars.get or bars.latest, forwarded by the accountant (validated
        by the gateway against protocol.messages GetBars and GetLatestBars)."""
        if msg["type"] == "bars.latest":
            return {"type": "bars.latest", "bars": self.latest(msg["symbols"])}
        after = msg.get("after")
        bars, cursor = self.bars(
            msg["symbols"],
            timeframe_width(msg["timeframe"]),
            msg.get("start") if msg.get("start") is not None else -(2**63),
            msg.get("end") if msg.get("end") is not None else 2**63 - 1,
            msg.get("limit", 1000),
            msg.get("sort") == "desc",
            (after[0], after[1]) if after else None,
        )
        return {"type": "bars", "bars": bars, "next": list(cursor) if cursor else None}
