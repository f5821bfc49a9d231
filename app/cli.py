"""The ``trader`` command line: the parser and the one place exit statuses are decided.

Every user-facing failure is a one-line ``error: ...`` on stderr with the status of
``app.errors`` (2 bad input or settings, 1 a run or a Kite call that failed, 130 interrupted),
scrubbed of secrets (``app.errors.print_error``); tracebacks are for ``--debug`` only.
A Kite failure is reported as one, whichever command met it — never as an "internal error".
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.commands import (
    data,
    doctor,
    features,
    kite,
    models,
    promotion,
    reports,
    runs,
    strategies,
    trading,
)
from app.commands.help_format import show_defaults
from app.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UserError,
    print_error,
)
from brokers.kite.errors import KiteError
from config.settings import SettingsError
from engine.data.quality import DataError

#: command modules, each adding its sub-commands with ``register(subparsers)``
COMMAND_MODULES = (
    trading,
    runs,
    reports,
    promotion,
    strategies,
    features,
    models,
    data,
    kite,
    doctor,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trader", description=__doc__.splitlines()[0])
    parser.add_argument("--log-json", action="store_true", help="JSON log lines")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    show_defaults(parser)  # every option's default in --help (app/commands/help_format.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from engine.log import configure_logging

    configure_logging(getattr(args, "mode", "backtest"), args.log_json, args.log_level)
    try:
        return int(args.func(args) or EXIT_OK)
    except KiteError as exc:  # before ValueError: Kite refusing a request is not our bad input
        if args.debug:
            raise
        text = str(exc)
        print_error(text if text.startswith("Kite") else f"Kite: {text}")
        return EXIT_FAILED
    except (DataError, SettingsError, UserError, ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print_error(str(exc))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `trader ... | head`: the reader left; not an error
        sys.stderr.close()
        return EXIT_OK
    except Exception as exc:
        from engine.bus import HandlerError

        if args.debug:
            raise
        kind = "run failed" if isinstance(exc, HandlerError) else "internal error"
        print_error(f"{kind}: {exc} (rerun with --debug for the traceback)")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
