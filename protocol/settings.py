"""Frozen Settings for every process, built once by run.py from a TOML file, env and flags.

Precedence: defaults < TOML file < environment (`TRADESERVER_<SECTION>__<KEY>`) < flags.
Unknown keys are refused. run.py writes the resolved Settings to the data dir as JSON and
each child process reads that file; nothing reads the environment later.
"""

from __future__ import annotations

import csv
import hashlib
import ipaddress
import os
import tempfile
import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENV_PREFIX = "TRADESERVER_"
# Unix socket paths are limited to about 107 bytes; longer data dirs use a /tmp folder.
_MAX_IPC_DIR = 80


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


ProcessName = Literal["controller", "matcher", "accountant", "gateway"]
PROCESS_NAMES: tuple[ProcessName, ...] = ("controller", "matcher", "accountant", "gateway")


class ServerSettings(_Section):
    data_dir: str = "runtime"
    database_url: str = ""  # default: sqlite:///<data_dir>/tradeserver.db
    log_level: str = "INFO"
    # each process's log becomes <name>.log.1 past this size; older ones .2 ... up to
    # log_backups, the oldest dropped
    log_max_bytes: int = Field(default=50_000_000, ge=10_000)
    log_backups: int = Field(default=5, ge=1, le=100)
    # The processes this run.py supervises: all four, or some of them on each of several
    # hosts, which then reach each other over tcp endpoints (docs/reliability.md, CURVE).
    processes: list[ProcessName] = Field(default=list(PROCESS_NAMES), min_length=1)
    # bench/ only: POST /v1/bench/order decodes an order body and returns a fixed order,
    # touching nothing: the bare endpoint HTTP order entry is measured against
    bench_endpoint: bool = False

    @field_validator("processes")
    @classmethod
    def _each_once(cls, processes: list[ProcessName]) -> list[ProcessName]:
        if len(set(processes)) != len(processes):
            raise ValueError("server.processes lists a process twice")
        return processes


class EndpointSettings(_Section):
    """Where each socket lives. Empty internal endpoints become ipc:// sockets."""

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    client_api: str = "tcp://127.0.0.1:5555"  # ROUTER: client requests and private events
    client_pub: str = "tcp://127.0.0.1:5556"  # PUB: public market data and control state
    controller_in: str = ""
    matcher_in: str = ""
    accountant_in: str = ""
    control_pub: str = ""  # controller PUB: ctl and md.<symbol> broadcasts
    gateway_in: str = ""  # gateway PULL: replies and private events from the other processes
    quotes_in: str = ""  # controller PULL: trades pushed in by an external feed (feed=external)


# The internal endpoints and the process that binds each: a socket connecting to one needs
# that process's public key when the link runs CURVE.
BOUND_BY: dict[str, ProcessName] = {
    "controller_in": "controller",
    "control_pub": "controller",
    "matcher_in": "matcher",
    "accountant_in": "accountant",
    "gateway_in": "gateway",
}


class SecuritySettings(_Section):
    """CURVE on the internal tcp links (docs/reliability.md, section 6). ipc:// links are
    guarded by their folder, private to the user, and never use it."""

    curve: bool = False
    keys_dir: str = ""  # default <data_dir>/keys: <process>.key (public), .key_secret
    # With curve: the addresses allowed to connect to internal tcp endpoints (empty: any
    # address, as long as it holds one of the deployment's keys).
    allow: list[str] = []


ProfileName = Literal["cn_a", "us_equity", "crypto"]
# paper: orders fill against the market feed; exchange: users' orders trade with each other
# in one price-time book per symbol (docs/fill-model.md). A symbol's mode is its own, else
# its profile's, else [market] mode.
MarketMode = Literal["paper", "exchange"]


