"""Kite credentials: from the environment or a private secrets file, never from the repository.

The secrets file is ``KEY=VALUE`` lines using the same names as the environment variables
(``KITE_API_KEY``, ``KITE_API_SECRET``, ``KITE_ACCESS_TOKEN``); ``#`` starts a comment. It must be
readable by its owner only (mode 0600): a token that lets anyone trade the account must not sit
in a world-readable file, so a looser mode is refused rather than warned about.

Credentials print as ``<redacted>`` everywhere (repr, str, logs). Their values are registered
with ``config.redact`` the moment a ``KiteCredentials`` exists (and a login's request token when
it is used), so ``config.redact.scrub`` removes them from any text that might embed them — a
websocket URL inside an exception message, an error body echoing the ``Authorization`` header —
even where no ``token=`` key surrounds them.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from brokers.kite.settings import KiteSettings
from config.redact import register_secret

ENV_API_KEY = "KITE_API_KEY"
ENV_API_SECRET = "KITE_API_SECRET"
ENV_ACCESS_TOKEN = "KITE_ACCESS_TOKEN"
_FIELDS = {ENV_API_KEY: "api_key", ENV_API_SECRET: "api_secret", ENV_ACCESS_TOKEN: "access_token"}


class CredentialsError(ValueError):
    """Credentials are missing, malformed, or stored unsafely."""


class InsecureSecretsFileError(CredentialsError):
    pass


@dataclass(frozen=True)
class KiteCredentials:
    api_key: str = field(repr=False)
    api_secret: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        # every way credentials come to exist (env, secrets file, login, tests) passes here
        register_secret(self.api_key, self.api_secret, self.access_token)

    def __repr__(self) -> str:
        def shown(value: str | None) -> str:
            return "<redacted>" if value else "<missing>"

        return (
            f"KiteCredentials(api_key={shown(self.api_key)}, "
            f"api_secret={shown(self.api_secret)}, access_token={shown(self.access_token)})"
        )

    __str__ = __repr__

    def require_access_token(self) -> str:
        if not self.access_token:
            raise CredentialsError(
                f"no Kite access token: set {ENV_ACCESS_TOKEN} or run `trader kite login`"
            )
        return self.access_token

    def require_api_secret(self) -> str:
        if not self.api_secret:
            raise CredentialsError(
                f"no Kite API secret: set {ENV_API_SECRET} or add it to the secrets file"
            )
        return self.api_secret

    def with_access_token(self, token: str) -> KiteCredentials:
        return replace(self, access_token=token)


def check_private(path: Path) -> None:
    """Refuse a secrets file that anyone but its owner can read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecureSecretsFileError(
            f"secrets file {path} has mode {mode:04o}; it must be private to its owner. "
            f"Fix with: chmod 600 {path}"
        )


