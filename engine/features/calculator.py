"""The feature calculator: per-symbol state plus the two ways to drive the kernels.

``FeatureCalculator.update`` advances every symbol of one ``BarSlice`` (live and replay);
``compute_history`` runs the very same kernel over stored bars (training data, feature files).
Both end in ``kernels._step``, so streaming a history bar by bar reproduces the batch matrix bit
for bit — the property that keeps training and serving on the same numbers.

Both also take the session's hours (``SessionTimes``, the run's ``settings.session.times``) from
the caller: the time-of-session features are measured from the session's open over its length,
so a run with other hours places its bars in its own session.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, DTypeLike

from config.sessions import IST, IST_ZONE_NAME, SessionTimes, epoch_ns, local_days
from engine.features import kernels as K
from engine.features.spec import FEATURE_NAMES, MAX_WARMUP, N_FEATURES

if K.KERNEL_COLUMNS != FEATURE_NAMES or K.MAX_WARMUP != MAX_WARMUP:  # pragma: no cover
    raise RuntimeError("engine.features.kernels column layout differs from the feature spec")

BAR_FIELDS = ("open", "high", "low", "close", "volume")
_update_slice: Any = K.update_slice  # numba dispatchers, typed loosely for mypy
_update_rows: Any = K.update_rows


class FeatureInputError(ValueError):
    """A bar the calculator cannot take (bad price/volume, time not advancing, bad symbol id).

    ``row`` and ``sid`` locate the offending bar in the arrays given (None when not a bar).
    """

    def __init__(self, message: str, row: int | None = None, sid: int | None = None) -> None:
        super().__init__(message)
        self.row = row
        self.sid = sid


def _describe(
    kind: int, row: int, sid: np.ndarray, ts: np.ndarray | int, values: dict[str, np.ndarray]
) -> str:
    where = f"row {row} (sid {int(sid[row])}"
    stamp = ts if isinstance(ts, int) else int(ts[row])
    where += f", ts {pd.Timestamp(stamp, tz='UTC').tz_convert(IST)})"
    if kind == K.ERR_SID:
        return f"{where}: symbol id must be >= 0"
    if kind == K.ERR_PRICE:
        bad = ", ".join(f"{k}={float(values[k][row])!r}" for k in BAR_FIELDS[:4])
        return f"{where}: prices must be finite and > 0 ({bad})"
    if kind == K.ERR_VOLUME:
        return f"{where}: volume must be finite and >= 0 (volume={float(values['volume'][row])!r})"
    if kind == K.ERR_TIME:
        return f"{where}: time does not advance for this symbol (duplicate or out-of-order bar)"
    return f"{where}: error kind {kind}"


class FeatureCalculator:
    """Incremental 89-feature state for a universe of symbol ids (``Universe`` sids).

    State rows are preallocated for ``capacity`` symbols and grow (by reallocation) when a
    larger sid shows up, so a symbol may join at any time and starts from its own bar 0. A
    symbol absent from a slice is simply not advanced. ``session`` gives the hours the
    time-of-session features are measured in (the run's ``settings.session.times``).
    """

    def __init__(self, capacity: int = 128, *, session: SessionTimes) -> None:
        self._fs, self._ist = K.new_state(max(1, capacity))
        self.session = session
        self._session_args = (session.open_minute, session.length_minutes)

    @property
    def capacity(self) -> int:
        return int(self._fs.shape[0])

    def bars_seen(self, sid: int) -> int:
        """Bars this symbol has been advanced by (0 for a symbol never seen)."""
        return int(self._ist[sid, K.I_CNT]) if sid < self.capacity else 0

    def reset(self, sid: int) -> None:
        """Forget a symbol (e.g. after a corporate action); its next bar is bar 0 again."""
        if 0 <= sid < self.capacity:
            fresh_fs, fresh_ist = K.new_state(1)
            self._fs[sid] = fresh_fs[0]
            self._ist[sid] = fresh_ist[0]

    def _grow(self, needed: int) -> None:
        fs, ist = K.new_state(max(needed, 2 * self.capacity))
        fs[: self.capacity] = self._fs
        ist[: self.capacity] = self._ist
        self._fs, self._ist = fs, ist

    def update(
        self,
        sid: np.ndarray,
        ts_ns: int,
        o: np.ndarray,
        h: np.ndarray,
        lo: np.ndarray,
        c: np.ndarray,
        v: np.ndarray,
        session_open: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance the symbols of one slice; returns (float32[k, 89] values, bool[k] ready).

        The whole slice is validated before any state changes, so a refused slice leaves the
        calculator as it was.
        """
        k = len(sid)
        out = np.empty((k, N_FEATURES), dtype=np.float32)
        ready = np.empty(k, dtype=np.bool_)
        args = (sid, int(ts_ns), o, h, lo, c, v, session_open)
        hours = self._session_args
        try:
            kind, row = _update_slice(self._fs, self._ist, *args, *hours, out, ready)
        except TypeError:  # wrong dtype or layout: normalise once and retry
            args = _normalise(*args)
            kind, row = _update_slice(self._fs, self._ist, *args, *hours, out, ready)
        while kind == K.ERR_CAPACITY:
            self._grow(int(np.max(args[0])) + 1)
            kind, row = _update_slice(self._fs, self._ist, *args, *hours, out, ready)
        if kind != K.OK:
            fields = dict(zip(BAR_FIELDS, args[2:7], strict=True))
            message = _describe(kind, row, args[0], args[1], fields)
            raise FeatureInputError(message, row, int(args[0][row]))
        return out, ready

    def update_rows(
        self,
        sid: np.ndarray,
        ts_ns: np.ndarray,
        o: np.ndarray,
        h: np.ndarray,
        lo: np.ndarray,
        c: np.ndarray,
        v: np.ndarray,
        session_open: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance by a history of rows (time-ordered per symbol); same kernel as ``update``."""
        n = len(sid)
        out = np.empty((n, N_FEATURES), dtype=np.float32)
        ready = np.empty(n, dtype=np.bool_)
        args = _normalise(sid, ts_ns, o, h, lo, c, v, session_open, rows=True)
        if n and int(np.max(args[0])) >= self.capacity:
            self._grow(int(np.max(args[0])) + 1)
        kind, row = _update_rows(self._fs, self._ist, *args, *self._session_args, out, ready)
        if kind != K.OK:
            fields = dict(zip(BAR_FIELDS, args[2:7], strict=True))
            message = _describe(kind, row, args[0], args[1], fields)
            raise FeatureInputError(message, row, int(args[0][row]))
        return out, ready


def _normalise(
    sid: ArrayLike, ts: ArrayLike | int, o: ArrayLike, h: ArrayLike, lo: ArrayLike,
    c: ArrayLike, v: ArrayLike, sess: ArrayLike, rows: bool = False,
) -> tuple[Any, ...]:  # fmt: skip
    """Contiguous, writeable arrays of the kernels' dtypes (the kernels' signatures are fixed)."""
    f8 = [_plain(x, np.float64) for x in (o, h, lo, c, v)]
    sid_a = _plain(sid, np.int64)
    sess_a = _plain(sess, np.bool_)
    ts_a = _plain(ts, np.int64) if rows else int(ts)  # type: ignore[arg-type]
    lengths = {len(sid_a), len(sess_a), *(len(x) for x in f8)}
    if rows:
        lengths.add(len(ts_a))  # type: ignore[arg-type]
    if len(lengths) != 1:
        raise FeatureInputError(f"bar arrays differ in length: {sorted(lengths)}")
    return (sid_a, ts_a, *f8, sess_a)


def _plain(x: ArrayLike, dtype: DTypeLike) -> np.ndarray:
    arr: np.ndarray = np.ascontiguousarray(x, dtype=dtype)
    return arr if arr.flags.writeable else arr.copy()


def ts_ns_of(ts: pd.Series) -> np.ndarray:
    """tz-aware timestamps (any resolution) → UTC epoch nanoseconds."""
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise FeatureInputError("column 'ts' must be tz-aware timestamps")
    return epoch_ns(ts)


def session_open_flags(codes: np.ndarray, ts_ns: np.ndarray) -> np.ndarray:
    """First bar of each symbol's IST trading day, for rows sorted by (symbol, ts)."""
    days = local_days(ts_ns)
    first = np.ones(len(ts_ns), dtype=np.bool_)
    if len(ts_ns) > 1:
        first[1:] = (days[1:] != days[:-1]) | (codes[1:] != codes[:-1])
    return first


REQUIRED_COLUMNS = ("ts", "symbol", *BAR_FIELDS)


def history_arrays(
    frame: pd.DataFrame, *, session: SessionTimes
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Run the streaming kernel over a long bar frame (one or many symbols) of ``session``.

    Returns the bars sorted by (symbol, ts), their float32[n, 89] features in that row order
    and the ready flags. Each symbol starts from its own first bar; session-scoped features
    restart on each IST day (the first bar of a day is the session open: the loader has dropped
    what lies outside the session).
    """
    missing = [col for col in REQUIRED_COLUMNS if col not in frame.columns]
    if missing:
        raise FeatureInputError(f"bar frame lacks column(s): {', '.join(missing)}")
    bars = frame.sort_values(["symbol", "ts"], kind="stable")
    codes, symbols = pd.factorize(bars["symbol"], sort=True)
    codes = codes.astype(np.int64)
    ts_ns = ts_ns_of(bars["ts"])
    try:
        o, h, lo, c, v = (bars[col].to_numpy(dtype=np.float64) for col in BAR_FIELDS)
        calculator = FeatureCalculator(capacity=max(1, len(symbols)), session=session)
        values, ready = calculator.update_rows(
            codes, ts_ns, o, h, lo, c, v, session_open_flags(codes, ts_ns)
        )
    except FeatureInputError as exc:
        if exc.row is None or exc.sid is None:
            raise
        raise FeatureInputError(
            f"symbol {symbols[exc.sid]!r}, frame index {bars.index[exc.row]!r}: {exc}",
            exc.row,
            exc.sid,
        ) from None
    return bars, values, ready


def compute_history(frame: pd.DataFrame, *, session: SessionTimes) -> pd.DataFrame:
    """Features for a long bar frame: ts, symbol and the 89 float32 columns, sorted by
    (symbol, ts). ``frame`` has ts (tz-aware), symbol, open, high, low, close, volume."""
    if frame.empty:
        return _empty_result()
    bars, values, _ready = history_arrays(frame, session=session)
    result = pd.DataFrame(values, columns=list(FEATURE_NAMES), copy=False)
    result.insert(0, "symbol", bars["symbol"].to_numpy())
    result.insert(0, "ts", bars["ts"].reset_index(drop=True))
    return result


def _empty_result() -> pd.DataFrame:
    cols: dict[str, pd.Series] = {
        "ts": pd.Series([], dtype=f"datetime64[ns, {IST_ZONE_NAME}]"),
        "symbol": pd.Series([], dtype=object),
    }
    cols.update({name: pd.Series([], dtype=np.float32) for name in FEATURE_NAMES})
    return pd.DataFrame(cols)
