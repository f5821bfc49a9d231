"""Numba kernels: one incremental step of all 89 features for one symbol-bar.

Every feature keeps O(1) state per symbol in two preallocated arrays (``fs`` float64 and ``ist``
int64, one row per symbol id) and is updated from the new bar alone: running sums, Wilder and
EMA recursions, ring buffers for the value that leaves a window, monotonic deques for rolling
highs/lows. The same ``_step`` serves a live slice (``update_slice``) and a history
(``update_rows``), so training data and live features cannot drift apart.

Where a feature has a TA-Lib twin the arithmetic repeats TA-Lib's own operation order (the
installed C library, including where its compiler fuses a multiply-add into one FMA), so values
match TA-Lib bit for bit. The contract is with the TA-Lib C library this project pins (0.8.x,
wheel ``ta-lib`` 0.8.2): releases differ in exactly these details (two-coefficient Wilder steps,
shifted-sum variance, scale-aware zero guards), so another release agrees to ~1e-15 relative
rather than bit for bit, and may differ outright on flat-window guard cases.

Two TA-Lib algorithms are not strictly O(1) and are kept as TA-Lib has them because exact parity
is the contract: CCI's mean absolute deviation is a 20-term loop (it is not decomposable into
running sums), and the shifted-sum variance of STDDEV/BBANDS re-anchors itself with one pass over
its window every 32 windows or when cancellation is detected (amortised O(1)).

Column order is ``KERNEL_COLUMNS``; it must equal ``spec.FEATURE_NAMES`` (checked at import by
the calculator and by the tests). It lives here, as literal constants, because numba's cache is
keyed on this file: a layout change must touch this file to recompile.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from config.sessions import IST_OFFSET_NS, NS_PER_DAY, NS_PER_MINUTE

# ---- column layout (must equal spec.FEATURE_NAMES) -------------------------------------------
_SPANS = (5, 10, 20, 50, 100, 200)
KERNEL_COLUMNS: tuple[str, ...] = (
    *(f"sma_{n}" for n in _SPANS),
    *(f"ema_{n}" for n in _SPANS),
    *(f"dist_sma_{n}" for n in _SPANS),
    *(f"dist_ema_{n}" for n in _SPANS),
    "macd", "macd_signal", "macd_hist", "macd_hist_pct",
    "adx_14", "plus_di_14", "minus_di_14",
    "rsi_7", "rsi_14", "rsi_21",
    "roc_5", "roc_10", "roc_20", "roc_60",
    "mom_5", "mom_10", "mom_20",
    "stoch_k", "stoch_d", "willr_14", "cci_20",
    "trange", "atr_14", "natr_14",
    "bb_upper", "bb_middle", "bb_lower", "bb_pctb", "bb_width",
    "logret_std_5", "logret_std_10", "logret_std_20", "logret_std_60",
    "parkinson_20", "garman_klass_20",
    "obv", "ad", "mfi_14", "volume_z_20", "vwap_session", "dist_vwap",
    "vol_ratio_5", "vol_ratio_20",
    "body_ratio", "upper_wick_ratio", "lower_wick_ratio", "range_pct", "gap_pct",
    *(f"logret_lag_{k}" for k in range(10)),
    "mos_sin", "mos_cos", "day_of_week", "bars_since_open",
    "dist_session_high", "dist_session_low", "session_return",
)  # fmt: skip
N_COLUMNS = len(KERNEL_COLUMNS)
MAX_WARMUP = 199  # sma_200 / ema_200; checked against the spec by the calculator

C_SMA, C_EMA, C_DSMA, C_DEMA = 0, 6, 12, 18
C_MACD, C_MACDS, C_MACDH, C_MACDHP = 24, 25, 26, 27
C_ADX, C_PDI, C_MDI = 28, 29, 30
C_RSI, C_ROC, C_MOM = 31, 34, 38
C_STOK, C_STOD, C_WILLR, C_CCI = 41, 42, 43, 44
C_TR, C_ATR, C_NATR = 45, 46, 47
C_BBU, C_BBM, C_BBL, C_BBP, C_BBW = 48, 49, 50, 51, 52
C_LRSTD, C_PARK, C_GK = 53, 57, 58
C_OBV, C_AD, C_MFI, C_VZ, C_VWAP, C_DVWAP, C_VR5, C_VR20 = 59, 60, 61, 62, 63, 64, 65, 66
C_BODY, C_UWICK, C_LWICK, C_RANGE, C_GAP = 67, 68, 69, 70, 71
C_LAG = 72
C_MSIN, C_MCOS, C_DOW, C_BSO, C_DSH, C_DSL, C_SRET = 82, 83, 84, 85, 86, 87, 88

# ---- parameters --------------------------------------------------------------------------------
SMA_SPANS = np.array(_SPANS, dtype=np.int64)
EMA_K = np.array([2.0 / (n + 1) for n in _SPANS])
RSI_N = np.array((7, 14, 21), dtype=np.int64)
RSI_INV = np.array([1.0 / 7, 1.0 / 14, 1.0 / 21])
ROC_LAGS = np.array((5, 10, 20, 60), dtype=np.int64)
MOM_LAGS = np.array((5, 10, 20), dtype=np.int64)
LR_WIN = np.array((5, 10, 20, 60), dtype=np.int64)
MACD_FK, MACD_SK, MACD_GK = 2.0 / 13, 2.0 / 27, 2.0 / 10
ATR_N = 14
ATR_WB = 13.0 / 14.0
ATR_WA = 1.0 - ATR_WB
DMI_N = 14
HL_N = 14  # stochastic and Williams %R window
CCI_N = 20
BB_N = 20
MFI_N = 14
RANGE_N = 20
VOL_N = 20
PK_SCALE = 1.0 / (4.0 * math.log(2.0))
GK_C = 2.0 * math.log(2.0) - 1.0
TA_EPS = 1e-14  # TA-Lib's TA_EPSILON (scale-aware zero tests)
TWO_PI = 2.0 * math.pi
# The session's open and length are arguments (the run's settings), not constants. The IST
# offset and day length are facts of the calendar, frozen into the compiled (and cached) code.
NS_PER_MIN = float(NS_PER_MINUTE)
NO_TS = np.iinfo(np.int64).min

# ---- int state layout --------------------------------------------------------------------------
I_CNT, I_SCNT, I_LAST_TS, I_PREV_TS = 0, 1, 2, 3
I_HQ_HEAD, I_HQ_TAIL, I_LQ_HEAD, I_LQ_TAIL = 4, 5, 6, 7
I_MFI_NULL, I_BB_BSR, I_V_BSR = 8, 9, 10
I_LR_BSR = 11  # 4
I_HQ_IDX, I_LQ_IDX = 16, 32  # 16 each
N_ISTATE = 48

# ---- float state layout ------------------------------------------------------------------------
F_PC, F_PH, F_PL, F_PTP = 0, 1, 2, 3
F_SMA = 4  # 6 pending sums
F_EMA = 10  # 6
F_MFAST, F_MSLOW, F_MSIG = 16, 17, 18
F_RSI_G, F_RSI_L = 19, 22  # 3 each
F_ATR = 25
F_PDM, F_MDM, F_DTR, F_SUMDX, F_ADX = 26, 27, 28, 29, 30
F_SK_P, F_SD_P = 31, 32
F_BB_SH, F_BB_T1, F_BB_T2 = 33, 34, 35
F_LR_SH, F_LR_T1, F_LR_T2 = 36, 40, 44  # 4 each
F_PK, F_GK = 48, 49
F_OBV, F_AD, F_MFP, F_MFN = 50, 51, 52, 53
F_V5, F_V20, F_V_SH, F_V_T1, F_V_T2 = 54, 55, 56, 57, 58
F_SPV, F_SV, F_STP, F_SHI, F_SLO, F_SOPEN = 59, 60, 61, 62, 63, 64
R_C, M_C = 72, 255  # closes (and the SMA/BB/ROC/MOM windows), 256 slots
R_LR, M_LR = 328, 63  # logret_pct, 64 slots
R_V, M_V = 392, 31  # volume, 32 slots
R_TP = 424  # CCI typical prices, exactly CCI_N slots (TA-Lib's physical order)
R_FK, R_SK, M_K = 444, 448, 3  # fast %K / slow %K, 4 slots each
R_MFP, R_MFN = 452, 466  # MFI flows, exactly MFI_N slots each
R_PK, R_GK, M_RG = 480, 512, 31  # Parkinson / Garman–Klass terms, 32 slots
R_HQ, R_LQ, M_Q = 544, 560, 15  # deque values, 16 slots
N_FSTATE = 576

# ---- error kinds returned by the kernels (row index alongside) ---------------------------------
OK, ERR_CAPACITY, ERR_SID, ERR_PRICE, ERR_VOLUME, ERR_TIME = 0, 1, 2, 3, 4, 5


@intrinsic
def _fma(typingctx, a, b, c):
    """Fused a*b + c (one rounding), as TA-Lib's compiled C computes some recurrences."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        f64 = ir.DoubleType()
        fnty = ir.FunctionType(f64, [f64, f64, f64])
        fn = builder.module.declare_intrinsic("llvm.fma", [f64], fnty)
        return builder.call(fn, args)

    return sig, codegen


