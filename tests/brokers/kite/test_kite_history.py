"""Historical download against the fake Kite: chunking, faults, validation, resume."""

from __future__ import annotations

import itertools
import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from brokers.kite.errors import KiteInputError, KiteTokenError
from brokers.kite.history import (
    INTERVAL_MAX_DAYS,
    DownloadInterrupted,
    HistoryDownloader,
    HistoryError,
    plan_chunks,
)
from brokers.kite.rate_limit import RateLimiter
from brokers.kite.rest import KiteRestClient
from tests.support.fake_kite.candles import SyntheticCandles
from tests.support.fake_kite.server import FakeKite

SYMBOLS = {"ADANIPORTS": 3861249, "IGL": 2883073}  # present in the recorded instruments list
START, END = date(2021, 1, 1), date(2021, 5, 31)  # 151 days: minute chunks of 60, 60, 31


def expected_frame(fake: FakeKite, symbol: str, interval: str = "minute") -> pd.DataFrame:
    rows = fake.candles.candles(
        SYMBOLS[symbol], interval, datetime(2021, 1, 1), datetime(2021, 5, 31, 23, 59, 59)
    )
    return pd.DataFrame(
        {
            "ts": pd.to_datetime([r[0] for r in rows], format="%Y-%m-%dT%H:%M:%S%z")
            .tz_convert("Asia/Kolkata")
            .as_unit("us"),
            "symbol": symbol,
            "open": [float(r[1]) for r in rows],
            "high": [float(r[2]) for r in rows],
            "low": [float(r[3]) for r in rows],
            "close": [float(r[4]) for r in rows],
            "volume": [int(r[5]) for r in rows],
        }
    )


async def download(
    fake: FakeKite,
    out: Path,
    concurrency: int = 2,
    today: date = date(2024, 1, 1),
    **settings: object,
):
    async with KiteRestClient(fake.settings(**settings), fake.credentials()) as client:
        downloader = HistoryDownloader(client, out, concurrency=concurrency, today=lambda: today)
        return await downloader.download(list(SYMBOLS), START, END, "minute")


def historical_ranges(fake: FakeKite) -> list[tuple[str, str]]:
    return [(r.path, r.query["from"]) for r in fake.requests if r.route == "historical"]


@pytest.mark.parametrize("interval", list(INTERVAL_MAX_DAYS))
def test_chunks_respect_kite_range_limits_and_cover_the_range(interval):
    start, end = date(2019, 2, 3), date(2024, 11, 30)
    chunks = plan_chunks(start, end, interval)
    assert chunks[0].start == start and chunks[-1].end == end
    for a, b in itertools.pairwise(chunks):
        assert b.start == a.end + timedelta(days=1)
    limit = timedelta(days=INTERVAL_MAX_DAYS[interval])
    assert all(c.request_end - c.request_start <= limit for c in chunks)
    assert all(c.request_end - c.request_start > limit - timedelta(days=1) for c in chunks[:-1])


def test_plan_rejects_bad_requests():
    with pytest.raises(HistoryError, match="after"):
        plan_chunks(date(2021, 2, 1), date(2021, 1, 1), "minute")
    with pytest.raises(HistoryError, match="'2minute'"):
        plan_chunks(date(2021, 1, 1), date(2021, 2, 1), "2minute")


async def test_download_with_429_5xx_and_cuts_is_complete_and_exact(tmp_path):
    async with FakeKite() as fake:
        fake.inject("historical", status=429, times=2)
        fake.inject("historical", status=503, skip=3)
        fake.inject("historical", status=500, skip=4)
        fake.inject("historical", disconnect=True, skip=5)
        results = await download(fake, tmp_path)
        assert fake.count("historical") == 6 + 5  # 3 chunks × 2 symbols + 5 failed attempts
        for result in results:
            assert result.chunks_fetched == 3 and result.chunks_skipped == 0
            table = pq.read_table(result.path)
            assert str(table.schema.field("ts").type) == "timestamp[us, tz=Asia/Kolkata]"
            assert str(table.schema.field("volume").type) == "int64"
            got = table.to_pandas()
            want = expected_frame(fake, result.symbol)
            assert len(got) == len(pd.bdate_range(START, END)) * 375
            pd.testing.assert_frame_equal(got, want, check_dtype=False)
            assert got["ts"].is_monotonic_increasing and got["ts"].is_unique
            assert result.path.name == f"{result.symbol}_minute.parquet"


async def test_timeouts_are_retried(tmp_path):
    async with FakeKite() as fake:
        fake.inject("historical", delay_s=2.5, times=1)
        results = await download(fake, tmp_path, request_timeout_s=1.0)
        assert [r.rows for r in results] == [len(pd.bdate_range(START, END)) * 375] * 2
        # 6 chunks + the retry of the delayed one; on a loaded machine another request may
        # also outlive the 1 s timeout and be retried — never fewer, and the data stay exact
        assert fake.count("historical") >= 7


