"""`run.py backtest` end to end: the real processes replay the sample with the example
moving-average bot in lock-step, in their own ledger, and write a report that the HTTP
API serves (docs/backtest.md). The bot's fills are checked against the strategy worked
out here from the CSV alone, and two runs must write the same fills and ledger."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections import defaultdict, deque
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.harness import ROOT, Server

pytestmark = pytest.mark.integration

SAMPLE = ROOT / "examples" / "data" / "sample_daily.csv"
START, END = "2023-01-01", "2023-05-31"
FAST, SLOW, QTY = 3, 8, 1000
BOT = f"python examples/ma_cross.py --fast {FAST} --slow {SLOW} --qty {QTY}"
CENT = Decimal("0.01")


def backtest(data_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """Run `run.py backtest --json` and return it with its JSON object (None if none)."""
    done = subprocess.run(
        [sys.executable, "run.py", "backtest", "--data-dir", str(data_dir), "--json", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = done.stdout.strip().splitlines()
    return done, json.loads(lines[-1]) if lines else None


def sample_rows(end: str = END) -> list[dict[str, str]]:
    with SAMPLE.open() as fh:
        return [row for row in csv.DictReader(fh) if START <= row["time"] <= end]


Fill = tuple[str, str, str, int, Decimal, Decimal, Decimal]


def expected_fills() -> list[Fill]:
    """The strategy by hand: per symbol, SMA(FAST) crossing SMA(SLOW) of the closes at a
    bar's close; a market order then fills at the next bar's open, with cn_a's costs
    (commission 0.1% half-up to the cent, at least 5.00; stamp tax 0.1% on sells)."""
    bars: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in sample_rows():
        bars[row["symbol"]].append(row)
    fills = []
    for symbol, rows in bars.items():
        closes: deque[Decimal] = deque(maxlen=SLOW + 1)
        held = 0
        for n, row in enumerate(rows[:-1]):  # an order after the last bar never fills
            closes.append(Decimal(row["close"]))
            if len(closes) <= SLOW:
                continue
            now, before = list(closes)[1:], list(closes)[:-1]
            fast, slow = _mean(now[-FAST:]), _mean(now[-SLOW:])
            fast_before, slow_before = _mean(before[-FAST:]), _mean(before[-SLOW:])
            side = None
            if fast > slow and fast_before <= slow_before and not held:
                side = "buy"
            elif fast < slow and fast_before >= slow_before and held:
                side = "sell"
            if side is None:
                continue
            following = rows[n + 1]
            price = Decimal(following["open"])
            value = price * QTY
            commission = max((value * Decimal("0.001")).quantize(CENT, ROUND_HALF_UP), Decimal(5))
            tax = (value * Decimal("0.001")).quantize(CENT, ROUND_HALF_UP) if side == "sell" else 0
            fills.append((following["time"], symbol, side, QTY, price, commission, Decimal(tax)))
            held = QTY if side == "buy" else 0
    return sorted(fills)


def fill_key(fill: dict[str, Any]) -> Fill:
    """A fill as expected_fills() gives it: its day, symbol, side, qty, price and fees."""
    return (
        fill["time"][:10],
        fill["symbol"],
        fill["side"],
        int(fill["qty"]),
        Decimal(fill["price"]),
        Decimal(fill["commission"]),
        Decimal(fill["tax"]),
    )


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, Decimal(0)) / len(values)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("backtests") / "data"


@pytest.fixture(scope="module")
def two_runs(data_dir: Path) -> list[Any]:
    """The same backtest twice, in one data dir."""
    runs = []
    for _ in range(2):
        done, summary = backtest(data_dir, "--start", START, "--end", END, "--bot", BOT)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(summary)
    return runs


def test_the_bot_trades_the_strategy_on_the_next_bars_open(two_runs: list[Any]) -> None:
    summary = two_runs[0]
    report = json.loads((Path(summary["report"]).parent / "report.json").read_text())
    got = sorted(map(fill_key, report["fills"]))
    want = expected_fills()
    assert len(want) >= 4  # the range has crossings both ways
    assert got == want
    # each fill is stamped with its bar's last instant, inside the session (15:00 Shanghai
    # is 07:00 UTC; times on the wire are UTC to the microsecond)
    assert all(f["time"][10:] == "T06:59:59.999999Z" for f in report["fills"])
    assert summary["status"] == "finished" and summary["timeouts"] == 0
    assert summary["bars"] == len(sample_rows()) and summary["trades"] == len(want)


def test_equity_and_cash_follow_from_the_fills(two_runs: list[Any]) -> None:
    """The last point of the curve: the cash left after every fill's value and fees, and
    what is held at the last close; the total return follows from it."""
    report = json.loads((Path(two_runs[0]["report"]).parent / "report.json").read_text())
    cash = Decimal(1_000_000)
    held: dict[str, int] = defaultdict(int)
    for f in report["fills"]:
        sign = 1 if f["side"] == "buy" else -1
        cash -= sign * Decimal(f["value"]) + Decimal(f["commission"]) + Decimal(f["tax"])
        held[f["symbol"]] += sign * int(f["qty"])
    last_close = {row["symbol"]: Decimal(row["close"]) for row in sample_rows()}
    equity = cash + sum(qty * last_close[s] for s, qty in held.items())
    assert Decimal(report["equity_curve"][-1]["cash"]) == cash
    assert Decimal(report["metrics"]["final_equity"]) == equity
    assert Decimal(two_runs[0]["total_return"]) == (equity / 1_000_000 - 1).quantize(
        Decimal("0.000001"), ROUND_HALF_UP
    )
    assert len(report["equity_curve"]) == len({row["time"] for row in sample_rows()})


def test_two_runs_write_the_same_fills_and_ledger(two_runs: list[Any]) -> None:
    first, second = two_runs
    assert first["run_id"] != second["run_id"]
    assert first["fills_digest"] == second["fills_digest"]
    assert first["ledger_digest"] == second["ledger_digest"]
    for key in ("trades", "final_equity", "total_return", "max_drawdown", "sharpe"):
        assert first[key] == second[key]


def test_the_report_has_its_chart_and_page(two_runs: list[Any]) -> None:
    page = Path(two_runs[0]["report"])
    assert two_runs[0]["run_id"] in page.read_text()
    assert (page.parent / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SILENT_BOT = (
    'python -c "import os, time; from protocol.client import TradeClient; '
    "c = TradeClient(os.environ['TRADESERVER_API'], os.environ['TRADESERVER_TOKEN']); "
    'c.join_replay(); time.sleep(120)"'
)


# A bot in "any language": HTTP and JSON only, no client library. It buys 100 shares at
# market on the first bar time and answers every bar time.
HTTP_BOT = """
import json, os, urllib.request

