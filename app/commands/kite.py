"""``trader kite ...`` and ``trader data download`` argparse commands.

Each handler is ``args.func(args) -> int`` (the exit status) and turns every expected failure
into one plain ``error: ...`` line on stderr — bad input exits 2, Kite or network trouble 1 —
so users never see a traceback for a mistyped file name or an expired token.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import csv
import io
import json
import re
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from app.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, print_error
from brokers.kite.auth import CredentialsError, load_credentials, login
from brokers.kite.errors import KiteError
from brokers.kite.history import (
    INTERVAL_MAX_DAYS,
    HistoryDownloader,
    HistoryError,
    SymbolResult,
    plan_chunks,
)
from brokers.kite.preflight import BLOCK, PreflightReport, run_preflight
from brokers.kite.rest import KiteRestClient
from brokers.kite.settings import KiteSettings, KiteSettingsError
from brokers.kite.ticker_protocol import (
    PACKET_LENGTHS,
    Tick,
    TickerProtocolError,
    decode_message,
    decode_packet,
    decode_text_message,
    ticks_to_json,
)

_BASE64 = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


class InputFileError(ValueError):
    """A file given on the command line cannot be used; the message names it."""


def _fail(message: str, code: int) -> int:
    print_error(message)
    return code


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Map expected exceptions to a message and an exit status."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (InputFileError, CredentialsError, HistoryError, KiteSettingsError) as exc:
            return _fail(str(exc), EXIT_BAD_INPUT)
        except KiteError as exc:
            return _fail(str(exc), EXIT_FAILED)
        except OSError as exc:  # e.g. the output directory is not writable
            return _fail(f"{exc.filename or ''}: {exc.strerror or exc}", EXIT_FAILED)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


# --- kite decode ------------------------------------------------------------------------------


def read_message_file(path: Path, encoding: str = "auto") -> bytes:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if encoding == "base64" or (encoding == "auto" and raw.strip() and _BASE64.match(raw)):
        try:
            return base64.b64decode(b"".join(raw.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            if encoding == "base64":
                raise InputFileError(f"{path}: not valid base64 ({exc})") from None
    return raw


def decode_file(
    path: Path, encoding: str = "auto", bare: bool = False
) -> list[Tick] | dict[str, Any]:
    """Ticks of one websocket message stored in ``path`` (raw bytes, or base64 of them).

    A JSON text message (order update, error) decodes to its object. A single unframed packet —
    the form of Kite's recorded ``ticker_*.packet`` files — is accepted too: with ``bare``, or
    automatically when the bytes are not a framed message but have a packet's length.
    """
    data = read_message_file(path, encoding)
    stripped = data.lstrip()
    if stripped.startswith(b"{"):
        try:
            message = decode_text_message(stripped)
        except TickerProtocolError as exc:
            raise InputFileError(f"{path}: {exc}") from None
        return {"type": message.type, "data": message.data}
    if bare:
        tick = decode_packet(data)
        if tick is None:
            raise InputFileError(
                f"{path}: {len(data)} bytes is not a ticker packet length "
                f"({', '.join(map(str, PACKET_LENGTHS))})"
            )
        return [tick]
    try:
        return decode_message(data)
    except TickerProtocolError as exc:
        tick = decode_packet(data) if encoding == "auto" else None
        if tick is not None:
            return [tick]
        raise InputFileError(f"{path}: not a Kite ticker message: {exc}") from None


@_guarded
def _decode(args: argparse.Namespace) -> int:
    """Print the ticks of one raw ticker websocket message as JSON."""
    result = decode_file(args.file, args.encoding, args.bare)
    if isinstance(result, dict):
        print(json.dumps(result, indent=2))
    else:
        print(ticks_to_json(result))
    return EXIT_OK


# --- kite login -------------------------------------------------------------------------------


@_guarded
def _login(args: argparse.Namespace) -> int:
    """Exchange a request_token for today's access token and store it (0600)."""
    settings = KiteSettings.from_env()
    credentials = load_credentials(settings)
    login(settings, credentials, args.request_token)
    print(f"access token saved to {settings.secrets_path} (Kite expires it daily ~06:00 IST)")
    return EXIT_OK


# --- kite check -------------------------------------------------------------------------------


async def _run_check(args: argparse.Namespace, symbols: list[str]) -> PreflightReport:
    settings = KiteSettings.from_env()
    credentials = load_credentials(settings)
    report = PreflightReport()
    if not credentials.access_token:
        report.add("token", BLOCK, "no access token: run `trader kite login --request-token …`")
        return report
    async with KiteRestClient(settings, credentials) as client:
        return await run_preflight(client, symbols, exchange=args.exchange, capital=args.capital)


