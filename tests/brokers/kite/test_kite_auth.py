"""Settings from the environment, credentials from env or a private file, redaction, login."""

from __future__ import annotations

import logging
import socket
import stat
from pathlib import Path

import pytest

from brokers.kite.auth import (
    CredentialsError,
    InsecureSecretsFileError,
    KiteCredentials,
    load_credentials,
    login,
    read_secrets_file,
    write_secrets_file,
)
from brokers.kite.errors import KiteError, KiteLoginError, KiteNetworkError, KiteTokenError
from brokers.kite.rest import KiteRestClient
from brokers.kite.settings import KiteSettings, KiteSettingsError
from config.redact import scrub
from tests.support.fake_kite.server import FAKE_REQUEST_TOKEN, FakeKite


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_settings_default_to_real_kite_and_take_env_overrides(tmp_path):
    assert KiteSettings().api_root == "https://api.kite.trade"
    assert KiteSettings().ws_url == "wss://ws.kite.trade"
    env = {
        "KITE_API_ROOT": "http://127.0.0.1:9999/",
        "KITE_WS_URL": "ws://127.0.0.1:9999/ws",
        "KITE_SECRETS_FILE": str(tmp_path / "k.env"),
    }
    settings = KiteSettings.from_env(env)
    assert settings.api_root == "http://127.0.0.1:9999"
    assert settings.ws_url == "ws://127.0.0.1:9999/ws"
    assert settings.secrets_path == tmp_path / "k.env"
    with pytest.raises(KiteSettingsError, match="ws_url 'http://x' must start with ws"):
        KiteSettings.from_env({"KITE_WS_URL": "http://x"})


def test_env_wins_over_file_field_by_field(tmp_path):
    secrets = private_file(
        tmp_path / "kite.env",
        "# mine\nKITE_API_KEY=filekey\nexport KITE_API_SECRET='filesecret'\n"
        "KITE_ACCESS_TOKEN=filetoken\n",
    )
    creds = load_credentials(env={"KITE_ACCESS_TOKEN": "envtoken"}, secrets_file=secrets)
    assert (creds.api_key, creds.api_secret, creds.access_token) == (
        "filekey",
        "filesecret",
        "envtoken",
    )
    only_env = load_credentials(env={"KITE_API_KEY": "k"}, secrets_file=tmp_path / "absent")
    assert only_env.access_token is None
    with pytest.raises(CredentialsError, match="run `trader kite login`"):
        only_env.require_access_token()


def test_missing_api_key_is_explained(tmp_path):
    with pytest.raises(CredentialsError, match="KITE_API_KEY"):
        load_credentials(env={}, secrets_file=tmp_path / "absent")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_secrets_file_readable_by_others_is_refused(tmp_path, mode):
    secrets = private_file(tmp_path / "kite.env", "KITE_API_KEY=k\n", mode)
    with pytest.raises(InsecureSecretsFileError, match=f"mode 0{mode:o}.*chmod 600"):
        load_credentials(env={}, secrets_file=secrets)


def test_malformed_secrets_line_is_named_without_echoing_it(tmp_path):
    secrets = private_file(tmp_path / "kite.env", "KITE_API_KEY=k\nthis-is-a-secret\n")
    with pytest.raises(CredentialsError, match=r"kite\.env:2: expected KEY=VALUE") as info:
        read_secrets_file(secrets)
    assert "this-is-a-secret" not in str(info.value)


