"""Where the engine keeps what it writes by default: one home directory, one definition.

``$TRADER_HOME`` (default ``$XDG_DATA_HOME/nse-trader``, i.e. ``~/.local/share/nse-trader``)
holds the run database ``trader.db``, the caches (``cache/history`` for Kite history downloaded
for warm-ups, ``cache/predictions`` for a model's replay predictions) and the demo's model.
Every command reads and writes the same places whatever directory it is started from, so a run
stored by ``trader demo`` is the one ``trader runs show`` finds. ``$TRADER_DB`` (a SQLAlchemy URL
or a file path) and each command's ``--db`` choose another database.

Two files live elsewhere because they are secrets, kept with the conventions for them: the HTTP
control token (``$XDG_STATE_HOME/nse-trader/api-token-PORT``, ``app.web.auth``) and the Kite
secrets file (``~/.config/nse-trader/kite.env``, ``brokers.kite.settings``). ``trader paths``
(and ``trader doctor``) print all of them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

HOME_ENV: Final = "TRADER_HOME"
DB_ENV: Final = "TRADER_DB"


def trader_home() -> Path:
    """``$TRADER_HOME``, else ``$XDG_DATA_HOME/nse-trader``, else ``~/.local/share/nse-trader``."""
    explicit = os.environ.get(HOME_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return (Path(data).expanduser() / "nse-trader").resolve()


def default_database_url() -> str:
    """``$TRADER_DB`` when set, else the SQLite file ``trader.db`` in the home directory."""
    explicit = os.environ.get(DB_ENV)
    if explicit:
        return explicit if "://" in explicit else f"sqlite:///{Path(explicit).expanduser()}"
    return f"sqlite:///{trader_home() / 'trader.db'}"


def history_cache_dir() -> Path:
    """Kite history downloaded for a paper/live warm-up (resumable)."""
    return trader_home() / "cache" / "history"


def prediction_cache_dir() -> Path:
    """A model's replay predictions, keyed by model hash and feature-data fingerprint."""
    return trader_home() / "cache" / "predictions"


def demo_model_dir() -> Path:
    """Models ``trader demo`` trains (one sub-directory per training recipe)."""
    return trader_home() / "demo-model"
