"""``--help`` of every ``trader`` command shows every option's default."""

from __future__ import annotations

import argparse

from app.cli import build_parser
from app.commands.help_format import all_parsers, shows_default


def _help_of(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return " ".join(parser._get_formatter()._expand_help(action).split())


def test_every_option_with_a_default_shows_it_in_help() -> None:
    parsers = all_parsers(build_parser())
    assert len(parsers) > 20  # every command and sub-command was walked
    missing, checked = [], 0
    for parser in parsers:
        page = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not shows_default(action):
                continue
            checked += 1
            text = _help_of(parser, action)
            if "default" not in text.lower() or text not in page:
                missing.append(f"{parser.prog} {'/'.join(action.option_strings)}")
    assert checked > 40 and not missing, missing


def test_the_defaults_a_trader_asks_about_are_spelled_out() -> None:
    by_prog = {p.prog: p for p in all_parsers(build_parser())}
    backtest = " ".join(by_prog["trader backtest"].format_help().split())
    for shown in ("(default: 1,000,000; live 50,000)", "(default: zerodha", "points (default: 0)",
                  "bar interval (default: 5minute)", "(default: sma_cross)"):  # fmt: skip
        assert shown in backtest, shown
    train = " ".join(by_prog["trader train"].format_help().split())
    assert "--epochs EPOCHS (default: 100)" in train and "(default: 0.0001)" in train
    paper = " ".join(by_prog["trader paper"].format_help().split())
    assert "replay pace: 1x, 60x, … or max" in paper and "(default: 1x)" in paper