@njit(cache=True)
def _ratio_m1(a: float, b: float) -> float:
    return a / b - 1.0 if b > 0.0 else 0.0


@njit(cache=True)
def _true_range(h: float, lo: float, pc: float) -> float:
    g = h - lo
    x = abs(pc - h)
    if x > g:
        g = x
    x = abs(pc - lo)
    if x > g:
        g = x
    return g


@njit(cache=True)
def _sma_push(fs, r, f_pend, ring, mask, s, x, n):
    """TA-Lib SMA on a series whose value ``x`` (index ``s``) is already in the ring."""
    if s < n - 1:
        fs[r, f_pend] += x
        return np.nan
    total = fs[r, f_pend] + x
    fs[r, f_pend] = total - fs[r, ring + ((s - n + 1) & mask)]
    return total / n


@njit(cache=True)
def _var_push(fs, ist, r, f_sh, f_t1, f_t2, i_bsr, ring, mask, s, x, n):
    """TA-Lib's cancellation-free rolling variance (shifted sums, periodic re-anchoring).

    Returns the population variance of the last ``n`` values, or -1.0 during warm-up.
    """
    if s == 0:
        fs[r, f_sh] = x
        fs[r, f_t1] = 0.0
        fs[r, f_t2] = 0.0
        ist[r, i_bsr] = 32 * n
    inv = 1.0 / n
    shift = fs[r, f_sh]
    d = x - shift
    t1 = fs[r, f_t1] + d
    t2 = fs[r, f_t2] + d * d
    if s < n - 1:
        fs[r, f_t1] = t1
        fs[r, f_t2] = t2
        return -1.0
    m1 = t1 * inv
    var = t2 * inv - m1 * m1
    d = fs[r, ring + ((s - n + 1) & mask)] - shift
    t1 -= d
    d = d * d
    t2 -= d
    bsr = ist[r, i_bsr] - 1
    if var < 0.000001 * (t2 * inv) or d > 1000000.0 * t2 or bsr <= 0:
        bsr = 32 * n
        start = s - n + 1
        total = 0.0
        for j in range(start, s + 1):
            total += fs[r, ring + (j & mask)]
        shift = total * inv
        t1 = 0.0
        t2 = 0.0
        for j in range(start, s + 1):
            e = fs[r, ring + (j & mask)] - shift
            t1 += e
            t2 += e * e
        m1 = t1 * inv
        var = t2 * inv - m1 * m1
        if var < 0.000000000001 * (t2 * inv):
            var = 0.0
        e = fs[r, ring + (start & mask)] - shift
        t1 -= e
        t2 -= e * e
        fs[r, f_sh] = shift
    ist[r, i_bsr] = bsr
    fs[r, f_t1] = t1
    fs[r, f_t2] = t2
    return var


