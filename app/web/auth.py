"""The control token that guards the daemon's POST endpoints (kill switch, resume, flatten).

The token comes from ``TRADER_TOKEN``, or is generated at start and written to a file only its
owner can read (mode 0600), whose path is printed: the operator reads it from there, so the
token is never printed, logged or embedded in the dashboard page.
"""

from __future__ import annotations

import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from config.redact import register_secret

TOKEN_ENV = "TRADER_TOKEN"
TOKEN_FILE_ENV = "TRADER_TOKEN_FILE"
MIN_TOKEN_CHARS = 16


class ControlTokenError(ValueError):
    """The control token cannot be set up (too short, or its file cannot be written)."""


@dataclass(frozen=True)
class ControlToken:
    value: str
    #: where a generated token was written; None when it came from the environment
    path: Path | None

    def __post_init__(self) -> None:
        # a secret like the Kite credentials: whatever echoes it (a log line, an error) drops it
        register_secret(self.value)

    def accepts(self, authorization: str | None) -> bool:
        """True for an ``Authorization: Bearer <token>`` header carrying this token.

        The comparison is constant-time so the response time does not leak how much of a guess
        was right."""
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self.value.encode())


def default_token_path(port: int) -> Path:
    """``$TRADER_TOKEN_FILE``, else one file per port under the user's state directory (two
    daemons on two ports do not overwrite each other's token)."""
    explicit = os.environ.get(TOKEN_FILE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "nse-trader" / f"api-token-{port}"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only — also when the file existed before
    with looser permissions (O_CREAT's mode applies only to new files, hence the fchmod)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        raise ControlTokenError(
            f"cannot write the control token file {path}: {exc.strerror or exc}; "
            f"set {TOKEN_FILE_ENV} to a writable path or {TOKEN_ENV} to a token"
        ) from None


def resolve_token(port: int, token_file: Path | None = None) -> ControlToken:
    """The token from ``TRADER_TOKEN``, or a new random one written to ``token_file`` (default
    ``default_token_path(port)``)."""
    from_env = os.environ.get(TOKEN_ENV)
    if from_env is not None:
        if len(from_env.strip()) < MIN_TOKEN_CHARS:
            raise ControlTokenError(
                f"{TOKEN_ENV} is too short: use at least {MIN_TOKEN_CHARS} characters"
            )
        return ControlToken(from_env.strip(), None)
    path = token_file or default_token_path(port)
    value = secrets.token_urlsafe(32)
    write_private(path, value + "\n")
    return ControlToken(value, path)