def call(method, path, body=None):
    request = urllib.request.Request(
        os.environ["TRADESERVER_HTTP"] + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": "Bearer " + os.environ["TRADESERVER_TOKEN"],
                 "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or "null")

call("POST", "/v1/replay/join")
after = 0
while True:
    step = call("GET", f"/v1/replay/step?after={after}&wait=25")
    if step is None:
        continue
    if step["index"] == 1:
        order = {"symbol": "600000", "side": "buy", "qty": 100, "type": "market"}
        call("POST", "/v1/orders", order)
    call("POST", "/v1/replay/done", {"ts": step["ts"]})
    after = step["ts"]
    if step["index"] == step["count"]:
        break
"""


@pytest.mark.parametrize("on_timeout", ["continue", "stop"])
def test_a_bot_that_never_answers_is_timed_out(tmp_path: Path, on_timeout: str) -> None:
    """Beside a bot that trades over HTTP, one that joins and never answers."""
    http_bot = tmp_path / "http_bot.py"
    http_bot.write_text(HTTP_BOT)
    done, summary = backtest(
        tmp_path / "data",
        *("--start", START, "--end", "2023-01-31"),
        *("--bot", SILENT_BOT, "--bot", f"python {http_bot}"),
        *("--step-timeout", "1", "--on-timeout", on_timeout),
    )
    assert summary["timeouts"] == 1, done.stderr[-3000:]
    report = json.loads((Path(summary["report"]).parent / "report.json").read_text())
    if on_timeout == "stop":
        assert done.returncode == 1 and summary["status"] == "stopped"
        assert summary["bars"] is None and report["bar_times_replayed"] == 1
        return
    # dropped after its first bar time; the other bot goes on to the end
    assert done.returncode == 0 and summary["status"] == "finished"
    assert summary["bars"] == len(sample_rows("2023-01-31"))
    second_open = [r for r in sample_rows() if r["symbol"] == "600000"][1]
    [fill] = report["fills"]
    assert (fill["time"][:10], fill["side"], fill["qty"]) == (second_open["time"], "buy", "100")
    assert fill["price"] == second_open["open"] and fill["user_id"] == 3  # bot2
    assert [b["exit_code"] for b in report["bots"]][1] == 0


def test_a_bad_bar_file_stops_it_before_anything_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "600000.csv"
    bad.write_text(
        "time,open,high,low,close,volume\n2023-01-03,7.16,7.23,7.01,7.06,100\n"
        "2023-01-04,7.07,6.00,6.95,7.04,100\n"
    )
    done, summary = backtest(tmp_path / "data", "--data", str(bad))
    assert done.returncode == 2 and summary is None
    assert f"{bad}:3" in done.stderr
    assert not (tmp_path / "data" / "backtests").exists() or not any(
        (tmp_path / "data" / "backtests").iterdir()
    )


def test_reports_are_read_over_http_by_the_admin(data_dir: Path, two_runs: list[Any]) -> None:
    """A server on the data dir the runs wrote to serves their reports."""
    with Server(data_dir.parent) as server:
        assert server.data_dir == data_dir
        summary = two_runs[1]
        admin = server.http(server.admin_token)
        runs = admin.get("/v1/backtests").json()
        assert [r["run_id"] for r in runs] == [two_runs[1]["run_id"], two_runs[0]["run_id"]]
        assert runs[0]["status"] == "finished"
        assert runs[0]["fills_digest"] == summary["fills_digest"]
        report = admin.get(f"/v1/backtests/{summary['run_id']}").json()
        assert report["ledger_digest"] == summary["ledger_digest"]
        page = admin.get(f"/v1/backtests/{summary['run_id']}/report.html")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        chart = admin.get(f"/v1/backtests/{summary['run_id']}/equity.png")
        assert chart.content[:8] == b"\x89PNG\r\n\x1a\n"
        for path in (
            "/v1/backtests/20990101-000000-abcd",
            f"/v1/backtests/{summary['run_id']}/report.json",
            f"/v1/backtests/{summary['run_id']}/..%2F..%2Fadmin_token",
            "/v1/backtests/..%2Fadmin_token",
        ):
            response = admin.get(path)
            assert response.status_code == 404, path
        trader = server.http(server.demo_token)
        assert trader.post("/v1/backtests", json={}).status_code == 403
        refused = trader.get("/v1/backtests")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "AUTH_NOT_ADMIN"
        assert server.http().get("/v1/backtests").status_code == 401
        server.assert_no_crash()


def test_the_admin_starts_a_backtest_over_http(tmp_path: Path) -> None:
    """POST /v1/backtests runs `run.py backtest` in the background with the server's own
    rules, named bar files and named bots; the run is listed while it goes and after."""
    with Server(tmp_path) as server:
        admin = server.http(server.admin_token)
        for body, code in (
            ({"bots": ["rm -rf /"]}, "REQUEST_INVALID"),
            ({"bots": ["nobody"]}, "REQUEST_INVALID"),
            ({"data": ["../admin_token"]}, "REQUEST_INVALID"),
            ({"data": ["missing.csv"]}, "REQUEST_INVALID"),
            ({"cash": "-5"}, "REQUEST_INVALID_AMOUNT"),
            ({"speed": "fast"}, "REQUEST_INVALID"),
            ({"start": "2023-13-01"}, "REQUEST_INVALID"),
        ):
            refused = admin.post("/v1/backtests", json=body)
            assert refused.status_code == 422 and refused.json()["error"]["code"] == code, body
        assert not (server.data_dir / "backtests").exists()
        started = admin.post(
            "/v1/backtests",
            json={
                "name": "over http",
                "data": ["sample_daily.csv"],
                "bots": ["ma_cross"],
                "start": START,
                "end": "2023-03-31",
            },
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        seen = {admin.get(f"/v1/backtests/{run_id}").json()["status"]}
        deadline = time.monotonic() + 240
        while "finished" not in seen:
            assert time.monotonic() < deadline, seen
            time.sleep(0.5)
            report = admin.get(f"/v1/backtests/{run_id}").json()
            seen.add(report["status"])
        assert seen <= {"running", "finished"}
        assert report["name"] == "over http" and report["speed"] == "lockstep"
        assert report["bots"][0]["exit_code"] == 0
        assert report["bars"] == len(sample_rows("2023-03-31"))
        assert [r["run_id"] for r in admin.get("/v1/backtests").json()] == [run_id]
        server.assert_no_crash()


@pytest.mark.crash
def test_a_lock_step_replay_survives_a_controller_restart(tmp_path: Path) -> None:
    """Killed mid-run, the controller resumes after the last bar time it saved, waits for
    the bot that had joined, announces that bar time again (the bot answers it without
    trading twice), and the bot's fills are the strategy's, as in a run without a crash."""
    with Server(
        tmp_path,
        fill_mode="wait",
        market={
            "feed": "replay",
            "replay_speed": "lockstep",
            "replay_bots": 1,
            "replay_start": START,
            "replay_end": END,
        },
        control={"sessions": "profile", "clock": "market"},
        # the strategy's costs and rules, as in the runs above
        profiles={"cn_a": {"t_plus_one": True, "price_limits": True, "odd_lots": "sell_all"}},
    ) as server:
        token = server.new_user("bot1")
        bot = subprocess.Popen(
            [sys.executable, *BOT.split()[1:]],
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "TRADESERVER_API": server.api,
                "TRADESERVER_PUB": server.pub,
                "TRADESERVER_TOKEN": token,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        admin = server.client(server.admin_token, events=False)

        def closed() -> int:
            return int(admin.control().get("replay", {}).get("closed", 0))

        deadline = time.monotonic() + 120
        while closed() < 40:
            assert time.monotonic() < deadline and bot.poll() is None
            time.sleep(0.05)
        server.kill("controller")
        out, _ = bot.communicate(timeout=180)
        assert bot.returncode == 0, out
        deadline = time.monotonic() + 10  # the bot's last answer may still be on its way
        while not (state := admin.control()["replay"])["finished"]:
            assert time.monotonic() < deadline, (state, out[-3000:])
            time.sleep(0.05)
        assert state["timeouts"] == 0, (state, out[-3000:])
        fills = server.client(token, events=False).fills(limit=1000)
        got = sorted(map(fill_key, fills))
        assert got == expected_fills()
        for name, text in server.logs():  # the one restart was ours
            assert "Traceback" not in text, f"{name}:\n{text[-4000:]}"


def test_a_csv_of_symbols_the_table_lacks_runs_under_the_default_profile(tmp_path: Path) -> None:
    """A newcomer's own file: its symbols join the run's symbol table (cn_a, the default
    profile), each with its first bar's open as previous close, or its prev_close column;
    the report says so. A bot trades one of them."""
    rows = [r for r in sample_rows("2023-01-31") if r["symbol"] == "600000"]
    own = tmp_path / "own.csv"
    with own.open("w") as fh:
        fh.write("time,symbol,open,high,low,close,volume\n")
        for r in rows:
            for symbol in ("600007", "688001"):
                fh.write(f"{r['time']},{symbol},{r['open']},{r['high']},{r['low']},")
                fh.write(f"{r['close']},{r['volume']}\n")
    with_prev = tmp_path / "601111.csv"  # one symbol, named by the file, with a prev_close
    with with_prev.open("w") as fh:
        fh.write("time,open,high,low,close,volume,prev_close\n")
        for r in rows:
            fh.write(f"{r['time']},{r['open']},{r['high']},{r['low']},{r['close']},")
            fh.write(f"{r['volume']},7.00\n")
    bot = tmp_path / "buy_once.py"
    bot.write_text(BUY_ONCE_BOT)
    done, summary = backtest(
        tmp_path / "data", "--data", str(own), "--data", str(with_prev), "--bot", f"python {bot}"
    )
    assert done.returncode == 0 and summary["status"] == "finished", done.stderr[-3000:]
    assert summary["bars"] == 3 * len(rows)
    report = json.loads((Path(summary["report"]).parent / "report.json").read_text())
    first_open = rows[0]["open"]
    assert report["symbols_from_data"] == (
        f"600007 (cn_a, previous close {first_open}), 601111 (cn_a, previous close 7.00), "
        f"688001 (cn_a, previous close {first_open})"
    )
    [fill] = report["fills"]  # bought at the second bar's open, under cn_a's rules and costs
    assert (fill["symbol"], fill["side"], fill["qty"], fill["price"]) == (
        "600007",
        "buy",
        "100",
        rows[1]["open"],
    )


BUY_ONCE_BOT = """
import os
import time
from protocol.client import MarketData, TradeClient

client = TradeClient(os.environ["TRADESERVER_API"], os.environ["TRADESERVER_TOKEN"], events=False)
market = MarketData(os.environ["TRADESERVER_PUB"], topics=("step",))
time.sleep(0.2)  # a SUB socket takes a moment to connect
client.join_replay()
bought = False
while True:
    _, step = market.next(timeout=60)
    if not bought:
        client.place_order("600007", "buy", 100, order_type="market")
        bought = True
    client.replay_done(step["ts"])
    if step["index"] == step["count"]:
        break
"""


def test_an_alpaca_sdk_bot_trades_the_strategy_in_lock_step(data_dir: Path) -> None:
    """examples/alpaca_bot.py knows only Alpaca's API (alpaca-py): the backtest hands it
    Alpaca's environment variables, its bars come on the market-data websocket, its
    clock call after each bar ends the bar time, and it trades as the hand-made strategy."""
    bot = f"python examples/alpaca_bot.py --symbol 600000 --fast {FAST} --slow {SLOW} --qty {QTY}"
    done, summary = backtest(data_dir, "--start", START, "--end", END, "--bot", bot)
    assert done.returncode == 0, done.stderr[-3000:]
    assert summary["status"] == "finished" and summary["timeouts"] == 0, summary
    report = json.loads((Path(summary["report"]).parent / "report.json").read_text())
    want = [fill for fill in expected_fills() if fill[1] == "600000"]
    assert len(want) >= 2
    assert sorted(map(fill_key, report["fills"])) == want
