"""The CSV symbol table (protocol/settings.py load_symbols) and per-symbol rules."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pytest

from actors.market.rules import Market
from protocol.settings import build_settings

HEADER = "symbol,name,profile,prev_close,tick_size,lot_size,qty_step,min_notional,st\n"


def config_with(folder: Path, table: str, profile: str = "cn_a") -> Path:
    (folder / "symbols.csv").write_text(table)
    config = folder / "config.toml"
    config.write_text(f'[market]\nprofile = "{profile}"\nsymbols_file = "symbols.csv"\n')
    return config


def test_each_row_takes_its_profiles_rules_and_its_own_overrides(tmp_path: Path) -> None:
    table = HEADER + (
        "600000,SPD Bank,,8.50,,,,,\n"
        "600001,Special,,3.10,,,,,true\n"
        "AAPL,Apple,us_equity,190.00,,,,,\n"
        "BTCUSDT,Bitcoin,crypto,43000.00,0.1,,0.0001,5,\n"
        "PENNY,Penny,us_equity,0.5000,0.0001,,,,\n"
    )
    settings = build_settings(config_with(tmp_path, table), environ={})
    market = Market.from_settings(settings)
    sizes = {
        s: (
            market.rules(s).name,
            market.rules(s).tick_size,
            market.rules(s).lot_size,
            market.rules(s).qty_step,
            market.rules(s).min_notional,
        )
        for s in market.symbols
    }
    assert sizes == {
        "600000": ("cn_a", D("0.01"), 100, 1, 0),
        "600001": ("cn_a", D("0.01"), 100, 1, 0),
        "AAPL": ("us_equity", D("0.01"), 1, 1, 0),
        "BTCUSDT": ("crypto", D("0.1"), D("0.0001"), D("0.0001"), 5),  # step is the lot
        "PENNY": ("us_equity", D("0.0001"), 1, 1, 0),
    }
    assert market.symbols["600001"].st is True
    assert market.rules("600000").t_plus_one and not market.rules("AAPL").t_plus_one


def test_the_server_profile_is_the_default_for_rows_without_one(tmp_path: Path) -> None:
    table = HEADER + "ETHUSDT,Ether,,2300.00,,,,,\n"
    market = Market.from_settings(
        build_settings(config_with(tmp_path, table, "crypto"), environ={})
    )
    rules = market.rules("ETHUSDT")
    assert (rules.name, rules.qty_step, rules.min_notional) == ("crypto", D("0.00001"), 10)


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        ("BAD,Bad,,-1,,,,,", "prev_close"),
        ("BAD,Bad,forex,1.00,,,,,", "profile"),
        ("BAD,Bad,,abc,,,,,", "prev_close"),
        ("BAD,Bad,crypto,1.00,,0.5,0.2,,", "multiple of qty_step"),
        ("BAD,Bad,,1.005,0.01,,,,", "multiple of tick_size"),
        (",Nameless,,1.00,,,,,", "symbol"),
        ("600000,Again,,8.50,,,,,", "listed twice"),
        ("LOTS,Lots,,1.00,,100,3,,", "lot_size must be a multiple of qty_step"),
    ],
)
def test_a_bad_row_names_the_file_and_line_and_nothing_loads(
    tmp_path: Path, row: str, complaint: str
) -> None:
    table = HEADER + "600000,SPD Bank,,8.50,,,,,\n" + row + "\n"
    with pytest.raises(ValueError, match=complaint) as caught:
        build_settings(config_with(tmp_path, table), environ={})
    assert "symbols.csv:3:" in str(caught.value)


def test_a_previous_close_off_the_profiles_tick_is_refused(tmp_path: Path) -> None:
    table = HEADER + "AAPL,Apple,us_equity,190.005,,,,,\n"
    with pytest.raises(ValueError, match=r"AAPL prev_close 190\.005 is not a multiple"):
        build_settings(config_with(tmp_path, table), environ={})


def test_a_step_that_does_not_divide_the_profiles_lot_is_refused(tmp_path: Path) -> None:
    table = HEADER + "600000,SPD Bank,,8.50,,,3,,\n"  # cn_a buys in lots of 100
    with pytest.raises(ValueError, match="600000 lot 100 is not a multiple of its qty_step 3"):
        build_settings(config_with(tmp_path, table), environ={})


def test_an_unknown_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown columns") as caught:
        build_settings(
            config_with(tmp_path, "symbol,name,prev_close,colour\nA,B,1,red\n"), environ={}
        )
    assert "symbols.csv:1:" in str(caught.value)