@njit(cache=True)
def _deque_push(fs, ist, r, i_head, i_tail, i_idx, f_val, t, x, n, keep_max):
    """Monotonic deque over the last ``n`` bars; returns the window max (or min)."""
    head = ist[r, i_head]
    tail = ist[r, i_tail]
    while head < tail and ist[r, i_idx + (head & M_Q)] <= t - n:
        head += 1
    if keep_max:
        while tail > head and fs[r, f_val + ((tail - 1) & M_Q)] <= x:
            tail -= 1
    else:
        while tail > head and fs[r, f_val + ((tail - 1) & M_Q)] >= x:
            tail -= 1
    fs[r, f_val + (tail & M_Q)] = x
    ist[r, i_idx + (tail & M_Q)] = t
    tail += 1
    ist[r, i_head] = head
    ist[r, i_tail] = tail
    return fs[r, f_val + (head & M_Q)]


@njit(cache=True)
def _valid_bar(o: float, h: float, lo: float, c: float, v: float) -> int:
    inf = np.inf
    if not (0.0 < o < inf and 0.0 < h < inf and 0.0 < lo < inf and 0.0 < c < inf):
        return ERR_PRICE
    if not (0.0 <= v < inf):
        return ERR_VOLUME
    return OK


@njit(cache=True)
def _step(fs, ist, r, ts, o, h, lo, c, v, sess_open, open_min, session_min, out, i):
    """Advance symbol row ``r`` by one bar and write its 89 features into ``out[i]``.

    ``open_min`` (minute of the IST day the session opens) and ``session_min`` (its length in
    minutes) place the bar within the session for the time-of-session features.
    """
    nan = np.nan
    t = ist[r, I_CNT]
    pc = fs[r, F_PC]
    ph = fs[r, F_PH]
    pl = fs[r, F_PL]
    fs[r, R_C + (t & M_C)] = c
    sma20 = nan

    # -- moving averages (TA-Lib SMA running total; EMA seeded by that SMA) ---------------
    for j in range(6):
        n = SMA_SPANS[j]
        sma = _sma_push(fs, r, F_SMA + j, R_C, M_C, t, c, n)
        if j == 2:
            sma20 = sma  # Bollinger's middle band is this very SMA
        if t < n - 1:
            out[i, C_SMA + j] = nan
            out[i, C_EMA + j] = nan
            out[i, C_DSMA + j] = nan
            out[i, C_DEMA + j] = nan
            continue
        if t == n - 1:
            ema = sma
        else:
            e = fs[r, F_EMA + j]
            ema = _fma(c - e, EMA_K[j], e)
        fs[r, F_EMA + j] = ema
        out[i, C_SMA + j] = sma
        out[i, C_EMA + j] = ema
        out[i, C_DSMA + j] = _ratio_m1(c, sma)
        out[i, C_DEMA + j] = _ratio_m1(c, ema)

    # -- MACD 12/26/9: both EMAs seeded by plain means of the windows ending at bar 25 ------
    if t < 25:
        macd = nan
    else:
        if t == 25:
            slow = 0.0
            for q in range(t - 25, t - 11):
                slow += fs[r, R_C + (q & M_C)]
            fast = 0.0
            for q in range(t - 11, t + 1):
                x = fs[r, R_C + (q & M_C)]
                fast += x
                slow += x
            slow = slow / 26
            fast = fast / 12
        else:
            fast = fs[r, F_MFAST]
            slow = fs[r, F_MSLOW]
            fast = _fma(c - fast, MACD_FK, fast)
            slow = _fma(c - slow, MACD_SK, slow)
        fs[r, F_MFAST] = fast
        fs[r, F_MSLOW] = slow
        macd = fast - slow
        if t == 25:
            fs[r, F_MSIG] = 0.0 + macd
        elif t <= 33:
            fs[r, F_MSIG] += macd
            if t == 33:
                fs[r, F_MSIG] = fs[r, F_MSIG] / 9
        else:
            sig = fs[r, F_MSIG]
            fs[r, F_MSIG] = _fma(macd - sig, MACD_GK, sig)
    if t < 33:
        out[i, C_MACD] = nan
        out[i, C_MACDS] = nan
        out[i, C_MACDH] = nan
        out[i, C_MACDHP] = nan
    else:
        sig = fs[r, F_MSIG]
        hist = macd - sig
        out[i, C_MACD] = macd
        out[i, C_MACDS] = sig
        out[i, C_MACDH] = hist
        out[i, C_MACDHP] = 100.0 * hist / c

    # -- true range, ATR/NATR (two-coefficient Wilder step), +DI/-DI/ADX ---------------------
    if t == 0:
        out[i, C_TR] = nan
        out[i, C_ATR] = nan
        out[i, C_NATR] = nan
        out[i, C_ADX] = nan
        out[i, C_PDI] = nan
        out[i, C_MDI] = nan
    else:
        tr = _true_range(h, lo, pc)
        out[i, C_TR] = tr
        if t <= ATR_N:
            fs[r, F_ATR] += tr
            if t == ATR_N:
                fs[r, F_ATR] = fs[r, F_ATR] / ATR_N
        else:
            fs[r, F_ATR] = _fma(ATR_WB, fs[r, F_ATR], ATR_WA * tr)
        if t < ATR_N:
            out[i, C_ATR] = nan
            out[i, C_NATR] = nan
        else:
            atr = fs[r, F_ATR]
            out[i, C_ATR] = atr
            out[i, C_NATR] = (atr / c) * 100.0

        diff_p = h - ph
        diff_m = pl - lo
        minus_dm = diff_m if (diff_m > 0 and diff_p < diff_m) else 0.0
        plus_dm = diff_p if (diff_p > 0 and diff_p > diff_m) else 0.0
        if t <= DMI_N - 1:
            fs[r, F_MDM] += minus_dm
            fs[r, F_PDM] += plus_dm
            fs[r, F_DTR] += tr
            out[i, C_PDI] = nan
            out[i, C_MDI] = nan
            out[i, C_ADX] = nan
        else:
            mdm = fs[r, F_MDM]
            pdm = fs[r, F_PDM]
            dtr = fs[r, F_DTR]
            mdm -= mdm / DMI_N
            pdm -= pdm / DMI_N
            mdm += minus_dm
            pdm += plus_dm
            dtr = dtr - dtr / DMI_N + tr
            fs[r, F_MDM] = mdm
            fs[r, F_PDM] = pdm
            fs[r, F_DTR] = dtr
            if dtr > 0.0:
                mdi = 100.0 * (mdm / dtr)
                pdi = 100.0 * (pdm / dtr)
            else:
                mdi = 0.0
                pdi = 0.0
            out[i, C_PDI] = pdi
            out[i, C_MDI] = mdi
            dsum = mdi + pdi
            has_dx = dtr > 0.0 and not (-TA_EPS < dsum < TA_EPS)
            dx = 100.0 * (abs(mdi - pdi) / dsum) if has_dx else 0.0
            if t <= 2 * DMI_N - 1:
                if has_dx:
                    fs[r, F_SUMDX] += dx
                if t == 2 * DMI_N - 1:
                    fs[r, F_ADX] = fs[r, F_SUMDX] / DMI_N
            elif has_dx:
                fs[r, F_ADX] = (fs[r, F_ADX] * (DMI_N - 1) + dx) / DMI_N
            out[i, C_ADX] = fs[r, F_ADX] if t >= 2 * DMI_N - 1 else nan

    # -- RSI (Wilder gains/losses, seeded by plain means) -----------------------------------
    if t == 0:
        for j in range(3):
            out[i, C_RSI + j] = nan
    else:
        d = c - pc
        gain = d if d > 0.0 else 0.0
        loss = gain - d
        for j in range(3):
            n = RSI_N[j]
            g = fs[r, F_RSI_G + j]
            lo_ = fs[r, F_RSI_L + j]
            if t <= n:
                g += gain
                lo_ += loss
                if t == n:
                    lo_ *= RSI_INV[j]
                    g *= RSI_INV[j]
            else:
                lo_ *= n - 1
                g *= n - 1
                g += gain
                lo_ += loss
                lo_ *= RSI_INV[j]
                g *= RSI_INV[j]
            fs[r, F_RSI_G + j] = g
            fs[r, F_RSI_L + j] = lo_
            if t < n:
                out[i, C_RSI + j] = nan
            else:
                total = g + lo_
                out[i, C_RSI + j] = 100.0 * (g / total) if total > 0.0 else 0.0

    # -- ROC / MOM --------------------------------------------------------------------------
    for j in range(4):
        n = ROC_LAGS[j]
        if t < n:
            out[i, C_ROC + j] = nan
        else:
            p = fs[r, R_C + ((t - n) & M_C)]
            out[i, C_ROC + j] = ((c / p) - 1.0) * 100.0 if p != 0.0 else 0.0
    for j in range(3):
        n = MOM_LAGS[j]
        out[i, C_MOM + j] = c - fs[r, R_C + ((t - n) & M_C)] if t >= n else nan

    # -- stochastic and Williams %R over the 14-bar high/low (monotonic deques) -------------
    hh = _deque_push(fs, ist, r, I_HQ_HEAD, I_HQ_TAIL, I_HQ_IDX, R_HQ, t, h, HL_N, True)
    ll = _deque_push(fs, ist, r, I_LQ_HEAD, I_LQ_TAIL, I_LQ_IDX, R_LQ, t, lo, HL_N, False)
    out[i, C_STOK] = nan
    out[i, C_STOD] = nan
    if t < HL_N - 1:
        out[i, C_WILLR] = nan
    else:
        rng = hh - ll
        flat = abs(rng) <= TA_EPS * (abs(hh) + abs(ll))
        if flat:
            out[i, C_WILLR] = 0.0
            fast_k = 0.0
        else:
            w = ((hh - c) / rng) * (-100.0)
            out[i, C_WILLR] = min(0.0, max(-100.0, w))
            fast_k = (c - ll) / rng * 100.0
        u = t - (HL_N - 1)
        fs[r, R_FK + (u & M_K)] = fast_k
        slow_k = _sma_push(fs, r, F_SK_P, R_FK, M_K, u, fast_k, 3)
        if u >= 2:
            w2 = u - 2
            fs[r, R_SK + (w2 & M_K)] = slow_k
            slow_d = _sma_push(fs, r, F_SD_P, R_SK, M_K, w2, slow_k, 3)
            if w2 >= 2:
                out[i, C_STOK] = slow_k
                out[i, C_STOD] = slow_d

    # -- CCI (TA-Lib: sums over the ring in physical order) ---------------------------------
    tp = (h + lo + c) / 3
    fs[r, R_TP + t % CCI_N] = tp
    if t < CCI_N - 1:
        out[i, C_CCI] = nan
    else:
        avg = 0.0
        for j in range(CCI_N):
            avg += fs[r, R_TP + j]
        avg /= CCI_N
        mad = 0.0
        for j in range(CCI_N):
            mad += abs(fs[r, R_TP + j] - avg)
        mad /= CCI_N
        dev = tp - avg
        scale = abs(avg)
        if abs(dev) <= TA_EPS * scale or abs(mad) <= TA_EPS * scale:
            out[i, C_CCI] = 0.0
        else:
            out[i, C_CCI] = dev / (0.015 * mad)

    # -- Bollinger bands (SMA 20 middle, TA-Lib variance) -----------------------------------
    var = _var_push(fs, ist, r, F_BB_SH, F_BB_T1, F_BB_T2, I_BB_BSR, R_C, M_C, t, c, BB_N)
    if t < BB_N - 1:
        out[i, C_BBU] = nan
        out[i, C_BBM] = nan
        out[i, C_BBL] = nan
        out[i, C_BBP] = nan
        out[i, C_BBW] = nan
    else:
        mid = sma20
        sd = math.sqrt(var) if var != 0.0 else 0.0
        band = sd * 2.0
        up = mid + band
        dn = mid - band
        out[i, C_BBU] = up
        out[i, C_BBM] = mid
        out[i, C_BBL] = dn
        width = up - dn
        out[i, C_BBP] = (c - dn) / width if width > 0.0 else 0.0
        out[i, C_BBW] = width / mid

    # -- log returns: lags and TA-Lib STDDEV over several windows ---------------------------
    if t == 0:
        for j in range(4):
            out[i, C_LRSTD + j] = nan
        for k in range(10):
            out[i, C_LAG + k] = nan
        out[i, C_GAP] = nan
    else:
        s = t - 1
        lr = 100.0 * math.log(c / pc)
        fs[r, R_LR + (s & M_LR)] = lr
        for j in range(4):
            n = LR_WIN[j]
            var = _var_push(
                fs, ist, r, F_LR_SH + j, F_LR_T1 + j, F_LR_T2 + j, I_LR_BSR + j,
                R_LR, M_LR, s, lr, n,
            )  # fmt: skip
            out[i, C_LRSTD + j] = math.sqrt(var) if s >= n - 1 else nan
        for k in range(10):
            out[i, C_LAG + k] = fs[r, R_LR + ((s - k) & M_LR)] if s >= k else nan
        out[i, C_GAP] = 100.0 * (o / pc - 1.0)

    # -- range-based volatility (percent units) ---------------------------------------------
    hl = 100.0 * math.log(h / lo)
    co = 100.0 * math.log(c / o)
    pk_term = hl * hl
    gk_term = 0.5 * hl * hl - GK_C * co * co
    fs[r, R_PK + (t & M_RG)] = pk_term
    fs[r, R_GK + (t & M_RG)] = gk_term
    pk = _sma_push(fs, r, F_PK, R_PK, M_RG, t, pk_term, RANGE_N)
    gk = _sma_push(fs, r, F_GK, R_GK, M_RG, t, gk_term, RANGE_N)
    if t < RANGE_N - 1:
        out[i, C_PARK] = nan
        out[i, C_GK] = nan
    else:
        out[i, C_PARK] = math.sqrt(max(0.0, pk * PK_SCALE))
        out[i, C_GK] = math.sqrt(max(0.0, gk))

    # -- volume: OBV, A/D, MFI, z-score, ratios ---------------------------------------------
    if t == 0:
        fs[r, F_OBV] = v
    elif c > pc:
        fs[r, F_OBV] += v
    elif c < pc:
        fs[r, F_OBV] -= v
    out[i, C_OBV] = fs[r, F_OBV]
    hl_rng = h - lo
    if hl_rng > 0.0:
        fs[r, F_AD] += (((c - lo) - (h - c)) / hl_rng) * v
    out[i, C_AD] = fs[r, F_AD]

    tp3 = (h + lo + c) / 3.0
    if t == 0:
        out[i, C_MFI] = nan
    else:
        slot = (t - 1) % MFI_N
        if t > MFI_N:
            fs[r, F_MFP] -= fs[r, R_MFP + slot]
            fs[r, F_MFN] -= fs[r, R_MFN + slot]
        prev_tp = fs[r, F_PTP]
        d = tp3 - prev_tp
        scale = abs(tp3) + abs(prev_tp)
        flow = 0.0 if abs(d) <= TA_EPS * scale else tp3 * v
        pos = 0.0 if d < 0.0 else flow
        neg = flow if d < 0.0 else 0.0
        fs[r, R_MFP + slot] = pos
        fs[r, R_MFN + slot] = neg
        fs[r, F_MFP] += pos
        fs[r, F_MFN] += neg
        null_run = ist[r, I_MFI_NULL] + 1 if flow == 0.0 else 0
        if null_run >= MFI_N:
            null_run = MFI_N
            fs[r, F_MFP] = 0.0
            fs[r, F_MFN] = 0.0
        ist[r, I_MFI_NULL] = null_run
        if t < MFI_N:
            out[i, C_MFI] = nan
        else:
            ps = fs[r, F_MFP]
            total = ps + fs[r, F_MFN]
            ps = 0.0 if ps < 0.0 else (total if ps > total else ps)
            out[i, C_MFI] = 0.0 if total <= 0.0 else 100.0 * (ps / total)
    fs[r, F_PTP] = tp3

    fs[r, R_V + (t & M_V)] = v
    mean5 = _sma_push(fs, r, F_V5, R_V, M_V, t, v, 5)
    mean20 = _sma_push(fs, r, F_V20, R_V, M_V, t, v, VOL_N)
    vvar = _var_push(fs, ist, r, F_V_SH, F_V_T1, F_V_T2, I_V_BSR, R_V, M_V, t, v, VOL_N)
    out[i, C_VR5] = (v / mean5 if mean5 > 0.0 else 0.0) if t >= 4 else nan
    if t < VOL_N - 1:
        out[i, C_VR20] = nan
        out[i, C_VZ] = nan
    else:
        out[i, C_VR20] = v / mean20 if mean20 > 0.0 else 0.0
        out[i, C_VZ] = (v - mean20) / math.sqrt(vvar) if vvar > 0.0 else 0.0

    # -- session: VWAP, high/low, open, bar count -------------------------------------------
    if sess_open or t == 0:
        ist[r, I_SCNT] = 0
        fs[r, F_SPV] = 0.0
        fs[r, F_SV] = 0.0
        fs[r, F_STP] = 0.0
        fs[r, F_SHI] = h
        fs[r, F_SLO] = lo
        fs[r, F_SOPEN] = o
    sc = ist[r, I_SCNT]
    fs[r, F_SPV] += tp3 * v
    fs[r, F_SV] += v
    fs[r, F_STP] += tp3
    shi = max(fs[r, F_SHI], h)
    slo = min(fs[r, F_SLO], lo)
    fs[r, F_SHI] = shi
    fs[r, F_SLO] = slo
    sv = fs[r, F_SV]
    vwap = fs[r, F_SPV] / sv if sv > 0.0 else fs[r, F_STP] / (sc + 1)
    out[i, C_VWAP] = vwap
    out[i, C_DVWAP] = _ratio_m1(c, vwap)
    out[i, C_BSO] = sc
    out[i, C_DSH] = _ratio_m1(c, shi)
    out[i, C_DSL] = _ratio_m1(c, slo)
    out[i, C_SRET] = 100.0 * math.log(c / fs[r, F_SOPEN])
    ist[r, I_SCNT] = sc + 1

    # -- candle shape -------------------------------------------------------------------------
    if hl_rng > 0.0:
        out[i, C_BODY] = (c - o) / hl_rng
        out[i, C_UWICK] = (h - max(o, c)) / hl_rng
        out[i, C_LWICK] = (min(o, c) - lo) / hl_rng
    else:
        out[i, C_BODY] = 0.0
        out[i, C_UWICK] = 0.0
        out[i, C_LWICK] = 0.0
    out[i, C_RANGE] = 100.0 * hl_rng / c

    # -- time of day / week (IST, fixed +05:30) ---------------------------------------------
    ist_ns = ts + IST_OFFSET_NS
    day = ist_ns // NS_PER_DAY
    minute = (ist_ns - day * NS_PER_DAY) / NS_PER_MIN - open_min
    angle = TWO_PI * minute / session_min
    out[i, C_MSIN] = math.sin(angle)
    out[i, C_MCOS] = math.cos(angle)
    out[i, C_DOW] = (day + 3) % 7  # 1970-01-01 was a Thursday

    fs[r, F_PC] = c
    fs[r, F_PH] = h
    fs[r, F_PL] = lo
    ist[r, I_CNT] = t + 1
    return t >= MAX_WARMUP


