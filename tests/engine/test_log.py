"""Every log line — structlog's, the Kite modules' stdlib ones, any library's — is redacted,
tagged with the run's mode and kept for the dashboard, through the one chain of engine.log."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator

import pytest
import structlog

from brokers.kite import broker, history, ticker_client
from config.redact import register_secret
from engine.log import configure_logging, recent_log_lines

SECRET = "s3cr3t-Value"


@pytest.fixture(autouse=True)
def structlog_defaults_after() -> Iterator[None]:
    """The root handler is taken off by tests/conftest.py; structlog's set-up too, here."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def json_lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_a_kite_stdlib_line_is_redacted_tagged_and_kept(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("paper", json_lines=True)
    logging.getLogger("brokers.kite.broker").warning(
        "order refused: access_token=%s api_key=%s", SECRET, SECRET
    )
    err = capsys.readouterr().err
    assert SECRET not in err
    (line,) = json_lines(err)
    assert line["event"] == "order refused: access_token=*** api_key=***"
    assert line["mode"] == "paper" and line["logger"] == "brokers.kite.broker"
    assert line["level"] == "warning"
    assert json.loads(recent_log_lines(1)[0]) == line


def test_console_lines_are_treated_alike(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("live")
    logging.getLogger("brokers.kite.broker").warning("refused: access_token=%s", SECRET)
    err = capsys.readouterr().err
    assert SECRET not in err and "access_token=***" in err and "mode=live" in err
    assert recent_log_lines(1)[0] == err.strip()


def test_the_kite_modules_log_into_the_root_chain() -> None:
    for module in (broker, history, ticker_client):
        assert module.log.name == module.__name__ and module.log.propagate


def test_third_party_lines_and_their_tracebacks_are_redacted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("paper", json_lines=True)
    logging.getLogger("aiohttp.client").error(
        "GET https://api.kite.trade/?access_token=%s Authorization: token key:%s", SECRET, SECRET
    )
    try:
        raise RuntimeError(f"handshake failed, password={SECRET}")
    except RuntimeError:
        logging.getLogger("somelib").exception("while connecting")
    err = capsys.readouterr().err
    assert SECRET not in err and SECRET not in "".join(recent_log_lines())
    first, second = json_lines(err)
    assert first["mode"] == second["mode"] == "paper"
    assert "Authorization: token ***" in str(first["event"])
    assert "password=***" in str(second["exception"])


def test_structlog_lines_are_redacted_by_key_and_in_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("backtest", json_lines=True)
    structlog.get_logger().info("login", access_token=SECRET, url=f"https://x/?api_secret={SECRET}")
    err = capsys.readouterr().err
    assert SECRET not in err
    (line,) = json_lines(err)
    assert line["access_token"] == "***" and line["url"] == "https://x/?api_secret=***"
    assert line["mode"] == "backtest"


def test_lines_from_other_threads_carry_the_mode(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("paper", json_lines=True)
    worker = threading.Thread(target=lambda: logging.getLogger("worker").warning("from a thread"))
    worker.start()
    worker.join()
    (line,) = json_lines(capsys.readouterr().err)
    assert line["mode"] == "paper"


def test_configuring_again_replaces_the_handler(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("paper", json_lines=True)
    configure_logging("live", json_lines=True)
    logging.getLogger("brokers.kite.history").warning("once")
    (line,) = json_lines(capsys.readouterr().err)
    assert line["mode"] == "live"


def test_records_below_the_level_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("paper", json_lines=True, level="warning")
    logging.getLogger("brokers.kite.ticker_client").info("chatter")
    structlog.get_logger().info("chatter")
    chatty = logging.getLogger("somelib.chatty")
    chatty.setLevel(logging.DEBUG)  # a library that turns itself up
    try:
        chatty.debug("chatter")
    finally:
        chatty.setLevel(logging.NOTSET)
    assert json_lines(capsys.readouterr().err) == []


def test_a_registered_credential_is_removed_from_any_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A value registered when credentials were loaded is dropped with no key around it (Kite
    echoing ``api_key:access_token``), from stdlib and structlog lines and tracebacks alike."""
    key, token = "k-" + SECRET, "t-" + SECRET + "-tok"
    register_secret(key, token)
    configure_logging("live", json_lines=True)
    logging.getLogger("brokers.kite.rest").warning("403: received %s:%s", key, token)
    structlog.get_logger().error("kite.failed", detail=f"echo {token}", extra=[token])
    try:
        raise RuntimeError(f"answer quoted {key}")
    except RuntimeError:
        logging.getLogger("somelib").exception("failed")
    err = capsys.readouterr().err
    kept = "".join(recent_log_lines())
    for text in (err, kept):
        assert key not in text and token not in text and SECRET not in text
    first, second, third = json_lines(err)
    assert first["event"] == "403: received ***:***"
    assert second["detail"] == "echo ***"
    assert "answer quoted ***" in str(third["exception"])
