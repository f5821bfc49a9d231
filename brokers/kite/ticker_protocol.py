"""Kite ticker websocket wire format: binary tick packets, text messages, and their inverses.

Why our own parser rather than ``kiteconnect.KiteTicker``: the official client is bound to
twisted and returns *naive* datetimes in the machine's local zone. Ours is plain functions over
``bytes`` (usable from asyncio, the fake server and the ``kite decode`` command) and returns
tz-aware Asia/Kolkata exchange timestamps. Everything else — field names, dict layout, price
divisors, the ``change`` arithmetic, which packet lengths are understood — follows the official
client exactly, so ticks are interchangeable with code written against it.

Binary message layout (all integers big-endian, unsigned)::

    u16 packet count, then per packet: u16 length, payload

A 1-byte message is a heartbeat. Payload lengths select the packet kind:

    8   ltp            token, last_price
    28  index quote    token, last, high, low, open, close, (change, ignored)
    32  index full     index quote + exchange timestamp
    44  quote          token, last, last_qty, avg, volume, buy_qty, sell_qty, open, high, low, close
    184 full           quote + last_trade_time, oi, oi_day_high, oi_day_low, exchange timestamp,
                       then 10 depth entries of (u32 qty, u32 price, u16 orders, 2 pad bytes):
                       5 buy levels, then 5 sell levels

Packets of any other length are skipped, as the official client does (Kite may add kinds).
Unlike the official client, a message whose framing runs past its end or leaves stray bytes is
rejected with ``TickerProtocolError``: silently decoding a truncated packet as a shorter kind
would invent prices.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from config.sessions import IST

# Segment ids are the low byte of an instrument token (kiteconnect's EXCHANGE_MAP).
SEGMENT_NSE = 1
SEGMENT_NFO = 2
SEGMENT_CDS = 3
SEGMENT_BSE = 4
SEGMENT_BFO = 5
SEGMENT_BCD = 6
SEGMENT_MCX = 7
SEGMENT_MCXSX = 8
SEGMENT_INDICES = 9
SEGMENT_NCO = 12

MODE_LTP = "ltp"
MODE_QUOTE = "quote"
MODE_FULL = "full"
MODES = (MODE_LTP, MODE_QUOTE, MODE_FULL)

LEN_LTP = 8
LEN_INDEX_QUOTE = 28
LEN_INDEX_FULL = 32
LEN_QUOTE = 44
LEN_FULL = 184
PACKET_LENGTHS = (LEN_LTP, LEN_INDEX_QUOTE, LEN_INDEX_FULL, LEN_QUOTE, LEN_FULL)

HEARTBEAT = b"\x00"
"""What Kite sends every second or so on an idle connection: a single byte."""

_U16 = struct.Struct(">H")
_LTP = struct.Struct(">II")
_INDEX_QUOTE = struct.Struct(">7I")
_INDEX_FULL = struct.Struct(">8I")
_QUOTE = struct.Struct(">11I")
_FULL_HEAD = struct.Struct(">16I")
_DEPTH = struct.Struct(">" + "IIH2x" * 10)
_DEPTH_OFFSET = 64
_U32_MAX = 0xFFFFFFFF

Tick = dict[str, Any]


class TickerProtocolError(ValueError):
    """A websocket message that does not follow Kite's ticker format."""


def price_divisor(instrument_token: int) -> float:
    """Prices arrive as integers; currency segments carry more decimals than equities."""
    segment = instrument_token & 0xFF
    if segment == SEGMENT_CDS:
        return 10_000_000.0
    if segment in (SEGMENT_BCD, SEGMENT_NCO):
        return 10_000.0
    return 100.0


def is_tradable(instrument_token: int) -> bool:
    """Indices are quoted but cannot be traded."""
    return instrument_token & 0xFF != SEGMENT_INDICES


def _epoch_to_ist(seconds: int) -> datetime | None:
    # The official client yields None when the platform cannot represent the instant.
    try:
        return datetime.fromtimestamp(seconds, IST)
    except (OverflowError, OSError, ValueError):
        return None


def _change(last_price: float, close: float) -> float:
    # Percent change against the previous close, computed exactly as the official client does
    # (same operation order, so the floats are bit-identical); 0 (an int) when close is 0.
    if close != 0:
        return (last_price - close) * 100 / close
    return 0


def _parse_ltp(data: bytes, offset: int) -> Tick:
    token, last = _LTP.unpack_from(data, offset)
    return {
        "tradable": is_tradable(token),
        "mode": MODE_LTP,
        "instrument_token": token,
        "last_price": last / price_divisor(token),
    }


