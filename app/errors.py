"""One exit-code policy for every ``trader`` command.

| status | meaning |
| --- | --- |
| 0 | done |
| 1 | a run or a remote call failed (the message says which) |
| 2 | bad input: a file, flag, setting or parameter (the message names it), or a run that |
|   | cannot be resumed as asked: finished, other settings, owned by another live process |
| 130 | interrupted (Ctrl-C), whatever the command |

Commands raise; ``app.cli.main`` maps exceptions to these statuses in one place. Every
``error: ...`` line is written by ``print_error``, which scrubs it of secrets: an exception's
text may quote a remote answer (Kite echoing a token), and stderr ends up in terminals, CI logs
and bug reports.
"""

from __future__ import annotations

import sys

from config.redact import scrub

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def print_error(message: str) -> None:
    """``error: <message>`` on stderr, without secrets (``config.redact``)."""
    print(f"error: {scrub(message)}", file=sys.stderr)


class UserError(Exception):
    """Raised by commands for a plain message to the user (exit status 2)."""