_F8 = types.float64[::1]
_SLICE_SIG = types.UniTuple(types.int64, 2)(
    types.float64[:, ::1], types.int64[:, ::1], types.int64[::1], types.int64,
    _F8, _F8, _F8, _F8, _F8, types.boolean[::1], types.int64, types.int64,
    types.float32[:, ::1], types.boolean[::1],
)  # fmt: skip
_ROWS_SIG = types.UniTuple(types.int64, 2)(
    types.float64[:, ::1], types.int64[:, ::1], types.int64[::1], types.int64[::1],
    _F8, _F8, _F8, _F8, _F8, types.boolean[::1], types.int64, types.int64,
    types.float32[:, ::1], types.boolean[::1],
)  # fmt: skip


# Explicit signatures: the kernels load (or compile) once at import, and an argument of another
# dtype is refused (the calculator converts it) instead of triggering a multi-second compile of a
# new specialisation in the middle of a live session.
@njit(_SLICE_SIG, cache=True)
def update_slice(fs, ist, sid, ts, o, h, lo, c, v, sess, open_min, session_min, out, ready):
    """One timestamp, k symbols. Validates the whole slice before touching any state.

    Returns ``(error kind, row)``; ``(OK, -1)`` when every row was applied.
    """
    k = sid.shape[0]
    cap = fs.shape[0]
    for i in range(k):
        r = sid[i]
        if r < 0:
            return ERR_SID, i
        if r >= cap:
            return ERR_CAPACITY, i
        kind = _valid_bar(o[i], h[i], lo[i], c[i], v[i])
        if kind != OK:
            return kind, i
    for i in range(k):  # time must advance per symbol; a duplicate sid fails here too
        r = sid[i]
        if ist[r, I_LAST_TS] >= ts:
            for q in range(i):
                ist[sid[q], I_LAST_TS] = ist[sid[q], I_PREV_TS]
            return ERR_TIME, i
        ist[r, I_PREV_TS] = ist[r, I_LAST_TS]
        ist[r, I_LAST_TS] = ts
    for i in range(k):
        r = sid[i]
        ready[i] = _step(
            fs, ist, r, ts, o[i], h[i], lo[i], c[i], v[i], sess[i], open_min, session_min, out, i
        )
    return OK, -1


