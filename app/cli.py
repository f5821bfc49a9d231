"""The ``trader`` command line: the parser and the one place exit statuses are decided.

Every user-facing failure is a one-line ``error: ...`` on stderr with the status of
``app.errors`` (2 bad input or settings, 1 a run that failed, 130 interrupted); tracebacks are
for ``--debug`` only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.commands import doctor, features, kite, models, runs, strategies, trading
from app.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UserError
from config.settings import SettingsError
from engine.data.quality import DataError

#: command modules, each adding its sub-commands with ``register(subparsers)``
COMMAND_MODULES = (trading, runs, strategies, features, models, kite, doctor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trader", description=__doc__.splitlines()[0])
    parser.add_argument("--log-json", action="store_true", help="JSON log lines")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from engine.log import configure_logging

    configure_logging(getattr(args, "mode", "backtest"), args.log_json, args.log_level)
    try:
        return int(args.func(args) or EXIT_OK)
    except (DataError, SettingsError, UserError, ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
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
        print(f"error: {kind}: {exc} (rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