class DirtyCandles(SyntheticCandles):
    """Real Kite quirks: a repeated candle at a chunk edge and an impossible one."""

    def candles(self, token, interval, start, end):
        rows = super().candles(token, interval, start, end)
        if rows:
            rows.insert(1, list(rows[0]))  # duplicate timestamp
            bad = list(rows[-1])
            bad[3] = bad[2] + 1.0  # low above high
            rows[-1] = bad
        return rows


async def test_candles_are_validated_deduplicated_and_sorted(tmp_path):
    async with FakeKite(candles=DirtyCandles()) as fake:
        results = await download(fake, tmp_path)
    for r in results:
        assert r.duplicates == 3 and r.invalid == 3  # one of each per chunk
        frame = pq.read_table(r.path).to_pandas()
        assert frame["ts"].is_unique and frame["ts"].is_monotonic_increasing
        assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
        assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()


async def test_interrupted_download_resumes_without_refetching(tmp_path):
    async with FakeKite() as fake:
        fake.inject("historical", status=400, error_type="InputException", skip=2)
        with pytest.raises(KiteInputError):
            await download(fake, tmp_path, concurrency=1)
        first = historical_ranges(fake)
        assert len(first) == 3  # two chunks done, the third refused
        manifest = json.loads((tmp_path / "ADANIPORTS_minute.manifest.json").read_text())
        assert sorted(manifest["chunks"]) == ["2021-01-01..2021-03-01", "2021-03-02..2021-04-30"]
        assert not (tmp_path / "ADANIPORTS_minute.parquet").exists()

        fake.requests.clear()
        results = await download(fake, tmp_path, concurrency=1)
        second = historical_ranges(fake)
        assert len(second) == 4  # 6 chunks − the 2 already on disk
        assert not set(first[:2]) & set(second)
        assert [(r.chunks_fetched, r.chunks_skipped) for r in results] == [(1, 2), (3, 0)]
        for r in results:
            got = pq.read_table(r.path).to_pandas()
            pd.testing.assert_frame_equal(got, expected_frame(fake, r.symbol), check_dtype=False)

        fake.requests.clear()
        again = await download(fake, tmp_path)
        assert fake.count("historical") == 0
        assert [r.rows for r in again] == [r.rows for r in results]


async def test_a_chunk_reaching_today_is_fetched_again_on_rerun(tmp_path):
    async with FakeKite() as fake:
        await download(fake, tmp_path, today=END)
        manifest = json.loads((tmp_path / "IGL_minute.manifest.json").read_text())
        assert [c["final"] for c in manifest["chunks"].values()] == [True, True, False]
        fake.requests.clear()
        results = await download(fake, tmp_path, today=END + timedelta(days=1))
        assert [r.chunks_fetched for r in results] == [1, 1]
        assert {q for _, q in historical_ranges(fake)} == {"2021-05-01 00:00:00"}


async def test_exhausted_retries_stop_with_a_resumable_error(tmp_path):
    async with FakeKite() as fake:
        fake.inject("historical", status=503, times=None)
        with pytest.raises(DownloadInterrupted, match="rerun resumes"):
            await download(fake, tmp_path, max_retries=2, concurrency=1)
        assert fake.count("historical") == 3


async def test_expired_token_fails_at_once(tmp_path):
    async with FakeKite() as fake:
        fake.expire_token()
        with pytest.raises(KiteTokenError, match="trader kite login"):
            await download(fake, tmp_path)
        assert len(fake.requests) == 1  # not retried


async def test_unknown_symbols_are_named(tmp_path):
    async with (
        FakeKite() as fake,
        KiteRestClient(fake.settings(), fake.credentials()) as client,
    ):
        downloader = HistoryDownloader(client, tmp_path)
        with pytest.raises(HistoryError, match="NOPE, ALSO_NOPE"):
            await downloader.download(["IGL", "NOPE", "ALSO_NOPE"], START, END, "minute")
        assert fake.count("historical") == 0


async def test_rate_limiter_allows_at_most_n_per_rolling_window():
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(3, 1.0, clock=lambda: now[0], sleep=sleep)
    starts = []
    for _ in range(10):
        await limiter.acquire()
        starts.append(now[0])
    for i, t in enumerate(starts):
        assert sum(1 for u in starts if t <= u < t + 1.0) <= 3, i
    assert starts[3] == pytest.approx(1.0) and starts[9] == pytest.approx(3.0)


def test_default_pacing_is_kites_historical_limit(tmp_path):
    from brokers.kite.settings import KiteSettings

    client = KiteRestClient(KiteSettings(), FakeKite().credentials())
    downloader = HistoryDownloader(client, tmp_path)
    assert (downloader.limiter.max_calls, downloader.limiter.period_s) == (3, 1.0)
