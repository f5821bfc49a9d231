"""Historical candle download: symbols → tokens → paced, retried, resumable chunked requests.

Kite caps the date span of one candle request per interval (``INTERVAL_MAX_DAYS``) and allows
3 historical requests per second, so years of minute data are hundreds of requests; any of them
may meet a 429, a 5xx or a timeout, and the user may interrupt the run. Hence:

* each symbol's range is cut into chunks within the cap, fetched by a few workers sharing one
  rate limiter, each request retried with exponential backoff;
* every finished chunk is written to its own part file and recorded in a small JSON manifest
  beside the output (``<out>/<SYMBOL>_<interval>.manifest.json``), so a rerun skips it —
  except a chunk that reaches today, whose day is not over yet: that one is fetched again;
* when all of a symbol's chunks are in, the parts covering the requested range are merged,
  validated (sane OHLC, sorted, deduplicated) and written as ``<out>/<SYMBOL>_<interval>.parquet``.

Part files live in ``<out>/.parts/<SYMBOL>_<interval>/`` and stay as the cache for reruns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from brokers.kite.candles import (
    CandleReport,
    candles_to_frame,
    empty_frame,
    read_parquet,
    validate_candles,
    write_parquet,
)
from brokers.kite.errors import KiteError, KiteRetryableError
from brokers.kite.rate_limit import RateLimiter, RetryPolicy, with_retries
from brokers.kite.rest import Instrument, KiteRestClient
from config.sessions import IST

log = logging.getLogger(__name__)

INTERVAL_MAX_DAYS = {
    "minute": 60,
    "3minute": 100,
    "5minute": 100,
    "10minute": 100,
    "15minute": 200,
    "30minute": 200,
    "60minute": 400,
    "day": 2000,
}
MANIFEST_VERSION = 1


class HistoryError(ValueError):
    """A download request that cannot be served as asked (unknown symbol, bad range, ...)."""


class DownloadInterrupted(KiteError):
    """A chunk failed for good; finished chunks are kept and a rerun resumes from them."""


@dataclass(frozen=True, order=True)
class Chunk:
    """Calendar days ``start..end``, both inclusive, requested as one candle call."""

    start: date
    end: date

    @property
    def key(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"

    @property
    def request_start(self) -> datetime:
        return datetime.combine(self.start, time(0, 0, 0))

    @property
    def request_end(self) -> datetime:
        return datetime.combine(self.end, time(23, 59, 59))

    def covers(self, other: Chunk) -> bool:
        return self.start <= other.start and other.end <= self.end


def plan_chunks(start: date, end: date, interval: str) -> list[Chunk]:
    """Consecutive chunks of at most the interval's cap in days, from ``start`` to ``end``."""
    if interval not in INTERVAL_MAX_DAYS:
        raise HistoryError(
            f"interval {interval!r} is not a Kite candle interval ({', '.join(INTERVAL_MAX_DAYS)})"
        )
    if end < start:
        raise HistoryError(f"--from {start} is after --to {end}")
    span = timedelta(days=INTERVAL_MAX_DAYS[interval] - 1)
    chunks = []
    cursor = start
    while cursor <= end:
        last = min(cursor + span, end)
        chunks.append(Chunk(cursor, last))
        cursor = last + timedelta(days=1)
    return chunks


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Manifest:
    """Which chunks of one symbol/interval are already on disk (and where)."""

    path: Path
    symbol: str
    interval: str
    instrument_token: int
    chunks: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, symbol: str, interval: str, instrument_token: int) -> Manifest:
        fresh = cls(path, symbol, interval, instrument_token)
        if not path.exists():
            return fresh
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            ok = (
                data["version"] == MANIFEST_VERSION
                and data["symbol"] == symbol
                and data["interval"] == interval
            )
            chunks = dict(data["chunks"])
            token = int(data["instrument_token"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HistoryError(
                f"manifest {path} is unreadable ({exc}); delete it to download afresh"
            ) from None
        if not ok:
            raise HistoryError(f"manifest {path} belongs to another symbol/interval")
        if token != instrument_token:
            log.warning(
                "%s: instrument token changed %s → %s; cached chunks are ignored",
                symbol,
                token,
                instrument_token,
            )
            return fresh
        fresh.chunks = chunks
        return fresh

    def completed(self) -> list[Chunk]:
        """Chunks that are final: fetched after their last day was over."""
        return [
            Chunk(date.fromisoformat(a), date.fromisoformat(b))
            for a, b in (key.split("..") for key, info in self.chunks.items() if info.get("final"))
        ]

    def covers(self, chunk: Chunk) -> bool:
        return any(done.covers(chunk) for done in self.completed())

    def record(self, chunk: Chunk, rows: int, part: str | None, final: bool) -> None:
        self.chunks[chunk.key] = {"rows": rows, "part": part, "final": final}
        self.save()

    def save(self) -> None:
        body = {
            "version": MANIFEST_VERSION,
            "symbol": self.symbol,
            "interval": self.interval,
            "instrument_token": self.instrument_token,
            "chunks": dict(sorted(self.chunks.items())),
        }
        _atomic_write_text(self.path, json.dumps(body, indent=1))


class SymbolResult(NamedTuple):
    symbol: str
    path: Path
    rows: int
    chunks_fetched: int
    chunks_skipped: int
    duplicates: int
    invalid: int


def resolve_tokens(
    instruments: Sequence[Instrument], symbols: Sequence[str], exchange: str
) -> dict[str, int]:
    """Trading symbols → instrument tokens on ``exchange``; all unknown symbols named at once."""
    table = {i.tradingsymbol: i.instrument_token for i in instruments if i.exchange == exchange}
    missing = [s for s in symbols if s not in table]
    if missing:
        raise HistoryError(
            f"not in Kite's {exchange} instruments list: {', '.join(missing)} "
            "(symbols are Kite trading symbols, e.g. RELIANCE, INFY, 'NIFTY 50')"
        )
    return {s: table[s] for s in symbols}


def _check_symbol(symbol: str) -> str:
    if not symbol or any(ch in symbol for ch in "/\\\0") or symbol in {".", ".."}:
        raise HistoryError(f"symbol {symbol!r} cannot name an output file")
    return symbol


@dataclass
class _SymbolJob:
    symbol: str
    token: int
    manifest: Manifest
    parts_dir: Path
    output: Path
    planned: list[Chunk]
    fetched: int = 0
    skipped: int = 0


class HistoryDownloader:
    """Downloads candles through a ``KiteRestClient`` into ``out_dir``.

    ``on_chunk`` (if given) is called after each chunk is done or skipped — the CLI hangs its
    progress bar on it.
    """

    def __init__(
        self,
        client: KiteRestClient,
        out_dir: Path,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        concurrency: int | None = None,
        on_chunk: Callable[[str, Chunk, bool], None] | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        settings = client.settings
        self.client = client
        self.out_dir = out_dir
        self.limiter = limiter or RateLimiter(settings.historical_requests_per_s, 1.0)
        self.retry = retry or RetryPolicy(
            settings.max_retries, settings.backoff_base_s, settings.backoff_max_s
        )
        self.concurrency = concurrency or settings.historical_concurrency
        self.on_chunk = on_chunk
        self.today = today or (lambda: datetime.now(IST).date())

    def plan(
        self, tokens: dict[str, int], start: date, end: date, interval: str
    ) -> list[_SymbolJob]:
        chunks = plan_chunks(start, end, interval)
        jobs = []
        for symbol, token in tokens.items():
            stem = f"{_check_symbol(symbol)}_{interval}"
            manifest = Manifest.load(
                self.out_dir / f"{stem}.manifest.json", symbol, interval, token
            )
            jobs.append(
                _SymbolJob(
                    symbol,
                    token,
                    manifest,
                    self.out_dir / ".parts" / stem,
                    self.out_dir / f"{stem}.parquet",
                    list(chunks),
                )
            )
        return jobs

    async def download(
        self,
        symbols: Sequence[str],
        start: date,
        end: date,
        interval: str,
        exchange: str = "NSE",
    ) -> list[SymbolResult]:
        plan_chunks(start, end, interval)  # validate before any request
        if not symbols:
            raise HistoryError("no symbols to download")
        instruments = await with_retries(
            lambda: self.client.instruments(exchange), self.retry, self._log_retry
        )
        tokens = resolve_tokens(instruments, list(dict.fromkeys(symbols)), exchange)
        jobs = self.plan(tokens, start, end, interval)
        await self._fetch_all(jobs, interval)
        return [self._finish(job, start, end) for job in jobs]

    @staticmethod
    def _log_retry(attempt: int, exc: KiteRetryableError, wait: float) -> None:
        log.info("retry %d in %.2fs after: %s", attempt, wait, exc)

    async def _fetch_all(self, jobs: list[_SymbolJob], interval: str) -> None:
        queue: asyncio.Queue[tuple[_SymbolJob, Chunk]] = asyncio.Queue()
        for job in jobs:
            for chunk in job.planned:
                if job.manifest.covers(chunk):
                    job.skipped += 1
                    if self.on_chunk:
                        self.on_chunk(job.symbol, chunk, False)
                else:
                    queue.put_nowait((job, chunk))
        if queue.empty():
            return

        async def worker() -> None:
            while True:
                try:
                    job, chunk = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self._fetch_chunk(job, chunk, interval)

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        done, pending = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            exc = task.exception()
            if exc is not None:
                finished = sum(len(job.manifest.completed()) for job in jobs)
                if isinstance(exc, KiteRetryableError):
                    raise DownloadInterrupted(
                        f"download stopped after retries ({exc}); {finished} chunks are saved "
                        "and a rerun resumes from them",
                        exc.status,
                    ) from exc
                raise exc

    async def _fetch_chunk(self, job: _SymbolJob, chunk: Chunk, interval: str) -> None:
        async def request() -> list[list[Any]]:
            await self.limiter.acquire()
            return await self.client.historical_candles(
                job.token, interval, chunk.request_start, chunk.request_end
            )

        rows = await with_retries(request, self.retry, self._log_retry)
        source = f"{job.symbol} {interval} {chunk.key}"
        frame = candles_to_frame(rows, job.symbol, source)
        part: str | None = None
        if len(frame):
            part_path = job.parts_dir / f"{chunk.key}.parquet"
            write_parquet(frame, part_path)  # raw; validated at merge time
            part = str(part_path.relative_to(self.out_dir))
        # A chunk reaching today (IST) is still growing: kept for this run's output but fetched
        # again next time, so a daily rerun picks up the rest of the day.
        job.manifest.record(chunk, len(frame), part, final=chunk.end < self.today())
        job.fetched += 1
        if self.on_chunk:
            self.on_chunk(job.symbol, chunk, True)

    def _finish(self, job: _SymbolJob, start: date, end: date) -> SymbolResult:
        parts = [
            self.out_dir / info["part"]
            for key, info in sorted(job.manifest.chunks.items())
            if info.get("part") and _overlaps(key, start, end)
        ]
        frames = [read_parquet(p) for p in parts]
        merged = pd.concat(frames, ignore_index=True) if frames else empty_frame()
        lo = pd.Timestamp(datetime.combine(start, time(0)), tz=IST)
        hi = pd.Timestamp(datetime.combine(end + timedelta(days=1), time(0)), tz=IST)
        merged = merged[(merged["ts"] >= lo) & (merged["ts"] < hi)]
        clean, report = validate_candles(merged)
        write_parquet(clean, job.output)
        if report.invalid:
            log.warning("%s: dropped %d invalid candles", job.symbol, report.invalid)
        return _result(job, report)


def _overlaps(key: str, start: date, end: date) -> bool:
    a, b = (date.fromisoformat(x) for x in key.split(".."))
    return a <= end and start <= b


def _result(job: _SymbolJob, report: CandleReport) -> SymbolResult:
    return SymbolResult(
        job.symbol,
        job.output,
        report.rows,
        job.fetched,
        job.skipped,
        report.duplicates,
        report.invalid,
    )