@njit(_ROWS_SIG, cache=True)
def update_rows(fs, ist, sid, ts, o, h, lo, c, v, sess, open_min, session_min, out, ready):
    """A history: row ``i`` is symbol ``sid[i]``'s bar at ``ts[i]``, in time order per symbol.

    Runs exactly the same ``_step`` as ``update_slice``. Stops at the first bad row and returns
    ``(error kind, row)``; ``(OK, -1)`` when all rows were applied.
    """
    cap = fs.shape[0]
    for i in range(sid.shape[0]):
        r = sid[i]
        if r < 0:
            return ERR_SID, i
        if r >= cap:
            return ERR_CAPACITY, i
        kind = _valid_bar(o[i], h[i], lo[i], c[i], v[i])
        if kind != OK:
            return kind, i
        if ist[r, I_LAST_TS] >= ts[i]:
            return ERR_TIME, i
        ist[r, I_LAST_TS] = ts[i]
        ready[i] = _step(
            fs, ist, r, ts[i], o[i], h[i], lo[i], c[i], v[i], sess[i], open_min, session_min, out, i
        )
    return OK, -1


def new_state(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed state for ``capacity`` symbols (a fresh symbol starts from bar 0)."""
    fs = np.zeros((capacity, N_FSTATE), dtype=np.float64)
    ist = np.zeros((capacity, N_ISTATE), dtype=np.int64)
    ist[:, I_LAST_TS] = NO_TS
    ist[:, I_PREV_TS] = NO_TS
    return fs, ist
