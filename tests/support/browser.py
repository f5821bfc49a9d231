"""How tests launch headless Chromium (Debian's ``/usr/bin/chromium`` or ``$CHROMIUM``) through
playwright's sync API: never a downloaded browser (no ``playwright install``)."""

from __future__ import annotations

import os
from pathlib import Path

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