class SymbolSettings(_Section):
    """One row of the symbol table; empty fields take the profile's values."""

    symbol: str = Field(min_length=1, max_length=32)
    name: str
    prev_close: Decimal = Field(gt=0)
    profile: ProfileName | None = None  # default: market.profile
    tick_size: Decimal | None = Field(default=None, gt=0)
    lot_size: Decimal | None = Field(default=None, gt=0)  # buys in multiples of it
    qty_step: Decimal | None = Field(default=None, gt=0)  # every qty a multiple of it
    min_notional: Decimal | None = Field(default=None, ge=0)  # qty x price at least this
    st: bool = False  # cn_a: a "special treatment" name, daily limit +/-5%
    price_limit_pct: Decimal | None = Field(default=None, gt=0, lt=1)  # overrides the board's
    mode: MarketMode | None = None  # default: its profile's mode, else market.mode

    @model_validator(mode="after")
    def _lot_on_step(self) -> SymbolSettings:
        if self.lot_size and self.qty_step and self.lot_size % self.qty_step:
            raise ValueError(f"{self.symbol}: lot_size must be a multiple of qty_step")
        if self.prev_close and self.tick_size and self.prev_close % self.tick_size:
            raise ValueError(f"{self.symbol}: prev_close must be a multiple of tick_size")
        return self


DEFAULT_SYMBOLS = (
    SymbolSettings(symbol="600000", name="SPD Bank", prev_close=Decimal("8.50")),
    SymbolSettings(symbol="000001", name="Ping An Bank", prev_close=Decimal("11.20")),
    SymbolSettings(symbol="000725", name="BOE Technology", prev_close=Decimal("4.10")),
    SymbolSettings(symbol="600519", name="Kweichow Moutai", prev_close=Decimal("1500.00")),
    # US names, so that a bot written for Alpaca's API runs on the defaults (docs/alpaca.md)
    SymbolSettings(
        symbol="AAPL", name="Apple Inc.", prev_close=Decimal("230.00"), profile="us_equity"
    ),
    SymbolSettings(
        symbol="MSFT", name="Microsoft Corp.", prev_close=Decimal("420.00"), profile="us_equity"
    ),
    SymbolSettings(
        symbol="SPY",
        name="SPDR S&P 500 ETF Trust",
        prev_close=Decimal("600.00"),
        profile="us_equity",
    ),
)


REPLAY_SPEED = r"max|lockstep|x[0-9]+(\.[0-9]+)?"  # a replay's speeds, wherever one is given


class MarketSettings(_Section):
    profile: ProfileName = "cn_a"  # the rules of every symbol that names none
    mode: MarketMode = "paper"  # of every symbol whose profile and row name none
    # synthetic: the built-in walk; external: trades pushed in (quotes_in); replay: bars
    # from CSV files (docs/replay.md), on market time
    feed: Literal["synthetic", "external", "replay"] = "synthetic"
    replay_files: tuple[str, ...] = ()  # empty: the shipped sample (examples/data)
    # max: as fast as it goes; xN: N times real time; lockstep: each bar time waits until
    # every bot that joined has answered replay.done (docs/replay.md)
    replay_speed: str = Field(default="max", pattern=f"^({REPLAY_SPEED})$")
    replay_start: date | None = None  # replay bars on or after this day (the market's date)
    replay_end: date | None = None  # ... and on or before this day
    replay_bots: int = Field(default=0, ge=0, le=1000)  # lockstep: wait for this many to join
    replay_step_timeout: float = Field(default=10.0, gt=0)  # lockstep: s a bar time waits
    replay_on_timeout: Literal["continue", "stop"] = "continue"  # when a bot does not answer
    # lockstep: an Alpaca bot is done with a bar time when it asks GET /v2/clock after the
    # bars, or after this many seconds without a request of its own (docs/alpaca.md)
    replay_alpaca_idle: float = Field(default=0.2, gt=0, le=60)

    @field_validator("replay_speed")
    @classmethod
    def _speed_above_zero(cls, speed: str) -> str:
        if speed.startswith("x") and float(speed[1:]) <= 0:
            raise ValueError('replay_speed: "max", "lockstep", or "x" and a factor above 0 ("x60")')
        return speed

    tick_interval: float = Field(default=0.5, gt=0)  # seconds between ticks of one symbol
    volatility_bp: int = Field(default=10, ge=0)  # std-dev of one step, basis points
    seed: int = 20170101
    symbols: tuple[SymbolSettings, ...] = DEFAULT_SYMBOLS
    # a CSV symbol table with SymbolSettings' columns; when set, it replaces `symbols`
    symbols_file: str = ""


