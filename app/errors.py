"""One exit-code policy for every ``trader`` command.

| status | meaning |
| --- | --- |
| 0 | done |
| 1 | a run or a remote call failed (the message says which) |
| 2 | bad input: a file, flag, setting or parameter (the message names it), or a run that |
|   | cannot be resumed as asked: finished, other settings, owned by another live process |
| 130 | interrupted (Ctrl-C), whatever the command |

Commands raise; ``app.cli.main`` maps exceptions to these statuses in one place.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Raised by commands for a plain message to the user (exit status 2)."""
