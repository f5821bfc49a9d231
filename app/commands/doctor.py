"""``trader doctor`` (and ``trader paths``, its first section alone): where everything lives
and what this machine can do — the database, the control token, the Kite secrets file and the
caches the commands use by default (``config/paths.py``); the CPU's bf16 support; which Kite
credentials are present (never their values); versions.

It only reads: it opens no database (a lookup must never create one) and contacts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from app.web.auth import TOKEN_ENV, TOKEN_FILE_ENV, default_token_path
from brokers.kite.auth import ENV_ACCESS_TOKEN, ENV_API_KEY, ENV_API_SECRET, read_secrets_file
from brokers.kite.settings import KiteSettings
from config.paths import demo_model_dir, history_cache_dir, prediction_cache_dir, trader_home
from engine.store.database import database_url, shown_url, sqlite_file
from engine.version import code_version

PACKAGES = ("torch", "numpy", "numba", "pandas", "sqlalchemy", "aiohttp", "kiteconnect", "ray")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "doctor", help="where the database, token, secrets and caches live; CPU; credentials"
    )
    p.add_argument("--db", help="the database URL or path to describe (default: as commands do)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_doctor)
    # `trader paths`: the locations part of doctor alone (what a user looks for first)
    p = sub.add_parser("paths", help="where the database, token, secrets and caches live")
    p.add_argument("--db", help="the database URL or path to describe (default: as commands do)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_paths)


def paths(db: str | None) -> dict[str, Any]:
    """The default locations, from the same definitions the commands use (``config.paths``,
    ``app.web.auth``, ``brokers.kite.settings``)."""
    url = database_url(db)
    file = sqlite_file(url)
    return {
        "trader_home": str(trader_home()),
        "database": shown_url(url),
        "database_exists": file.exists() if file is not None else "not a file (server database)",
        "control_token": str(default_token_path(0)).replace("api-token-0", "api-token-<PORT>")
        if not os.environ.get(TOKEN_ENV)
        else f"${TOKEN_ENV} (set)",
        "kite_secrets_file": str(KiteSettings.from_env().secrets_path),
        "history_cache": str(history_cache_dir()),
        "prediction_cache": str(prediction_cache_dir()),
        "demo_model": str(demo_model_dir()),
    }


def _print_sections(report: dict[str, dict[str, Any]]) -> None:
    for section, values in report.items():
        print(f"{section.replace('_', ' ')}:")
        for key, value in values.items():
            label = key if key.isupper() else key.replace("_", " ")  # env names stay as typed
            print(f"  {label:<20} {value}")
    sys.stdout.flush()


def cmd_paths(args: argparse.Namespace) -> int:
    report = {"paths": paths(args.db)}
    if args.json:
        print(json.dumps(report["paths"], indent=2))
    else:
        _print_sections(report)
    return 0


def credentials() -> dict[str, str]:
    """Which Kite credentials exist and where — never their values."""
    secrets_path = KiteSettings.from_env().secrets_path
    try:
        stored = read_secrets_file(secrets_path) if secrets_path.exists() else {}
    except Exception as exc:  # a file with wrong permissions is worth saying, not failing on
        stored, problem = {}, str(exc)
    else:
        problem = ""
    found = {}
    for name in (ENV_API_KEY, ENV_API_SECRET, ENV_ACCESS_TOKEN):
        where = [w for w, present in (("environment", name in os.environ),
                                      ("secrets file", name in stored)) if present]  # fmt: skip
        found[name] = " and ".join(where) if where else "missing"
    if problem:
        found["secrets_file_problem"] = problem
    return found


def machine() -> dict[str, Any]:
    from models.precision import cpu_model, precision_support

    bf16 = precision_support("bf16", "cpu")
    return {
        "cpu": cpu_model(),
        "cpu_capability": bf16.capability,
        "bf16_inference": "available" if bf16.available else f"not available ({bf16.detail})",
        "cuda": _cuda(),
    }


def _cuda() -> str:
    import torch

    return torch.cuda.get_device_name() if torch.cuda.is_available() else "not available"


def versions() -> dict[str, str]:
    out = {"nse-trader": code_version(), "python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def cmd_doctor(args: argparse.Namespace) -> int:
    report = {
        "paths": paths(args.db),
        "kite_credentials": credentials(),
        "machine": machine(),
        "versions": versions(),
        "environment": {
            name: "set"
            for name in sorted(os.environ)
            if name.startswith("TRADER_") or name in (TOKEN_FILE_ENV,)
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    _print_sections(report)
    return 0