class CnASettings(_Section):
    """China A-shares (docs/market-rules.md)."""

    lot_size: int = Field(default=100, gt=0)
    tick_size: Decimal = Field(default=Decimal("0.01"), gt=0)
    commission_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    min_commission: Decimal = Field(default=Decimal("5.00"), ge=0)  # per order
    stamp_tax_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)  # sells
    transfer_fee_rate: Decimal = Field(default=Decimal(0), ge=0, lt=1)  # both sides
    t_plus_one: bool = True  # shares bought on a trading day are sellable from the next
    price_limits: bool = True  # orders outside the daily band around prev_close are refused
    odd_lots: Literal["sell_all", "any"] = "sell_all"  # an odd-lot sell sells all it may, or any
    min_notional: Decimal = Field(default=Decimal(0), ge=0)
    mode: MarketMode | None = None  # paper or exchange; default: market.mode
    # exchange mode on the cn_a calendar: the opening (09:15-09:25) and closing (14:57-15:00)
    # call auctions (docs/market-rules.md 1.9)
    call_auctions: bool = True


class UsEquitySettings(_Section):
    """US equities (docs/market-rules.md); fees in USD, to the cent."""

    tick_size: Decimal = Field(default=Decimal("0.01"), gt=0)
    fractional: bool = False  # qty in steps of fraction_step instead of whole shares
    fraction_step: Decimal = Field(default=Decimal("0.000001"), gt=0, le=1)
    commission_per_share: Decimal = Field(default=Decimal(0), ge=0)
    min_commission: Decimal = Field(default=Decimal(0), ge=0)  # per order, when it has any
    sec_fee_rate: Decimal = Field(default=Decimal("0.0000278"), ge=0, lt=1)  # sells, x value
    taf_per_share: Decimal = Field(default=Decimal("0.000166"), ge=0)  # sells, FINRA TAF
    taf_max: Decimal = Field(default=Decimal("8.30"), ge=0)  # per order
    min_notional: Decimal = Field(default=Decimal(0), ge=0)
    mode: MarketMode | None = None  # paper or exchange; default: market.mode


class CryptoSettings(_Section):
    """Crypto spot pairs, traded around the clock (docs/market-rules.md)."""

    tick_size: Decimal = Field(default=Decimal("0.01"), gt=0)
    qty_step: Decimal = Field(default=Decimal("0.00001"), gt=0)
    min_notional: Decimal = Field(default=Decimal("10"), ge=0)
    maker_fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    taker_fee_rate: Decimal = Field(default=Decimal("0.001"), ge=0, lt=1)
    # what fees round to; at least 1e-8, the finest amount the wire shows
    cash_unit: Decimal = Field(
        default=Decimal("0.00000001"), ge=Decimal("0.00000001"), le=Decimal("0.01")
    )
    mode: MarketMode | None = None  # paper or exchange; default: market.mode


class ProfileSettings(_Section):
    cn_a: CnASettings = CnASettings()
    us_equity: UsEquitySettings = UsEquitySettings()
    crypto: CryptoSettings = CryptoSettings()


class TradingSettings(_Section):
    fill_mode: Literal["wait", "instant"] = "wait"
    max_qty: Decimal = Field(default=Decimal(100_000_000), gt=0)
    max_price: Decimal = Field(default=Decimal("1000000"), gt=0)
    # the fill model (docs/fill-model.md)
    participation_rate: Decimal = Field(default=Decimal("0.25"), gt=0, le=1)
    slippage_ticks: int = Field(default=0, ge=0)
    slippage_bp: Decimal = Field(default=Decimal(0), ge=0, lt=10_000)
    market_protection_bp: Decimal = Field(default=Decimal(500), gt=0, lt=10_000)


