"""Start and supervise TradeServer's four processes, and run admin commands.

    python run.py                          start on the embedded defaults (SQLite, synthetic feed)
    python run.py --config my.toml         start with a configuration file
    python run.py user create --name N --cash C [--shares SYMBOL=QTY ...] [--json]
    python run.py user list [--json]
    python run.py user rotate|revoke --name N [--json]
    python run.py user reset --name N [--cash C] [--json]
    python run.py user deposit --name N --symbol S --qty Q [--json]
    python run.py digest                   a hash of the trading state (docs/reliability.md)
    python run.py control run|stop|pause
    python run.py backtest [--data CSV] [--start D] [--end D] [--speed max|lockstep|xN]
                           [--cash C] [--bot COMMAND ...] [--json]

Admin commands talk to the running server over ZeroMQ with the admin token; when no
server runs on the data dir, they work on the ledger (or control.json) directly.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from actors.accountant import offline
from actors.accountant.offline import ADMIN_TOKEN_FILE, DEMO_TOKEN_FILE, write_secret
from actors.controller.bars import replay_bars
from actors.controller.feeds import volume_unit
from actors.market.rules import Market
from actors.runtime import curve, process
from actors.runtime.supervisor import CHILDREN, no_server, supervised, wait_for_port
from protocol import settings as settings_module
from protocol.client import TradeError
from protocol.settings import Settings, build_settings
from protocol.tokens import hash_token, key_id
from protocol.values import wire_qty

# SETTINGS AND FILES --------------------------------------------------------------------


def settings_from_args(args: argparse.Namespace) -> Settings:
    flags: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        flags.setdefault("server", {})["data_dir"] = args.data_dir
    if getattr(args, "http_port", None):
        flags.setdefault("endpoints", {})["http_port"] = args.http_port
    if getattr(args, "fill_mode", None):
        flags.setdefault("trading", {})["fill_mode"] = args.fill_mode
    if getattr(args, "mode", None):
        flags.setdefault("market", {})["mode"] = args.mode
    return build_settings(getattr(args, "config", None), flags=flags)


def market_mode(settings: Settings) -> str:
    """How orders fill, for the banner: paper mode's fill mode, exchange mode's symbols."""
    exchange = settings.exchange_symbols()
    paper = f"paper mode, fill mode {settings.trading.fill_mode}"
    if not exchange:
        return paper
    if len(exchange) == len(settings.market.symbols):
        return "exchange mode"
    return (
        f"exchange mode for {', '.join(exchange[:6])}{' ...' if len(exchange) > 6 else ''}; {paper}"
    )


def banner(settings: Settings) -> str:
    e = settings.endpoints
    url = f"http://{e.http_host}:{e.http_port}"
    demo_file = settings.data_dir / DEMO_TOKEN_FILE
    lines = [
        "TradeServer is running "
        f"({market_mode(settings)}, sessions {settings.control.sessions}, "
        f"data in {settings.data_dir})",
        f"  HTTP API     {url}   (OpenAPI docs: {url}/docs)",
        f"  ZeroMQ       requests {e.client_api} (DEALER/REQ), market data {e.client_pub} (SUB)",
        f"  Admin token  in {settings.data_dir / ADMIN_TOKEN_FILE}",
    ]
    if demo_file.exists():
        token = demo_file.read_text().strip()
        symbol = settings.market.symbols[0]
        rules = Market.from_settings(settings).rules(symbol.symbol)
        qty = json.dumps(wire_qty(volume_unit(rules, symbol.prev_close)))  # an order that fits
        lines += [
            f"  Demo user    {settings.demo.name}, token {token}",
            f"               Alpaca API key id {key_id(hash_token(token))}, secret key: the token",
            "  Place an order:",
            f"    curl -s -X POST {url}/v1/orders -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' "
            f'-d \'{{"symbol":"{symbol.symbol}","side":"buy","qty":{qty},'
            f'"price":"{symbol.prev_close}"}}\'',
        ]
    lines.append("  Stop with Ctrl-C.")
    return "\n".join(lines)


def serve(settings: Settings) -> int:
    with supervised(settings, offline.bootstrap) as supervisor:
        if supervisor is None:
            print(f"a server is already running on {settings.data_dir}", file=sys.stderr)
            return 1
        signal.signal(signal.SIGTERM, supervisor._on_signal)
        signal.signal(signal.SIGINT, supervisor._on_signal)
        if "gateway" not in settings.server.processes:
            print(f"[supervisor] running {', '.join(supervisor.children)}", flush=True)
        elif wait_for_port(settings.endpoints.http_host, settings.endpoints.http_port, 30):
            print(banner(settings), flush=True)
        else:
            print("[supervisor] the gateway did not open its HTTP port; see logs/", flush=True)
        while not supervisor.stopping:
            supervisor.watch()
            time.sleep(0.1)
    print("[supervisor] stopped", flush=True)
    return 0


# ADMIN COMMANDS ------------------------------------------------------------------------


def _admin_client(settings: Settings) -> Any:
    from protocol.client import TradeClient

    running = settings_module.load(settings.data_dir / "settings.json")
    token = (settings.data_dir / ADMIN_TOKEN_FILE).read_text().strip()
    return TradeClient(running.endpoints.client_api, token, timeout=10, events=False)


def user_create(
    settings: Settings, name: str, cash: str, shares: dict[str, str] | None = None
) -> dict[str, Any]:
    """The new user's id, name, token, cash, the shares deposited into its account
    (`shares`: symbol -> qty), and the Alpaca key id that goes with the token
    (docs/alpaca.md)."""
    keys = ("user_id", "name", "token", "cash", "deposited_value", "positions")
    with no_server(settings) as free:
        if not free:
            with _admin_client(settings) as client:
                reply = client.create_user(name, cash, shares)
            created = {k: reply[k] for k in keys}
        else:
            created = offline.create_user(settings, name, cash, shares)
    return {**created, "key_id": key_id(hash_token(created["token"]))}


def user_deposit(settings: Settings, name: str, symbol: str, qty: str) -> dict[str, Any]:
    """Deposit shares into the account of the user `name` as capital (account.deposit):
    on the running server at the symbol's last price (else its previous close), or, with
    no server running, straight into the ledger at its previous close in the symbol
    table."""
    with no_server(settings) as free:
        if free:
            return offline.deposit(settings, name, symbol, qty)
        with _admin_client(settings) as client:
            user_id = next((u["user_id"] for u in client.users() if u["name"] == name), None)
            if user_id is None:
                raise SystemExit(f"no user named {name!r}")
            reply = client.deposit(user_id, symbol, qty)
    return {"name": name, **{k: v for k, v in reply.items() if k not in ("type", "rid", "v")}}


def shares_argument(text: str) -> tuple[str, str]:
    """`--shares SYMBOL=QTY`."""
    symbol, equals, qty = text.partition("=")
    if not equals or not symbol.strip() or not qty.strip():
        raise argparse.ArgumentTypeError(f"takes SYMBOL=QTY, e.g. 600000=5000; got {text!r}")
    return symbol.strip(), qty.strip()


def user_list(settings: Settings) -> list[dict[str, Any]]:
    with no_server(settings) as free:
        if not free:
            with _admin_client(settings) as client:
                return client.users()
        return offline.list_users(settings)


def user_token(settings: Settings, name: str, action: str) -> dict[str, Any]:
    """Rotate (a new token, printed once) or revoke the token of the user `name`; the old
    token stops working and the user's sessions end. The admin's and the demo user's
    token files in the data dir follow."""
    with no_server(settings) as free:
        if free:
            result = offline.change_token(settings, name, action)
        else:
            with _admin_client(settings) as client:
                user_id = next((u["user_id"] for u in client.users() if u["name"] == name), None)
                if user_id is None:
                    raise SystemExit(f"no user named {name!r}")
                if action == "rotate":
                    result = client.rotate_token(user_id)
                else:
                    result = client.revoke_token(user_id)
    result = {k: result[k] for k in ("user_id", "name", "token") if k in result}
    if "token" in result:
        result["key_id"] = key_id(hash_token(result["token"]))
    files = {"admin": ADMIN_TOKEN_FILE, settings.demo.name: DEMO_TOKEN_FILE}
    token_file = settings.data_dir / files[name] if name in files else None
    if token_file is not None and token_file.exists():
        if "token" in result:
            write_secret(token_file, result["token"])
        else:
            token_file.unlink()
    return result


def user_reset(settings: Settings, name: str, cash: str | None) -> dict[str, Any]:
    """Reset the account of the user `name` on the running server: its open orders are
    canceled, its positions written off, its cash set to `cash` (default its initial
    cash). The matcher must let the orders go first, so this needs a running server."""
    with no_server(settings) as free:
        if free:
            raise SystemExit("user reset needs the server running (python run.py)")
        with _admin_client(settings) as client:
            user_id = next((u["user_id"] for u in client.users() if u["name"] == name), None)
            if user_id is None:
                raise SystemExit(f"no user named {name!r}")
            try:
                reply = client.reset_account(cash, user_id)
            except TradeError as exc:
                raise SystemExit(str(exc)) from None
    return {"name": name, **reply["reset"]}


def digest(settings: Settings) -> dict[str, Any]:
    """The state digest (docs/reliability.md): from the running server, or, when none runs,
    from the ledger, with the books a matcher would build from its open orders."""
    with no_server(settings) as free:
        if not free:
            with _admin_client(settings) as client:
                reply = client.digest()
            return {k: v for k, v in reply.items() if k not in ("type", "rid", "v")}
        return offline.digest(settings)


def control(settings: Settings, state: str) -> dict[str, Any]:
    with no_server(settings) as free:
        if not free:
            with _admin_client(settings) as client:
                return client.set_control(state)
        from actors.runtime.statefile import StateFile

        saved = StateFile(settings.data_dir / "control.json")
        saved.save({**saved.load(), "state": state})  # the market time reached stays
        return {"state": state, "note": "no server running; applies at next start"}


# COMMAND LINE --------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="TOML configuration file", default=argparse.SUPPRESS
    )
    common.add_argument(
        "--data-dir",
        metavar="DIR",
        help="ledger, logs, tokens (default runtime/)",
        default=argparse.SUPPRESS,
    )
    common.add_argument("--http-port", type=int, metavar="PORT", default=argparse.SUPPRESS)
    common.add_argument("--fill-mode", choices=["wait", "instant"], default=argparse.SUPPRESS)
    common.add_argument(
        "--mode",
        choices=["paper", "exchange"],
        default=argparse.SUPPRESS,
        help="paper: fills against the market feed; exchange: users trade with each other",
    )
    p = argparse.ArgumentParser(
        prog="run.py",
        parents=[common],
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", parents=[common], help="start and supervise the server (default)")
    user = sub.add_parser("user", parents=[common], help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    create = user_sub.add_parser("create", parents=[common], help="create a user with capital")
    create.add_argument("--name", required=True)
    create.add_argument("--cash", required=True, help="starting capital, e.g. 1000000")
    create.add_argument(
        "--shares",
        action="append",
        type=shares_argument,
        default=[],
        metavar="SYMBOL=QTY",
        help="shares to start with, deposited as capital (repeat for more symbols)",
    )
    create.add_argument("--json", action="store_true", help="print one JSON object")
    listing = user_sub.add_parser("list", parents=[common], help="list users")
    listing.add_argument("--json", action="store_true")
    for action, what in (("rotate", "give a user a new token"), ("revoke", "revoke a token")):
        token = user_sub.add_parser(action, parents=[common], help=what)
        token.add_argument("--name", required=True)
        token.add_argument("--json", action="store_true", help="print one JSON object")
    reset = user_sub.add_parser(
        "reset",
        parents=[common],
        help="reset an account: cancel its orders, write off its positions, new capital",
    )
    reset.add_argument("--name", required=True)
    reset.add_argument("--cash", help="the new capital (default: the account's initial cash)")
    reset.add_argument("--json", action="store_true", help="print one JSON object")
    deposit = user_sub.add_parser(
        "deposit",
        parents=[common],
        help="put shares into an account as capital, valued at the last price",
    )
    deposit.add_argument("--name", required=True)
    deposit.add_argument("--symbol", required=True)
    deposit.add_argument("--qty", required=True, help="shares (or units), e.g. 5000")
    deposit.add_argument("--json", action="store_true", help="print one JSON object")
    ctl = sub.add_parser("control", parents=[common], help="run, stop or pause trading")
    ctl.add_argument("action", choices=["run", "stop", "pause"])
    backtest_arguments(sub.add_parser("backtest", parents=[common], help="run a backtest"))
    sub.add_parser(
        "digest", parents=[common], help="print a hash of accounts, positions, orders, books"
    )
    keys = sub.add_parser(
        "keys", parents=[common], help="create CURVE key pairs for internal tcp links"
    )
    keys.add_argument(
        "--process",
        action="append",
        choices=list(CHILDREN),
        help="only this process's pair (repeatable; default all four that are missing)",
    )
    return p


def backtest_arguments(bt: argparse.ArgumentParser) -> None:
    bt.description = (
        "Replay bars through the real processes with their own ledger in "
        "<data dir>/backtests/<run id>/, with your bots, and write a report there "
        "(docs/backtest.md)."
    )
    bt.add_argument(
        "--data", action="append", metavar="CSV", help="bar file (repeatable; default the sample)"
    )
    bt.add_argument("--start", type=date.fromisoformat, metavar="YYYY-MM-DD")
    bt.add_argument("--end", type=date.fromisoformat, metavar="YYYY-MM-DD")
    bt.add_argument(
        "--speed",
        metavar="max|lockstep|xN",
        default="",
        help="default: lockstep with bots, max without",
    )
    bt.add_argument("--cash", default="1000000", help="each bot's starting cash")
    bt.add_argument(
        "--bot",
        action="append",
        metavar="COMMAND",
        help="a bot to start, any language (repeatable); see docs/backtest.md",
    )
    bt.add_argument("--name", default="", help="a name for the run")
    bt.add_argument("--step-timeout", type=float, metavar="SECONDS")
    bt.add_argument("--on-timeout", choices=["continue", "stop"])
    bt.add_argument("--json", action="store_true", help="print one JSON object at the end")
    # POST /v1/backtests: the live server's resolved settings, and a run folder made for it
    bt.add_argument("--settings", metavar="JSON", help=argparse.SUPPRESS)
    bt.add_argument("--run-id", default="", help=argparse.SUPPRESS)


def backtest(args: argparse.Namespace, settings: Settings) -> int:
    from actors.accountant.admin import capital
    from backtest import runner
    from protocol.errors import RejectError

    try:
        cash = capital(args.cash)
    except RejectError as rej:
        print(f"--cash: {rej.message}", file=sys.stderr)
        return 2
    speed = args.speed
    if speed and not re.fullmatch(settings_module.REPLAY_SPEED, speed):
        print('--speed: "max", "lockstep" or "x" and a factor ("x60")', file=sys.stderr)
        return 2
    options = runner.BacktestOptions(
        data=tuple(args.data or ()),
        start=args.start,
        end=args.end,
        speed=speed,
        cash=cash,
        bots=tuple(args.bot or ()),
        name=args.name,
        step_timeout=args.step_timeout,
        on_timeout=args.on_timeout,
        progress=not args.json,
        run_id=args.run_id,
    )
    # a run started over HTTP is stopped with SIGTERM: the bots and processes stop with it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = runner.run(settings, options)
    except (ValidationError, ValueError, OSError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(runner.summary(report)))
    else:
        print("\n".join(runner.lines(report)))
    return 0 if report["status"] == "finished" else 1


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "settings", None):  # a backtest started over HTTP
            settings = settings_module.load(Path(args.settings))
        else:
            settings = settings_from_args(args)
        if (args.command or "serve") == "serve" and settings.market.feed == "replay":
            replay_bars(settings)  # every file checked before anything starts
        if (args.command or "serve") == "serve" and settings.security.curve:
            curve.create_missing(settings, settings.server.processes)
            curve.check(settings)  # each key the processes here need, before any starts
        process.keep_private(settings.data_dir)
    except (ValidationError, ValueError, OSError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    command = args.command or "serve"
    try:
        return _dispatch(args, command, settings)
    except TradeError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, command: str, settings: Settings) -> int:
    if command == "serve":
        return serve(settings)
    if command == "user" and args.user_command == "create":
        shares = dict(args.shares)
        if len(shares) < len(args.shares):
            print("--shares names a symbol twice", file=sys.stderr)
            return 2
        created = user_create(settings, args.name, args.cash, shares)
        if args.json:
            print(json.dumps(created))
        else:
            print(f"user {created['name']} id {created['user_id']} cash {created['cash']}")
            for p in created["positions"]:
                print(f"shares {p['qty']} {p['symbol']}, cost basis {p['cost_basis']}")
            print(f"token {created['token']}")
            print(f"alpaca key id {created['key_id']} (the secret key is the token)")
        return 0
    if command == "user" and args.user_command == "list":
        users = user_list(settings)
        if args.json:
            print(json.dumps(users))
        else:
            for u in users:
                role = " (admin)" if u["is_admin"] else ""
                print(f"{u['user_id']:>5}  {u['name']:<20} cash {u['cash']:>18}{role}")
        return 0
    if command == "user" and args.user_command in ("rotate", "revoke"):
        changed = user_token(settings, args.name, args.user_command)
        if args.json:
            print(json.dumps(changed))
        elif "token" in changed:
            print(f"user {changed['name']} id {changed['user_id']}: the old token no longer works")
            print(f"token {changed['token']}")
            print(f"alpaca key id {changed['key_id']} (the secret key is the token)")
        else:
            print(f"user {changed['name']} id {changed['user_id']}: token revoked")
        return 0
    if command == "user" and args.user_command == "reset":
        done = user_reset(settings, args.name, args.cash)
        if args.json:
            print(json.dumps(done))
        else:
            gone = ", ".join(f"{w['qty']} {w['symbol']}" for w in done["written_off"]) or "none"
            print(
                f"user {done['name']} id {done['user_id']}: epoch {done['epoch']}, cash "
                f"{done['capital']} (was {done['previous_cash']}); "
                f"{len(done['canceled_orders'])} orders canceled; written off: {gone}"
            )
        return 0
    if command == "user" and args.user_command == "deposit":
        done = user_deposit(settings, args.name, args.symbol, args.qty)
        if args.json:
            print(json.dumps(done))
        else:
            held = done["position"]
            print(
                f"user {done['name']} id {done['user_id']}: deposited {done['qty']} "
                f"{done['symbol']} at {done['price']}, value {done['value']}; "
                f"now holds {held['qty']}"
            )
        return 0
    if command == "digest":
        print(json.dumps(digest(settings), indent=2))
        return 0
    if command == "keys":
        for path in curve.create_missing(settings, args.process or None):
            print(f"created {path} and {path.with_suffix('.key').name}")
        print(f"keys in {settings.keys_dir}: copy the .key files (public) to every host")
        return 0
    if command == "backtest":
        return backtest(args, settings)
    if command == "control":
        state = {"run": "running", "stop": "stopped", "pause": "paused"}[args.action]
        print(json.dumps(control(settings, state)))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