def _index_tick(values: tuple[int, ...], mode: str) -> Tick:
    token, last, high, low, open_, close = values[:6]
    div = price_divisor(token)
    last_price = last / div
    close_price = close / div
    return {
        "tradable": is_tradable(token),
        "mode": mode,
        "instrument_token": token,
        "last_price": last_price,
        "ohlc": {"high": high / div, "low": low / div, "open": open_ / div, "close": close_price},
        "change": _change(last_price, close_price),
    }


def _parse_index_quote(data: bytes, offset: int) -> Tick:
    return _index_tick(_INDEX_QUOTE.unpack_from(data, offset), MODE_QUOTE)


def _parse_index_full(data: bytes, offset: int) -> Tick:
    values = _INDEX_FULL.unpack_from(data, offset)
    tick = _index_tick(values, MODE_FULL)
    tick["exchange_timestamp"] = _epoch_to_ist(values[7])
    return tick


def _quote_tick(values: tuple[int, ...], mode: str) -> Tick:
    token, last, last_qty, avg, volume, buy_qty, sell_qty, open_, high, low, close = values[:11]
    div = price_divisor(token)
    last_price = last / div
    close_price = close / div
    return {
        "tradable": is_tradable(token),
        "mode": mode,
        "instrument_token": token,
        "last_price": last_price,
        "last_traded_quantity": last_qty,
        "average_traded_price": avg / div,
        "volume_traded": volume,
        "total_buy_quantity": buy_qty,
        "total_sell_quantity": sell_qty,
        "ohlc": {"open": open_ / div, "high": high / div, "low": low / div, "close": close_price},
        "change": _change(last_price, close_price),
    }


def _parse_quote(data: bytes, offset: int) -> Tick:
    return _quote_tick(_QUOTE.unpack_from(data, offset), MODE_QUOTE)


def _parse_full(data: bytes, offset: int) -> Tick:
    head = _FULL_HEAD.unpack_from(data, offset)
    tick = _quote_tick(head, MODE_FULL)
    div = price_divisor(head[0])
    tick["last_trade_time"] = _epoch_to_ist(head[11])
    tick["oi"] = head[12]
    tick["oi_day_high"] = head[13]
    tick["oi_day_low"] = head[14]
    tick["exchange_timestamp"] = _epoch_to_ist(head[15])
    d = _DEPTH.unpack_from(data, offset + _DEPTH_OFFSET)
    levels = [
        {"quantity": d[i], "price": d[i + 1] / div, "orders": d[i + 2]} for i in range(0, 30, 3)
    ]
    tick["depth"] = {"buy": levels[:5], "sell": levels[5:]}
    return tick


_PARSERS: dict[int, Callable[[bytes, int], Tick]] = {
    LEN_LTP: _parse_ltp,
    LEN_INDEX_QUOTE: _parse_index_quote,
    LEN_INDEX_FULL: _parse_index_full,
    LEN_QUOTE: _parse_quote,
    LEN_FULL: _parse_full,
}


def decode_packet(packet: bytes) -> Tick | None:
    """One unframed packet (as Kite's recorded ``ticker_*.packet`` fixtures store them).

    Returns None for a length no known kind has, like the official client's skip.
    """
    parser = _PARSERS.get(len(packet))
    return parser(packet, 0) if parser is not None else None


def decode_message(data: bytes | bytearray | memoryview) -> list[Tick]:
    """Every tick in one binary websocket message, in wire order.

    Heartbeats (fewer than 2 bytes) decode to no ticks. Raises ``TickerProtocolError`` naming
    the packet and byte offset when the framing is inconsistent with the message length.
    """
    buf = bytes(data) if not isinstance(data, bytes) else data
    size = len(buf)
    if size < 2:
        return []
    (count,) = _U16.unpack_from(buf, 0)
    ticks: list[Tick] = []
    offset = 2
    for index in range(count):
        if offset + 2 > size:
            raise TickerProtocolError(
                f"message of {size} bytes announces {count} packets but ends before the "
                f"length of packet {index + 1} (byte {offset})"
            )
        (length,) = _U16.unpack_from(buf, offset)
        start = offset + 2
        offset = start + length
        if offset > size:
            raise TickerProtocolError(
                f"packet {index + 1} of {count} at byte {start} claims {length} bytes but the "
                f"message has only {size - start} left"
            )
        parser = _PARSERS.get(length)
        if parser is not None:
            ticks.append(parser(buf, start))
    if offset != size:
        raise TickerProtocolError(
            f"message has {size - offset} stray bytes after its {count} packets (byte {offset})"
        )
    return ticks


# --- JSON form ------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def tick_to_jsonable(tick: Tick) -> dict[str, Any]:
    """The tick with datetimes as ISO-8601 strings carrying the +05:30 offset."""
    result: dict[str, Any] = _jsonable(tick)
    return result