class ControlSettings(_Section):
    initial_state: Literal["running", "paused", "stopped"] = "running"
    # always | cn_a (the XSHG calendar) | us_equity (XNYS) | crypto (always) |
    # hours (the daily `hours` in `timezone`, every day) | profile (each symbol its
    # profile's: cn_a, us_equity or crypto)
    sessions: Literal["always", "cn_a", "us_equity", "crypto", "hours", "profile"] = "always"
    hours: tuple[str, ...] = ("09:30-11:30", "13:00-15:00")  # HH:MM[:SS]-HH:MM[:SS]
    timezone: str = "Asia/Shanghai"
    heartbeat_interval: float = Field(default=1.0, gt=0)
    # wall | market: time is the `ts` of the trades an external feed pushes (runtime/clock.py)
    clock: Literal["wall", "market"] = "wall"

    @field_validator("hours")
    @classmethod
    def _hours_in_order(cls, hours: tuple[str, ...]) -> tuple[str, ...]:
        edges = [edge for window in session_windows(hours) for edge in window]
        if not hours or edges != sorted(set(edges)):
            raise ValueError("hours: windows like 09:30-11:30, in order, not overlapping")
        return hours

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone: unknown zone {name!r}") from None
        return name


def session_windows(hours: tuple[str, ...]) -> list[tuple[int, int]]:
    """'09:30-11:30' style windows as (start, end) seconds after midnight.

    Raises:
        ValueError: a window that is not HH:MM[:SS]-HH:MM[:SS].
    """
    windows = []
    for window in hours:
        start, _, end = window.partition("-")
        windows.append((_seconds(start), _seconds(end)))
    return windows


def _seconds(text: str) -> int:
    parts = text.strip().split(":")
    two_digits = all(p.isascii() and p.isdigit() and len(p) == 2 for p in parts)
    if len(parts) not in (2, 3) or not two_digits:
        raise ValueError(f"hours: {text!r} is not HH:MM or HH:MM:SS")
    h, m, s = (int(p) for p in (*parts, "00")[:3])
    if h > 23 or m > 59 or s > 59:
        raise ValueError(f"hours: {text!r} is not a time of day")
    return h * 3600 + m * 60 + s


class StatsSettings(_Section):
    snapshot_interval: float = Field(default=60.0, gt=0)


class LedgerSettings(_Section):
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"


class LimitSettings(_Section):
    max_message_bytes: int = Field(default=64 * 1024, ge=1024)
    request_timeout: float = Field(default=10.0, gt=0)
    max_history_page: int = Field(default=1000, gt=0)
    # Requests per second each token may send, on average (0: no limit), and how many it
    # may send at once after a quiet spell; beyond, REQUEST_RATE_LIMITED (HTTP 429).
    rate_per_user: float = Field(default=1000.0, ge=0)
    rate_burst: int = Field(default=2000, ge=1)
    # Requests with a token the gateway has not seen accepted (a login with a made-up or
    # wrong token, or a user's first) per client address (per connection over ipc), on
    # average and at once; beyond, REQUEST_RATE_LIMITED before the accountant is asked.
    unverified_rate: float = Field(default=50.0, ge=0)
    unverified_burst: int = Field(default=200, ge=1)
    # HTTP connections (gateway/connections.py): at once, from one client address, and the
    # seconds a connection has to send a request's headers; beyond, it is closed
    http_max_connections: int = Field(default=4096, ge=16)
    http_max_per_address: int = Field(default=1024, ge=1)
    http_header_timeout: float = Field(default=10.0, gt=0)
    # Internal links (actors/runtime/streams.py): messages a socket queues before a PUB drops or a
    # PUSH waits, and frames each link keeps to resend what a receiver missed.
    internal_hwm: int = Field(default=1_000_000, ge=1)
    internal_retain: int = Field(default=10_000, ge=1)


class DemoSettings(_Section):
    create_user: bool = True
    name: str = "demo"
    cash: Decimal = Field(default=Decimal("1000000.00"), gt=0)


class BacktestSettings(_Section):
    """What `POST /v1/backtests` may use: bar files by name from `data_folder` (default the
    shipped examples/data), and bots by name, each a command line (docs/backtest.md)."""

    data_folder: str = ""
    bots: dict[str, str] = Field(
        default_factory=lambda: {"ma_cross": "python examples/ma_cross.py"}
    )


