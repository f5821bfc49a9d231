"""``trader kite decode|login`` and ``trader data download``, run through argparse in-process."""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import stat

import pyarrow.parquet as pq
import pytest
import structlog

from app.cli import main
from app.commands.kite import register, register_data
from brokers.kite.ticker_protocol import HEARTBEAT, decode_packet, frame_packets, tick_to_jsonable
from engine.log import recent_log_lines
from tests.support.fake_kite.server import FAKE_REQUEST_TOKEN, FakeKite
from tests.support.paths import KITE_MOCKS

FIXTURES = KITE_MOCKS


def trader(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="trader")
    commands = parser.add_subparsers(dest="command", required=True)
    register(commands)
    register_data(commands)
    args = parser.parse_args(list(argv))
    code: int = args.func(args)
    return code


def packet(name: str) -> bytes:
    return base64.b64decode((FIXTURES / f"ticker_{name}.packet").read_text())


def test_decode_recorded_fixture_file(capsys):
    assert trader("kite", "decode", str(FIXTURES / "ticker_full.packet")) == 0
    (tick,) = json.loads(capsys.readouterr().out)
    assert tick == tick_to_jsonable(decode_packet(packet("full")))
    assert tick["exchange_timestamp"] == "2021-07-05T10:41:27+05:30"
    assert tick["volume_traded"] == 1192471 and len(tick["depth"]["sell"]) == 5


def test_decode_raw_message_file(tmp_path, capsys):
    raw = tmp_path / "message.bin"
    raw.write_bytes(frame_packets([packet("quote"), packet("full")]))
    assert trader("kite", "decode", str(raw)) == 0
    ticks = json.loads(capsys.readouterr().out)
    assert [t["mode"] for t in ticks] == ["quote", "full"]
    assert trader("kite", "decode", "--encoding", "base64", str(FIXTURES / "ticker_quote.packet"))
    assert "error: " in capsys.readouterr().err  # a bare packet is not a message unless auto


