"""Logging set-up: readable console lines by default, JSON lines with ``--log-json``.

Every line goes through one processor chain, whoever writes it — structlog loggers, and stdlib
``logging`` (the Kite modules, aiohttp, any third-party library) through a
``structlog.stdlib.ProcessorFormatter`` on the one handler of the root logger:

- the run's mode is added, so a paper line can never be mistaken for a live one;
- secrets are redacted by ``config.redact`` (the one definition of what a secret looks like):
  values whose key looks like a secret, every credential value registered when it was loaded,
  and ``key=value`` / ``key: value`` pairs with a secret-looking key inside any text (a stdlib
  message, an exception) — the rendered line is scrubbed once more, so a traceback cannot carry
  a token out either;
- the rendered line is kept for the dashboard's "recent log lines".

A stdlib logger reaches the chain as long as it propagates to the root logger (the default);
stdlib records below ``level`` are dropped there, like structlog's.
"""

from __future__ import annotations

import logging
import re
import sys
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from config.redact import MASK, is_secret_key, scrub

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

#: The last rendered lines (after redaction, colours stripped), newest last: the dashboard's
#: "recent log lines", so an operator sees what the daemon said without a shell on the host.
RECENT_LINES: deque[str] = deque(maxlen=200)

Processor = Callable[[Any, str, MutableMapping[str, Any]], Any]


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if is_secret_key(key):
            event[key] = MASK
        elif isinstance(value, str):
            event[key] = scrub(value)
    return event


def _tag_mode(mode: str) -> Processor:
    """Add ``mode`` to every line (a processor, not a context variable: a line logged from
    another thread or a library callback is tagged too)."""

    def tag(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event.setdefault("mode", mode)
        return event

    return tag


def _remember(_logger: Any, _name: str, rendered: Any) -> Any:
    """Scrub the rendered line (exceptions are rendered after ``_redact``), keep a copy for the
    dashboard, pass it on."""
    text = scrub(rendered.decode() if isinstance(rendered, bytes) else str(rendered))
    RECENT_LINES.append(_ANSI.sub("", text))
    return text


def recent_log_lines(limit: int = 100) -> list[str]:
    """The newest ``limit`` rendered log lines, oldest first."""
    lines = list(RECENT_LINES)
    return lines[-limit:] if limit > 0 else []


class RootHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` puts on the root logger: stdlib records through the
    chain, written to whatever ``sys.stderr`` is when a line is written (tests and daemons
    replace it), like structlog's own lines."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging(
    mode: str = "backtest", json_lines: bool = False, level: str = "info"
) -> None:
    """Route structlog and stdlib logging through one chain (see the module doc). Idempotent:
    calling it again replaces the previous set-up (the CLI calls it once per command)."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric_level = logging.getLevelNamesMapping()[level.upper()]
    # JSON lines carry an exception as text (redacted below); the console renders it itself
    exceptions: list[Processor] = [structlog.processors.format_exc_info] if json_lines else []
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _tag_mode(mode),
        *exceptions,
        _redact,
    ]
    structlog.configure(
        processors=[*shared, renderer, _remember],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # resolve sys.stderr per logger, not once: it may be replaced (tests, daemons)
        logger_factory=lambda *_args: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    structlog.contextvars.clear_contextvars()

    handler = RootHandler()
    handler.setLevel(numeric_level)  # also for loggers that set a lower level of their own
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
                _remember,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, RootHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric_level)