class AgentSettings(_Section):
    """The liquidity agents (docs/agents.md): clients of the public API with users of their
    own that make a market in the exchange-mode symbols, run as one supervised process.

    Sizes are in round lots: 100 shares for cn_a and us_equity, for crypto the smallest
    power-of-ten multiple of the lot worth 100 or more (the synthetic feed's volume unit).
    Prices move in agent ticks: the symbol's tick, or `tick_bp` basis points of the price
    where that is more (1.50 for a 1500.00 stock; the synthetic walk's step is about
    `[market] volatility_bp`), so that every symbol quotes alike."""

    enabled: bool = True  # start them when some symbol is in exchange mode
    symbols: tuple[str, ...] = ()  # the exchange-mode symbols they trade; empty: all
    seed: int = 20170101  # each agent's random numbers: same seed and inputs, same orders
    cash: Decimal = Field(default=Decimal("10000000"), gt=0, le=10_000_000_000)  # each
    shares: int = Field(default=100, ge=0)  # round lots deposited per agent, its symbol's
    tick_bp: Decimal = Field(default=Decimal(10), ge=0, lt=1000)
    # market makers, per symbol: `levels` post-only bids and asks a side, the first
    # `spread_ticks` from the reference, `level_ticks` apart, `size` lots each; moved when
    # the reference has moved more than `requote_ticks`, refilled when one fills; shifted
    # against the inventory by up to `skew_ticks`; no bids (asks) once `inventory_limit`
    # lots are bought (sold) since the deposit
    market_makers: int = Field(default=2, ge=0, le=20)
    levels: int = Field(default=5, ge=1, le=50)
    spread_ticks: int = Field(default=1, ge=1, le=1000)
    level_ticks: int = Field(default=1, ge=1, le=1000)
    size: int = Field(default=1, ge=1, le=10_000)
    requote_ticks: int = Field(default=2, ge=1, le=1000)
    skew_ticks: int = Field(default=2, ge=0, le=1000)
    inventory_limit: int = Field(default=20, ge=1, le=1_000_000)
    # noise traders, per symbol: every `noise_interval` s on average, a market order or an
    # IOC limit `noise_cross_ticks` through the reference, 1 to `noise_size` lots, buying
    # less often the more it holds (at `inventory_limit` lots either way, one side only)
    noise_traders: int = Field(default=2, ge=0, le=20)
    noise_interval: float = Field(default=2.0, gt=0, le=3600)
    noise_size: int = Field(default=2, ge=1, le=10_000)
    noise_cross_ticks: int = Field(default=3, ge=0, le=1000)
    # momentum traders, per symbol: every `momentum_interval` s, `momentum_size` lots at
    # market in the direction the trades of the last `momentum_lookback` s moved, if by
    # `momentum_ticks` or more, up to `momentum_limit` lots either way
    momentum_traders: int = Field(default=1, ge=0, le=20)
    momentum_interval: float = Field(default=2.0, gt=0, le=3600)
    momentum_lookback: float = Field(default=10.0, gt=0, le=86_400)
    momentum_ticks: int = Field(default=3, ge=1, le=1000)
    momentum_size: int = Field(default=1, ge=1, le=10_000)
    momentum_limit: int = Field(default=10, ge=1, le=1_000_000)


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    endpoints: EndpointSettings = EndpointSettings()
    market: MarketSettings = MarketSettings()
    trading: TradingSettings = TradingSettings()
    profiles: ProfileSettings = ProfileSettings()
    control: ControlSettings = ControlSettings()
    stats: StatsSettings = StatsSettings()
    ledger: LedgerSettings = LedgerSettings()
    limits: LimitSettings = LimitSettings()
    demo: DemoSettings = DemoSettings()
    backtest: BacktestSettings = BacktestSettings()
    security: SecuritySettings = SecuritySettings()
    agents: AgentSettings = AgentSettings()

    @model_validator(mode="after")
    def _plain_tcp_stays_on_this_host(self) -> Settings:
        """An internal link in the clear must not leave the machine: its messages are
        trusted (orders, fills, tokens' hashes) and carry no authentication of their own."""
        if self.security.curve:
            return self
        for role in BOUND_BY:
            endpoint = getattr(self.endpoints, role)
            if endpoint.startswith("tcp://") and not _loopback(endpoint):
                raise ValueError(
                    f"endpoints.{role} = {endpoint!r} leaves this host: set "
                    "security.curve = true to encrypt and authenticate internal links "
                    "(docs/reliability.md), or bind it to 127.0.0.1"
                )
        return self

    @field_validator("market")
    @classmethod
    def _symbols_unique(cls, market: MarketSettings) -> MarketSettings:
        names = [s.symbol for s in market.symbols]
        if len(names) != len(set(names)):
            raise ValueError("market.symbols lists a symbol twice")
        return market

    @model_validator(mode="after")
    def _prev_closes_on_the_tick(self) -> Settings:
        for listed in self.market.symbols:
            profile = getattr(self.profiles, listed.profile or self.market.profile)
            tick = listed.tick_size or profile.tick_size
            if listed.prev_close % tick:
                raise ValueError(
                    f"market.symbols: {listed.symbol} prev_close {listed.prev_close} "
                    f"is not a multiple of its tick {tick}"
                )
            if (listed.profile or self.market.profile) == "cn_a" and listed.qty_step:
                lot = listed.lot_size or self.profiles.cn_a.lot_size
                if lot % listed.qty_step:
                    raise ValueError(
                        f"market.symbols: {listed.symbol} lot {lot} is not a multiple of "
                        f"its qty_step {listed.qty_step}"
                    )
        return self

    def mode_of(self, listed: SymbolSettings) -> MarketMode:
        """A symbol's mode: its own, else its profile's, else the market's."""
        profile = getattr(self.profiles, listed.profile or self.market.profile)
        return listed.mode or profile.mode or self.market.mode

    def exchange_symbols(self) -> list[str]:
        return [s.symbol for s in self.market.symbols if self.mode_of(s) == "exchange"]

    @model_validator(mode="after")
    def _market_clock_needs_market_time(self) -> Settings:
        if self.control.clock == "market" and self.market.feed == "synthetic":
            raise ValueError(
                'control.clock = "market" takes its time from market.feed = "external" or "replay"'
            )
        if self.market.feed == "replay" and (
            self.control.clock != "market" or self.control.sessions != "profile"
        ):
            raise ValueError(
                "market.feed = \"replay\" runs on the bars' time with each market's calendar: "
                'set control.clock = "market" and control.sessions = "profile"'
            )
        if self.market.feed == "replay" and self.exchange_symbols():
            raise ValueError(
                'market.mode = "exchange" does not run on a replay yet: its symbols '
                f"{', '.join(self.exchange_symbols()[:5])} trade on a live feed only"
            )
        start, end = self.market.replay_start, self.market.replay_end
        if start and end and start > end:
            raise ValueError(f"market.replay_start {start} is after market.replay_end {end}")
        return self

    # Derived paths; valid once resolve() has filled the endpoints.
    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir)

    @property
    def database_url(self) -> str:
        return self.server.database_url or f"sqlite:///{self.data_dir / 'tradeserver.db'}"

    def log_path(self, process: str) -> Path:
        return self.data_dir / "logs" / f"{process}.log"

    @property
    def keys_dir(self) -> Path:
        return Path(self.security.keys_dir or self.data_dir / "keys")


