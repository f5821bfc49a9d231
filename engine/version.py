"""What code produced something: package version plus the git commit when run from a checkout.

The one definition for everything the project stamps — stored runs (``engine.store``) and model
files (``models.checkpoint``) alike — so a model and a run made from the same checkout carry the
same string and can be matched up by it.
"""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata
from pathlib import Path


@functools.cache
def code_version() -> str:
    """``<version>+g<12-hex commit>[.dirty]``; just the version outside a git checkout.

    ``.dirty`` marks uncommitted changes to tracked files: such a stamp names a commit the code
    did not exactly come from. Cached: the answer cannot change within a process that matters.
    """
    try:
        version = metadata.version("nse-trader")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        return f"{version}+g{sha}{'.dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return version
