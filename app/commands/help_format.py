"""``--help`` shows every default: each option of every command, whoever registered it.

Applied once to the finished parser (``app.cli.build_parser``), so a command added later gets
it without doing anything. An option whose help already says its default (``default: …``,
often a setting's value that argparse does not know) is left as written; flags that are off
unless given, and options without a value of their own, have nothing to show.
"""

from __future__ import annotations

import argparse


class DefaultsHelpFormatter(argparse.HelpFormatter):
    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not shows_default(action) or "default" in text.lower():
            return action.help
        return f"{text} (default: %(default)s)".strip()


def shows_default(action: argparse.Action) -> bool:
    """True for an option that has a value of its own when not given."""
    default = action.default
    return bool(action.option_strings) and default not in (None, False, [], argparse.SUPPRESS)


def all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parser and every sub-command's parser, depth first."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                found.extend(all_parsers(sub))
    return found


def show_defaults(parser: argparse.ArgumentParser) -> None:
    for each in all_parsers(parser):
        each.formatter_class = DefaultsHelpFormatter
        for action in each._actions:
            if not action.help and shows_default(action):  # argparse skips an empty help
                action.help = "(default: %(default)s)"
