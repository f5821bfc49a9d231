"""structlog set-up: readable console lines by default, JSON lines with ``--log-json``.

The run's mode is bound into every line, so a paper line can never be mistaken for a live one;
values whose key looks like a secret are redacted before rendering.
"""

from __future__ import annotations

import logging
import re
import sys
from collections import deque
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = ("token", "secret", "password", "api_key", "access")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: The last rendered lines (after redaction, colours stripped), newest last: the dashboard's
#: "recent log lines", so an operator sees what the daemon said without a shell on the host.
RECENT_LINES: deque[str] = deque(maxlen=200)


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event:
        if any(part in key.lower() for part in _SECRET_KEYS):
            event[key] = "***"
    return event


def _remember(_logger: Any, _name: str, rendered: Any) -> Any:
    """Keep a copy of the rendered line for the dashboard; the line itself passes unchanged."""
    text = rendered.decode() if isinstance(rendered, bytes) else str(rendered)
    RECENT_LINES.append(_ANSI.sub("", text))
    return rendered


def recent_log_lines(limit: int = 100) -> list[str]:
    """The newest ``limit`` rendered log lines, oldest first."""
    lines = list(RECENT_LINES)
    return lines[-limit:] if limit > 0 else []


def configure_logging(
    mode: str = "backtest", json_lines: bool = False, level: str = "info"
) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
            _remember,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # resolve sys.stderr per logger, not once: it may be replaced (tests, daemons)
        logger_factory=lambda *_args: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(mode=mode)
