"""``trader kite check`` against the fake Kite: clear when the account can trade the universe
live, exit 1 naming each thing that blocks (token, profile, margin, unknown symbol, no MIS);
and ``trader live --market-protection``, checked like the setting and reaching the broker."""

from __future__ import annotations

import asyncio

import pytest

from app.cli import main
from tests.app.test_kite_commands import fake_env, trader  # noqa: F401 (fixture)

SYMBOLS = "ADANIPORTS,CDSL,IGL"


@pytest.fixture
def with_token(fake_env, monkeypatch):  # noqa: F811
    monkeypatch.setenv("KITE_ACCESS_TOKEN", fake_env.credentials().access_token)
    return fake_env


def test_check_is_clear_for_a_tradable_universe(with_token, capsys):
    assert trader("kite", "check", "--symbols", SYMBOLS) == 0
    out = capsys.readouterr().out
    assert "ok    token: accepted (user AB1234)" in out
    assert "ok    profile: NSE, MIS and MARKET orders enabled" in out
    assert "ok    margins: equity margin available ₹99,725.05" in out
    assert "3 of 3 symbols have an instrument token" in out
    assert "3 of 3 symbols accept intraday (MIS) orders" in out
    assert "BLOCK" not in out and out.rstrip().endswith("nothing found that blocks live trading")
    assert with_token.count("margins.orders") == 1  # one batched margin request


def test_check_names_every_blocker_and_exits_1(with_token, tmp_path, capsys):
    with_token.profile["products"].remove("MIS")
    with_token.margins["equity"]["net"] = 0
    with_token.block_mis("IGL")
    universe = tmp_path / "universe.txt"
    universe.write_text("ADANIPORTS\nIGL\nCDSL-BE\nNOSUCH\n")
    assert trader("kite", "check", "--universe", str(universe), "--capital", "50000") == 1
    out = capsys.readouterr().out
    assert "BLOCK profile: product MIS (intraday) is not enabled for this account" in out
    assert "BLOCK margins: no equity margin available" in out
    assert "BLOCK instrument NOSUCH: not in Kite's NSE instruments list" in out
    assert "BLOCK MIS CDSL-BE: series BE cannot be traded intraday (MIS)" in out
    assert "BLOCK MIS IGL: Kite refuses MIS" in out and "blocked for IGL" in out
    assert "1 of 3 symbols accept intraday (MIS) orders" in out  # ADANIPORTS only
    assert "MIS ADANIPORTS" not in out
    assert "5 problem(s) block live trading" in out


def test_check_with_an_expired_or_missing_token_blocks(with_token, monkeypatch, capsys):
    with_token.expire_token()
    assert trader("kite", "check", "--symbols", SYMBOLS) == 1
    out = capsys.readouterr().out
    assert "BLOCK token: Kite rejected the access token" in out and "trader kite login" in out
    assert with_token.count("instruments.exchange") == 0  # nothing more asked with a dead token
    monkeypatch.delenv("KITE_ACCESS_TOKEN")
    assert trader("kite", "check", "--symbols", SYMBOLS) == 1
    assert "BLOCK token: no access token" in capsys.readouterr().out


def test_check_warns_when_margin_is_below_capital(with_token, capsys):
    assert trader("kite", "check", "--symbols", "IGL", "--capital", "150000") == 0
    assert "warn  margins: equity margin ₹99,725.05 is below" in capsys.readouterr().out


# --- trader live --market-protection ------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-2", "101", "nan", "abc"])
def test_live_refuses_a_bad_market_protection(value, capsys):
    with pytest.raises(SystemExit) as info:
        main(["live", "--symbols", "INFY", "--market-protection", value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--market-protection" in err and "Traceback" not in err


def test_live_market_protection_overrides_the_setting_and_reaches_the_session(
    tmp_path, monkeypatch, capsys
):
    """The option wins over ``KITE_MARKET_PROTECTION`` in the Kite settings the live session
    (and so its ``KiteBroker``) is built with."""
    from app.runners import live
    from tests.app.test_live_mode import LIVE_ARGS, promoted

    asyncio.run(promoted(tmp_path))
    monkeypatch.setenv("KITE_MARKET_PROTECTION", "1.5")
    monkeypatch.setenv("KITE_API_KEY", "key-for-the-option-test")
    monkeypatch.setenv("KITE_SECRETS_FILE", str(tmp_path / "none.env"))
    seen = []

    async def capture(settings, strategy, db, kite, *args, **kwargs):
        seen.append(kite.market_protection)
        raise KeyboardInterrupt

    monkeypatch.setattr(live, "live_session", capture)
    argv = ["live", *LIVE_ARGS, "--db", str(tmp_path / "live.db"), "--i-understand-this-is-live"]
    assert main([*argv, "--warmup-days", "0", "--market-protection", "2.5"]) == 130
    assert main([*argv, "--warmup-days", "0"]) == 130
    assert seen == [2.5, 1.5]