def read_secrets_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` pairs of a private secrets file. Errors name the file and line."""
    try:
        check_private(path)
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CredentialsError(f"secrets file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(f"cannot read secrets file {path}: {exc}") from None
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not key:
            # never echo the line: it may hold a secret
            raise CredentialsError(f"{path}:{number}: expected KEY=VALUE")
        values[key] = value.strip().strip("'\"")
    return values


def write_secrets_file(path: Path, updates: Mapping[str, str]) -> None:
    """Merge ``updates`` into the secrets file, creating it 0600; atomic (temp file + rename)."""
    existing = read_secrets_file(path) if path.exists() else {}
    existing.update(updates)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".kite-secrets-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("# Kite credentials; keep this file private (chmod 600)\n")
            for key, value in existing.items():
                out.write(f"{key}={value}\n")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_credentials(
    settings: KiteSettings | None = None,
    env: Mapping[str, str] | None = None,
    secrets_file: Path | None = None,
) -> KiteCredentials:
    """Environment variables win field by field; the secrets file (if it exists) fills the rest.

    An API key is always required; the secret and token are checked by the operation that needs
    them (``require_access_token`` / ``require_api_secret``).
    """
    source = os.environ if env is None else env
    path = secrets_file or (settings or KiteSettings.from_env(source)).secrets_path
    from_file = read_secrets_file(path) if path.exists() else {}
    values: dict[str, str | None] = {}
    for env_name, attr in _FIELDS.items():
        values[attr] = source.get(env_name) or from_file.get(env_name) or None
    api_key = values.pop("api_key")
    if not api_key:
        raise CredentialsError(
            f"no Kite API key: set {ENV_API_KEY} or put it in the secrets file {path}"
        )
    return KiteCredentials(api_key=api_key, **values)


def stored_access_token(settings: KiteSettings, credentials: KiteCredentials) -> KiteCredentials:
    """``credentials`` with the access token the secrets file holds now — where ``trader kite
    login`` writes each day's token, so a running daemon reads it here (the file wins over an
    environment variable, which a running process cannot see change)."""
    token = read_secrets_file(settings.secrets_path).get(ENV_ACCESS_TOKEN)
    return credentials.with_access_token(token) if token else credentials


def exchange_request_token(
    settings: KiteSettings, credentials: KiteCredentials, request_token: str
) -> str:
    """Trade a login ``request_token`` for an access token via kiteconnect's ``generate_session``.

    Blocking (the official client uses requests): call it from the CLI or a worker thread.
    A refusal is a ``KiteLoginError`` that says which part Kite refused; no answer at all is a
    ``KiteNetworkError``.
    """
    import requests
    from kiteconnect import KiteConnect
    from kiteconnect import exceptions as kite_exceptions

    from brokers.kite.errors import KiteLoginError, KiteNetworkError

    register_secret(request_token)
    client = KiteConnect(
        api_key=credentials.api_key, root=settings.api_root, timeout=settings.request_timeout_s
    )
    try:
        session = client.generate_session(request_token, credentials.require_api_secret())
    except kite_exceptions.KiteException as exc:
        raise KiteLoginError(_login_refusal(exc), exc.code, type(exc).__name__) from None
    except requests.RequestException as exc:
        raise KiteNetworkError(
            f"login failed: could not reach Kite at {settings.api_root} "
            f"({type(exc).__name__}: {exc}); check the network and try again"
        ) from None
    token = session.get("access_token") if isinstance(session, dict) else None
    if not token:
        raise KiteLoginError("login failed: Kite answered without an access_token")
    return str(token)


def _login_refusal(exc: Exception) -> str:
    """What Kite refused in a login, in words a user can act on (Kite's own text appended).

    Kite answers a bad login with a ``TokenException`` whatever the cause; only its text tells
    a wrong API secret (the checksum) or API key from a stale request token."""
    from kiteconnect import exceptions as kite_exceptions

    said = f" (Kite said: {exc})"
    text = str(exc).lower()
    if "checksum" in text:
        return (
            "login failed: Kite rejected the login checksum: the API secret "
            f"({ENV_API_SECRET}) does not belong to the API key ({ENV_API_KEY}){said}"
        )
    if "api_key" in text:
        return f"login failed: Kite does not accept the API key ({ENV_API_KEY}){said}"
    if isinstance(exc, kite_exceptions.TokenException):
        return (
            "login failed: Kite rejected the request token (expired or already used: a request "
            "token is valid for a few minutes and only once); log in through Kite's login page "
            f"again and pass the new request_token{said}"
        )
    code = getattr(exc, "code", "?")
    return f"login failed: Kite refused the login ({type(exc).__name__}, HTTP {code}){said}"


def login(
    settings: KiteSettings, credentials: KiteCredentials, request_token: str
) -> KiteCredentials:
    """Exchange the request token and store the new access token in the secrets file."""
    token = exchange_request_token(settings, credentials, request_token)
    write_secrets_file(settings.secrets_path, {ENV_ACCESS_TOKEN: token})
    return credentials.with_access_token(token)