def _loopback(endpoint: str) -> bool:
    """tcp://127.x.x.x:port, tcp://localhost:port or tcp://[::1]:port."""
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """TRADESERVER_TRADING__FILL_MODE=instant becomes {"trading": {"fill_mode": "instant"}}."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        if len(path) != 2 or not all(path):
            raise ValueError(f"{name}: expected {ENV_PREFIX}<SECTION>__<KEY>")
        tree.setdefault(path[0], {})[path[1]] = value
    return tree


def _ipc_dir(data_dir: Path) -> Path:
    """<data_dir>/sock, or, when that path is too long for a socket, a folder of this user's
    in the temp dir (run.py creates it private and refuses one it does not own)."""
    local = data_dir / "sock"
    if len(str(local)) <= _MAX_IPC_DIR:
        return local
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tradeserver-{os.getuid()}-{digest}"


def resolve(settings: Settings) -> Settings:
    """Make the data dir absolute and give every empty internal endpoint an ipc:// path."""
    data_dir = Path(settings.server.data_dir).expanduser().resolve()
    ipc = _ipc_dir(data_dir)
    endpoints = settings.endpoints.model_dump()
    for role in (
        "controller_in",
        "matcher_in",
        "accountant_in",
        "gateway_in",
        "control_pub",
        "quotes_in",
    ):
        if not endpoints[role]:
            endpoints[role] = f"ipc://{ipc / role}"
    server = settings.server.model_copy(update={"data_dir": str(data_dir)})
    return settings.model_copy(
        update={"server": server, "endpoints": EndpointSettings(**endpoints)}
    )