def ticks_to_json(ticks: Iterable[Tick], indent: int | None = 2) -> str:
    return json.dumps([tick_to_jsonable(t) for t in ticks], indent=indent)


# --- text messages --------------------------------------------------------------------------


class TextMessage(NamedTuple):
    """A JSON text frame from Kite: ``type`` is "order" (order update), "error" or "message"."""

    type: str
    data: Any


def decode_text_message(payload: str | bytes) -> TextMessage:
    """Parse a text frame; raises ``TickerProtocolError`` if it is not a typed JSON object."""
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
        obj = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise TickerProtocolError(f"text message is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise TickerProtocolError("text message is not a JSON object with a string 'type'")
    return TextMessage(obj["type"], obj.get("data"))


def subscribe_message(tokens: Sequence[int]) -> str:
    """Client → server: start streaming ``tokens`` (Kite defaults them to quote mode)."""
    return json.dumps({"a": "subscribe", "v": list(tokens)})


def unsubscribe_message(tokens: Sequence[int]) -> str:
    return json.dumps({"a": "unsubscribe", "v": list(tokens)})


def mode_message(mode: str, tokens: Sequence[int]) -> str:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    return json.dumps({"a": "mode", "v": [mode, list(tokens)]})


def order_update_message(order: dict[str, Any]) -> str:
    """Server → client: an order's new state, shaped like Kite's postback payload."""
    return json.dumps({"type": "order", "id": "", "data": order})


def error_message(text: str) -> str:
    return json.dumps({"type": "error", "data": text})


# --- encoding (the fake server and tests build packets with these) ---------------------------


def _scaled(price: float, div: float) -> int:
    value = round(price * div)
    if not 0 <= value <= _U32_MAX:
        raise ValueError(f"price {price} does not fit the ticker's unsigned 32-bit field")
    return value


def _epoch(ts: datetime | None) -> int:
    if ts is None:
        return 0
    if ts.tzinfo is None:
        raise ValueError("tick timestamps must be tz-aware")
    return int(ts.timestamp())


def encode_packet(tick: Tick) -> bytes:
    """Inverse of ``decode_packet`` for a tick dict with the official field names.

    The packet kind follows ``tick["mode"]`` and whether the token is an index. Prices are
    rounded to the segment's integer resolution.
    """
    token = int(tick["instrument_token"])
    mode = tick["mode"]
    div = price_divisor(token)
    last = _scaled(tick["last_price"], div)
    if mode == MODE_LTP:
        return _LTP.pack(token, last)
    ohlc = tick["ohlc"]
    o, h, lo, c = (_scaled(ohlc[k], div) for k in ("open", "high", "low", "close"))
    if not is_tradable(token):
        if mode == MODE_QUOTE:
            return _INDEX_QUOTE.pack(token, last, h, lo, o, c, 0)
        return _INDEX_FULL.pack(token, last, h, lo, o, c, 0, _epoch(tick["exchange_timestamp"]))
    quote = (
        token,
        last,
        int(tick["last_traded_quantity"]),
        _scaled(tick["average_traded_price"], div),
        int(tick["volume_traded"]),
        int(tick["total_buy_quantity"]),
        int(tick["total_sell_quantity"]),
        o,
        h,
        lo,
        c,
    )
    if mode == MODE_QUOTE:
        return _QUOTE.pack(*quote)
    head = _FULL_HEAD.pack(
        *quote,
        _epoch(tick.get("last_trade_time")),
        int(tick.get("oi", 0)),
        int(tick.get("oi_day_high", 0)),
        int(tick.get("oi_day_low", 0)),
        _epoch(tick.get("exchange_timestamp")),
    )
    depth = tick.get("depth") or {"buy": [], "sell": []}
    flat: list[int] = []
    for side in ("buy", "sell"):
        levels = list(depth.get(side, []))[:5]
        levels += [{"quantity": 0, "price": 0.0, "orders": 0}] * (5 - len(levels))
        for level in levels:
            flat += [int(level["quantity"]), _scaled(level["price"], div), int(level["orders"])]
    return head + _DEPTH.pack(*flat)


def frame_packets(packets: Sequence[bytes]) -> bytes:
    """Wrap packets into one binary websocket message."""
    if len(packets) > 0xFFFF:
        raise ValueError("a message carries at most 65535 packets")
    parts = [_U16.pack(len(packets))]
    for packet in packets:
        parts.append(_U16.pack(len(packet)))
        parts.append(packet)
    return b"".join(parts)


def encode_message(ticks: Sequence[Tick]) -> bytes:
    return frame_packets([encode_packet(t) for t in ticks])