def test_write_secrets_file_is_private_atomic_and_merges(tmp_path):
    path = tmp_path / "sub" / "kite.env"
    write_secrets_file(path, {"KITE_API_KEY": "k", "KITE_ACCESS_TOKEN": "old"})
    write_secrets_file(path, {"KITE_ACCESS_TOKEN": "new"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_secrets_file(path) == {"KITE_API_KEY": "k", "KITE_ACCESS_TOKEN": "new"}
    assert [p.name for p in path.parent.iterdir()] == ["kite.env"]


def test_credentials_are_redacted_everywhere(caplog):
    creds = KiteCredentials("key123-abcdef", "secret456-abcdef", "token789-abcdef")
    caplog.set_level(logging.INFO)
    logging.getLogger("test").info("creds: %s %r", creds, creds)
    for text in (repr(creds), str(creds), f"{creds}", caplog.text):
        assert "key123" not in text and "secret456" not in text and "token789" not in text
    assert "<redacted>" in repr(creds)
    url = "wss://ws.kite.trade?api_key=key123-abcdef&access_token=token789-abcdef"
    assert scrub(f"failed: {url}") == "failed: wss://ws.kite.trade?api_key=***&access_token=***"
    assert scrub("echo: key123-abcdef:token789-abcdef") == "echo: ***:***"  # registered when loaded


def test_login_against_the_fake_stores_a_working_token(tmp_path):
    with FakeKite().in_thread() as fake:
        settings = fake.settings(secrets_file=tmp_path / "kite.env")
        creds = fake.credentials(access_token=None)
        updated = login(settings, creds, FAKE_REQUEST_TOKEN)
        stored = read_secrets_file(settings.secrets_path)["KITE_ACCESS_TOKEN"]
        assert stored == updated.access_token and stored in fake.valid_tokens
        assert stat.S_IMODE(settings.secrets_path.stat().st_mode) == 0o600
        with pytest.raises(KiteLoginError, match="rejected the request token"):
            login(settings, creds, FAKE_REQUEST_TOKEN)  # a request token works once


def test_a_failed_login_says_what_failed(tmp_path):
    """A stale request token, a wrong API secret and an unreachable Kite are three different
    messages — none of them about the access token, none quoting what was sent."""
    with FakeKite().in_thread() as fake:
        fake.echo_credentials()  # the error bodies quote the request token and checksum
        settings = fake.settings(secrets_file=tmp_path / "kite.env")
        creds = fake.credentials(access_token=None)
        with pytest.raises(KiteLoginError) as stale:
            login(settings, creds, "request-token-used-yesterday")
        wrong = KiteCredentials(creds.api_key, "not-the-api-secret", None)
        with pytest.raises(KiteLoginError) as mismatch:
            login(settings, wrong, FAKE_REQUEST_TOKEN)
    text = str(stale.value)
    assert "Kite rejected the request token (expired or already used" in text
    assert "request-token-used-yesterday" not in text and "access token" not in text
    text = str(mismatch.value)
    assert "checksum" in text and "KITE_API_SECRET" in text and "access token" not in text
    assert FAKE_REQUEST_TOKEN not in text and "not-the-api-secret" not in text
    assert not settings.secrets_path.exists()

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = KiteSettings(api_root=f"http://127.0.0.1:{probe.getsockname()[1]}")
    with pytest.raises(KiteNetworkError, match=r"could not reach Kite at http://127\.0\.0\.1"):
        login(closed, creds, FAKE_REQUEST_TOKEN)


async def test_rest_client_reports_expired_token_plainly():
    async with FakeKite() as fake:
        fake.expire_token()
        async with KiteRestClient(fake.settings(), fake.credentials()) as client:
            with pytest.raises(KiteTokenError, match="expire daily") as info:
                await client.get_json("/user/profile")
        assert "fake_access_token" not in str(info.value)


async def test_an_echoed_authorization_header_never_leaves_a_kite_error():
    """Kite (or a proxy in between) quoting ``api_key:access_token`` in an error body: the
    ``KiteError`` built from it carries neither value, whatever the status."""
    async with FakeKite() as fake:
        fake.echo_credentials()
        creds = KiteCredentials("api-key-b7e1", "api-secret-b7e1", "access-token-b7e1")
        fake.api_key = creds.api_key
        fake.inject("profile", status=400, times=1)
        fake.inject("profile", status=503, times=1)
        errors = []
        async with KiteRestClient(fake.settings(), creds) as client:
            for _ in range(3):  # 400, 503, then 403: the token is not one the fake knows
                with pytest.raises(KiteError) as info:
                    await client.get_json("/user/profile")
                errors.append(info.value)
    assert [e.status for e in errors] == [400, 503, 403]
    assert isinstance(errors[-1], KiteTokenError)
    for error in errors:
        text = f"{error} {error.error_type}"
        assert "received: ***:***" in text
        assert creds.api_key not in text and creds.access_token not in text