@_guarded
def _check(args: argparse.Namespace) -> int:
    """Pre-flight for live trading: print each check; exit 1 if anything blocks."""
    symbols = parse_symbols(args.symbols) if args.symbols else read_universe(args.universe)
    report = asyncio.run(_run_check(args, symbols))
    for line in report.lines():
        print(line)
    blockers = report.blockers
    if blockers:
        print(f"{len(blockers)} problem(s) block live trading; fix them and run the check again")
        return EXIT_FAILED
    print("clear: nothing found that blocks live trading")
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add ``kite decode FILE``, ``kite login``, ``kite check`` and ``data download`` to the
    top-level subparsers (the CLI discovers modules by their ``register``)."""
    register_data(subparsers)
    kite = subparsers.add_parser("kite", help="Zerodha Kite utilities")
    commands = kite.add_subparsers(dest="kite_command", metavar="COMMAND", required=True)

    decode = commands.add_parser(
        "decode",
        help="print the ticks of one raw ticker websocket message as JSON",
        description="Decode one Kite ticker websocket message (raw bytes or base64) into JSON "
        "ticks with the official client's field names and ISO-8601 IST timestamps.",
    )
    decode.add_argument("file", type=Path, help="file holding one websocket message")
    decode.add_argument(
        "--encoding",
        choices=["auto", "raw", "base64"],
        default="auto",
        help="how the file stores the message (default: detect)",
    )
    decode.add_argument(
        "--bare", action="store_true", help="the file is one unframed packet, not a message"
    )
    decode.set_defaults(func=_decode)

    login_parser = commands.add_parser(
        "login",
        help="turn a login request_token into an access token",
        description="Exchange the request_token from Kite's login redirect for an access token "
        "(needs KITE_API_KEY and KITE_API_SECRET, from the environment or the secrets file) and "
        "store it in the 0600 secrets file.",
    )
    login_parser.add_argument("--request-token", required=True)
    login_parser.set_defaults(func=_login)

    check = commands.add_parser(
        "check",
        help="pre-flight: what would block live trading today",
        description="With your credentials, check the access token, profile (NSE, MIS, MARKET), "
        "equity margin, the instrument token of every symbol and whether each can be traded "
        "intraday (MIS). Reads only. Exit 0 when clear, 1 when something blocks.",
    )
    which = check.add_mutually_exclusive_group(required=True)
    which.add_argument("--symbols", help="comma-separated trading symbols, e.g. RELIANCE,INFY")
    which.add_argument("--universe", type=Path, help="file with one symbol per line (or CSV)")
    check.add_argument("--exchange", default="NSE")
    check.add_argument(
        "--capital", type=float, help="warn when the equity margin is below this amount"
    )
    check.set_defaults(func=_check)


# --- data download ----------------------------------------------------------------------------


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_symbols(text: str) -> list[str]:
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    if not symbols:
        raise HistoryError("--symbols is empty")
    return symbols


def read_universe(path: Path) -> list[str]:
    """One symbol per line (``#`` comments), or a CSV with a ``symbol``/``tradingsymbol`` column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read universe file {path}: {exc}") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise InputFileError(f"universe file {path} lists no symbols")
    if "," not in lines[0]:
        return [ln.upper() for ln in lines]
    reader = csv.DictReader(io.StringIO("\n".join(lines)))
    names = {(n or "").strip().lower(): n for n in reader.fieldnames or []}
    column = names.get("symbol") or names.get("tradingsymbol")
    if column is None:
        raise InputFileError(f"universe file {path}: CSV needs a 'symbol' column")
    symbols = []
    for number, row in enumerate(reader, start=2):
        value = (row.get(column) or "").strip()
        if not value:
            raise InputFileError(f"universe file {path}: line {number}: empty symbol")
        symbols.append(value.upper())
    return symbols


async def _run_download(args: argparse.Namespace, symbols: list[str]) -> list[SymbolResult]:
    from tqdm import tqdm

    settings = KiteSettings.from_env()
    credentials = load_credentials(settings)
    credentials.require_access_token()
    chunks_per_symbol = len(plan_chunks(args.start, args.end, args.interval))
    with tqdm(
        total=chunks_per_symbol * len(symbols),
        unit="chunk",
        disable=args.no_progress,
        file=sys.stderr,
    ) as bar:

        def advance(symbol: str, chunk: object, fetched: bool) -> None:
            bar.set_postfix_str(symbol, refresh=False)
            bar.update(1)

        async with KiteRestClient(settings, credentials) as client:
            downloader = HistoryDownloader(client, args.out, on_chunk=advance)
            return await downloader.download(
                symbols, args.start, args.end, args.interval, args.exchange
            )


@_guarded
def _download(args: argparse.Namespace) -> int:
    """Download candles from Kite into one Parquet file per symbol."""
    symbols = parse_symbols(args.symbols) if args.symbols else read_universe(args.universe)
    try:
        results = asyncio.run(_run_download(args, symbols))
    except KeyboardInterrupt:
        print("rerun the same command to resume the download", file=sys.stderr)
        raise  # the CLI's exit policy: "interrupted", status 130
    for r in results:
        note = f", dropped {r.invalid} invalid" if r.invalid else ""
        print(
            f"{r.symbol}: {r.rows} candles → {r.path} "
            f"({r.chunks_fetched} chunks fetched, {r.chunks_skipped} already on disk{note})"
        )
    return EXIT_OK


def add_download_parser(data_commands: Any) -> None:
    """Add ``download`` under an existing ``data`` subcommand group."""
    download = data_commands.add_parser(
        "download",
        help="download historical candles from Kite into Parquet",
        description="Fetch candles in chunks within Kite's per-request limits, at most 3 "
        "requests/s, retrying 429/5xx/timeouts; reruns skip chunks already downloaded.",
    )
    which = download.add_mutually_exclusive_group(required=True)
    which.add_argument("--symbols", help="comma-separated trading symbols, e.g. RELIANCE,INFY")
    which.add_argument("--universe", type=Path, help="file with one symbol per line (or CSV)")
    download.add_argument("--from", dest="start", type=_date, required=True, metavar="YYYY-MM-DD")
    download.add_argument("--to", dest="end", type=_date, required=True, metavar="YYYY-MM-DD")
    download.add_argument("--interval", choices=list(INTERVAL_MAX_DAYS), default="minute")
    download.add_argument("--out", type=Path, required=True, help="output directory")
    download.add_argument("--exchange", default="NSE")
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    download.set_defaults(func=_download)


def register_data(subparsers: Any) -> None:
    """Add ``data download`` to the top-level subparsers; a no-op if ``data`` exists already
    (use ``add_download_parser`` to put ``download`` under someone else's ``data``)."""
    if "data" in subparsers.choices:
        return
    data = subparsers.add_parser("data", help="market data")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    add_download_parser(commands)