def test_decode_heartbeat_and_text_messages(tmp_path, capsys):
    beat = tmp_path / "beat.bin"
    beat.write_bytes(HEARTBEAT)
    assert trader("kite", "decode", str(beat)) == 0
    assert json.loads(capsys.readouterr().out) == []
    text = tmp_path / "order.json"
    text.write_text(json.dumps({"type": "order", "data": {"order_id": "42"}}))
    assert trader("kite", "decode", str(text)) == 0
    assert json.loads(capsys.readouterr().out) == {"type": "order", "data": {"order_id": "42"}}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        (b"\x00\x02\x00\x08\x00\x01", "not a Kite ticker message: packet 1 of 2"),
        (b"{broken json", "not valid JSON"),
    ],
)
def test_decode_bad_files_name_the_file_and_exit_2(tmp_path, capsys, content, expected):
    path = tmp_path / "bad message.bin"
    if content is not None:
        path.write_bytes(content)
    assert trader("kite", "decode", str(path)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: ") and str(path) in captured.err
    assert expected in captured.err and "Traceback" not in captured.err


def test_decode_bare_needs_a_packet_length(tmp_path, capsys):
    path = tmp_path / "odd.bin"
    path.write_bytes(b"\x01" * 10)
    assert trader("kite", "decode", "--bare", str(path)) == 2
    assert "10 bytes is not a ticker packet length" in capsys.readouterr().err


@pytest.fixture
def fake_env(monkeypatch, tmp_path):
    with FakeKite().in_thread() as fake:
        monkeypatch.setenv("KITE_API_ROOT", fake.api_root)
        monkeypatch.setenv("KITE_WS_URL", fake.ws_url)
        monkeypatch.setenv("KITE_SECRETS_FILE", str(tmp_path / "secrets.env"))
        monkeypatch.setenv("KITE_API_KEY", fake.api_key)
        monkeypatch.setenv("KITE_API_SECRET", fake.api_secret)
        monkeypatch.delenv("KITE_ACCESS_TOKEN", raising=False)
        yield fake


def test_login_command_stores_token(fake_env, tmp_path, capsys):
    assert trader("kite", "login", "--request-token", FAKE_REQUEST_TOKEN) == 0
    secrets = tmp_path / "secrets.env"
    assert "saved to" in capsys.readouterr().out
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    assert "KITE_ACCESS_TOKEN=fake_access_token_1" in secrets.read_text()
    assert trader("kite", "login", "--request-token", FAKE_REQUEST_TOKEN) == 1  # used already
    err = capsys.readouterr().err
    assert "error: login failed: Kite rejected the request token (expired or " in err
    assert "access token" not in err and FAKE_REQUEST_TOKEN not in err


def test_data_download_command(fake_env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KITE_ACCESS_TOKEN", fake_env.credentials().access_token)
    universe = tmp_path / "universe.csv"
    universe.write_text("symbol,weight\nIGL,1\nCDSL,2\n")
    out = tmp_path / "data"
    argv = ["data", "download", "--universe", str(universe), "--from", "2021-01-01"]
    argv += ["--to", "2021-03-31", "--interval", "5minute", "--out", str(out)]
    assert trader(*argv) == 0
    printed = capsys.readouterr()
    assert "IGL: 4800 candles" in printed.out and "1 chunks fetched" in printed.out
    assert "chunk" in printed.err  # the progress bar
    table = pq.read_table(out / "CDSL_5minute.parquet")
    assert table.num_rows == 64 * 75  # 64 weekdays × 75 five-minute bars
    assert table.column("symbol").unique().to_pylist() == ["CDSL"]
    assert trader(*argv, "--no-progress") == 0
    assert "0 chunks fetched, 1 already on disk" in capsys.readouterr().out


def test_data_download_errors_are_plain(fake_env, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("KITE_ACCESS_TOKEN", fake_env.credentials().access_token)
    base = [
        "data",
        "download",
        "--from",
        "2021-01-01",
        "--to",
        "2021-01-05",
        "--out",
        str(tmp_path),
    ]
    assert trader(*base, "--symbols", "IGL,NOSUCH") == 2
    assert "NOSUCH" in capsys.readouterr().err
    assert trader(*base, "--universe", str(tmp_path / "missing.txt")) == 2
    assert "missing.txt" in capsys.readouterr().err
    fake_env.expire_token()
    assert trader(*base, "--symbols", "IGL", "--no-progress") == 1
    assert "trader kite login" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        trader("data", "download", "--symbols", "IGL", "--from", "2021-13-01", "--to", "x")
    assert info.value.code == 2
    assert "'2021-13-01' is not a date" in capsys.readouterr().err


# --- no credential in any output ---------------------------------------------------------------


@pytest.fixture
def echoing_kite(monkeypatch, tmp_path):
    """The fake Kite quoting ``api_key:access_token`` in every error body, with credentials
    no other test uses (so only this run's loading can have registered them)."""
    key, secret, token = (f"{name}-{secrets.token_hex(6)}" for name in ("key", "sec", "tok"))
    with FakeKite().in_thread() as fake:
        fake.api_key, fake.api_secret, fake.valid_tokens = key, secret, {token}
        fake.echo_credentials()
        monkeypatch.setenv("KITE_API_ROOT", fake.api_root)
        monkeypatch.setenv("KITE_WS_URL", fake.ws_url)
        monkeypatch.setenv("KITE_SECRETS_FILE", str(tmp_path / "secrets.env"))
        monkeypatch.setenv("KITE_API_KEY", key)
        monkeypatch.setenv("KITE_API_SECRET", secret)
        monkeypatch.setenv("KITE_ACCESS_TOKEN", token)
        yield fake, (key, secret, token)
    structlog.reset_defaults()


def assert_clean(text: str, values: tuple[str, ...]) -> None:
    for value in values:
        assert value not in text, f"{value!r} leaked into: {text}"


@pytest.mark.parametrize("json_lines", [False, True], ids=["console", "json"])
def test_data_download_never_prints_or_logs_an_echoed_token(echoing_kite, tmp_path, capsys,
                                                             json_lines):  # fmt: skip
    fake, values = echoing_kite
    fake.inject("historical", status=503, times=2)  # retried: the retries are logged
    argv = ["--log-json"] if json_lines else []
    argv += ["data", "download", "--symbols", "IGL", "--from", "2021-01-01", "--to", "2021-01-05"]
    argv += ["--no-progress", "--out"]
    assert main([*argv, str(tmp_path / "data")]) == 0
    first = capsys.readouterr()
    assert "received: ***:***" in first.err  # the retry lines: logged, scrubbed
    fake.expire_token()
    assert main([*argv, str(tmp_path / "more")]) == 1
    second = capsys.readouterr()
    assert "error: Kite rejected the access token" in second.err
    for text in (first.out, first.err, second.out, second.err, "".join(recent_log_lines())):
        assert_clean(text, values)


def test_paper_on_kite_reports_a_kite_error_without_the_token(echoing_kite, tmp_path, capsys):
    fake, values = echoing_kite
    fake.expire_token()
    code = main(
        ["paper", "--feed", "kite", "--kite-symbols", "INFY", "--db", str(tmp_path / "p.db"),
         "--history-cache", str(tmp_path / "cache"), "--warmup-days", "2"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "error: Kite rejected the access token" in err and "trader kite login" in err
    assert "internal error" not in err and "Traceback" not in err
    assert_clean(err + "".join(recent_log_lines()), values)