def build_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
    flags: dict[str, Any] | None = None,
) -> Settings:
    """Defaults < TOML file < environment < flags, then resolve().

    Raises:
        pydantic.ValidationError: an unknown key or a bad value, naming where it is.
    """
    tree: dict[str, Any] = {}
    if config_file is not None:
        with open(config_file, "rb") as fh:
            tree = tomllib.load(fh)
    tree = _merge(tree, _env_overrides(dict(os.environ if environ is None else environ)))
    tree = _merge(tree, flags or {})
    base = Path(config_file).parent if config_file is not None else Path()
    symbols_file = tree.get("market", {}).get("symbols_file")
    if symbols_file:
        tree["market"]["symbols"] = load_symbols(base / Path(symbols_file).expanduser())
    replay_files = tree.get("market", {}).get("replay_files")
    if isinstance(replay_files, list | tuple):  # relative to the config file, for the children
        tree["market"]["replay_files"] = [
            str((base / Path(str(f)).expanduser()).resolve()) for f in replay_files
        ]
    keys_dir = tree.get("security", {}).get("keys_dir")
    if isinstance(keys_dir, str) and keys_dir:
        tree["security"]["keys_dir"] = str((base / Path(keys_dir).expanduser()).resolve())
    data_folder = tree.get("backtest", {}).get("data_folder")
    if isinstance(data_folder, str) and data_folder:
        tree["backtest"]["data_folder"] = str((base / Path(data_folder).expanduser()).resolve())
    return resolve(Settings.model_validate(tree))


SYMBOL_COLUMNS = tuple(SymbolSettings.model_fields)


def load_symbols(path: Path) -> list[SymbolSettings]:
    """Read a CSV symbol table: a header naming columns of SymbolSettings (symbol, name and
    prev_close required), one symbol per row; empty cells take the profile's values.

    Raises:
        ValueError: naming the file and line of the first bad row; nothing is loaded.
    """
    symbols = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        unknown = set(reader.fieldnames or ()) - set(SYMBOL_COLUMNS)
        if unknown or not reader.fieldnames:
            raise ValueError(f"{path}:1: unknown columns {sorted(unknown)}; use {SYMBOL_COLUMNS}")
        for row in reader:
            cells = {k: v.strip() for k, v in row.items() if k and v is not None and v.strip()}
            try:
                listed = SymbolSettings.model_validate(cells)
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                raise ValueError(f"{path}:{reader.line_num}: {exc}") from None
            if any(s.symbol == listed.symbol for s in symbols):
                raise ValueError(f"{path}:{reader.line_num}: {listed.symbol} is listed twice")
            symbols.append(listed)
    if not symbols:
        raise ValueError(f"{path}: no symbols")
    return symbols


def ipc_paths(settings: Settings) -> list[Path]:
    """Folders that must exist before ipc:// endpoints can bind."""
    folders = set()
    for value in settings.endpoints.model_dump().values():
        if isinstance(value, str) and value.startswith("ipc://"):
            folders.add(Path(value[len("ipc://") :]).parent)
    return sorted(folders)


def save(settings: Settings, path: Path) -> None:
    """Write the resolved settings for the child processes, readable by the owner only
    (the database URL may hold a password); whole or not at all, so no reader sees half."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(settings.model_dump_json(indent=2))
    os.replace(tmp, path)


def load(path: str | os.PathLike[str]) -> Settings:
    return Settings.model_validate_json(Path(path).read_text())
