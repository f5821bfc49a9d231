"""Our ticker parser against the official ``kiteconnect.KiteTicker._parse_binary``.

Timestamp semantics, explicitly: the official client builds *naive* datetimes with
``datetime.fromtimestamp(epoch)``, i.e. wall-clock time in the process's local zone. Ours are
tz-aware Asia/Kolkata. They denote the same instant iff ``official`` interpreted in the local zone
equals ``ours``. The comparisons below pin the process zone (TZ env + ``time.tzset``) and check:
under TZ=Asia/Kolkata the naive wall clock equals ours with the zone stripped, and under TZ=UTC
the naive value tagged UTC equals ours — so agreement is on the instant, not an accident of the
machine's zone.
"""

from __future__ import annotations

import base64
import json
import os
import random
import struct
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kiteconnect import KiteTicker

from brokers.kite.ticker_protocol import (
    HEARTBEAT,
    LEN_FULL,
    LEN_INDEX_FULL,
    LEN_INDEX_QUOTE,
    LEN_LTP,
    LEN_QUOTE,
    TickerProtocolError,
    decode_message,
    decode_packet,
    decode_text_message,
    encode_message,
    encode_packet,
    frame_packets,
    mode_message,
    price_divisor,
    subscribe_message,
    tick_to_jsonable,
    ticks_to_json,
)
from config.sessions import IST
from tests.support.paths import KITE_MOCKS

FIXTURES = KITE_MOCKS
SEGMENTS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 11, 0, 255)  # every known segment + unknown ones
IST_OFFSET = timedelta(hours=5, minutes=30)


def official_parse(message: bytes) -> list[dict[str, Any]]:
    ticker = KiteTicker.__new__(KiteTicker)  # _parse_binary needs no connection state
    result: list[dict[str, Any]] = ticker._parse_binary(message)
    return result


@pytest.fixture
def local_zone():
    """Switch the process's local zone (what the official client's naive datetimes mean)."""
    saved = os.environ.get("TZ")

    def set_zone(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_zone
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def assert_same(ours: Any, official: Any, zone: str, path: str = "tick") -> None:
    """Deep equality: same keys in the same order, same types, bit-equal floats, same instants."""
    if isinstance(official, datetime):
        assert isinstance(ours, datetime), path
        assert official.tzinfo is None, f"{path}: official client gives naive datetimes"
        assert ours.tzinfo is not None and ours.utcoffset() == IST_OFFSET, f"{path}: not IST"
        if zone == "Asia/Kolkata":
            assert ours.replace(tzinfo=None) == official, path
        else:
            assert zone == "UTC"
            assert official.replace(tzinfo=UTC) == ours, path
        return
    assert type(ours) is type(official), f"{path}: {type(ours)} vs {type(official)}"
    if isinstance(official, dict):
        assert list(ours) == list(official), f"{path}: keys differ"
        for key in official:
            assert_same(ours[key], official[key], zone, f"{path}.{key}")
    elif isinstance(official, list):
        assert len(ours) == len(official), path
        for i, (a, b) in enumerate(zip(ours, official, strict=True)):
            assert_same(a, b, zone, f"{path}[{i}]")
    else:
        assert ours == official, f"{path}: {ours!r} != {official!r}"


def fixture_packet(name: str) -> bytes:
    return base64.b64decode((FIXTURES / f"ticker_{name}.packet").read_text())


def fixture_json(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIXTURES / f"ticker_{name}.json").read_text())
    return result


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "UTC"])
@pytest.mark.parametrize("name", ["quote", "full"])
def test_fixture_packets_agree_with_official_client(name, zone, local_zone):
    local_zone(zone)
    packet = fixture_packet(name)
    message = frame_packets([packet])
    ours = decode_message(message)
    assert len(ours) == 1
    assert_same(ours, official_parse(message), zone)
    assert decode_packet(packet) == ours[0]


# The recorded .json files come from Kite's mock repository and use the older field names of
# other official clients (volume, buy_quantity, timestamp, ...). Their "change" is not comparable:
# it is an absolute difference (5.9 = last - close in the full fixture, copied unchanged into the
# quote fixture), while the Python client, whose semantics we follow, computes percent.
OLD_NAMES = {
    "last_quantity": "last_traded_quantity",
    "average_price": "average_traded_price",
    "volume": "volume_traded",
    "buy_quantity": "total_buy_quantity",
    "sell_quantity": "total_sell_quantity",
    "timestamp": "exchange_timestamp",
}


@pytest.mark.parametrize("name", ["quote", "full"])
def test_fixture_packets_match_recorded_json(name):
    recorded = fixture_json(name)
    tick = tick_to_jsonable(decode_message(frame_packets([fixture_packet(name)]))[0])
    for key, value in recorded.items():
        if key == "change":
            close = recorded["ohlc"]["close"]
            assert tick["change"] == (tick["last_price"] - close) * 100 / close
            continue
        ours = tick[OLD_NAMES.get(key, key)]
        if key == "depth":
            for side in ("buy", "sell"):
                assert [dict(sorted(d.items())) for d in ours[side]] == [
                    dict(sorted(d.items())) for d in value[side]
                ]
        else:
            assert ours == value, key


def test_fixture_full_timestamps_are_ist():
    tick = decode_message(frame_packets([fixture_packet("full")]))[0]
    assert tick["exchange_timestamp"] == datetime(2021, 7, 5, 10, 41, 27, tzinfo=IST)
    assert tick["exchange_timestamp"].utcoffset() == IST_OFFSET
    assert tick_to_jsonable(tick)["last_trade_time"] == "2021-07-05T10:41:27+05:30"


def test_recorded_ltp_tick_round_trips_through_a_built_packet(local_zone):
    local_zone("Asia/Kolkata")
    recorded = fixture_json("ltp")
    message = encode_message([recorded])
    ours = decode_message(message)
    assert ours == [recorded]
    assert_same(ours, official_parse(message), "Asia/Kolkata")


def random_packet(rng: random.Random, length: int, segment: int) -> bytes:
    """Arbitrary payload of a given kind: every field a random unsigned value."""
    token = (rng.getrandbits(24) << 8) | segment
    body = bytearray(rng.getrandbits(8) for _ in range(length - 4))
    if length >= LEN_INDEX_FULL and rng.random() < 0.7:
        # mostly plausible timestamps, sometimes the full u32 range (up to year 2106)
        stamp = rng.randint(1_500_000_000, 1_900_000_000)
        at = {LEN_INDEX_FULL: 24, LEN_FULL: 56}
        if length in at:
            struct.pack_into(">I", body, at[length], stamp)
        if length == LEN_FULL:
            struct.pack_into(">I", body, 40, stamp - rng.randint(0, 300))
    if rng.random() < 0.1 and length >= LEN_INDEX_QUOTE:
        close_at = 16 if length < LEN_QUOTE else 36  # close == 0 → change is the int 0
        struct.pack_into(">I", body, close_at, 0)
    return struct.pack(">I", token) + bytes(body)


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "UTC"])
def test_thousands_of_generated_messages_agree_with_official_client(zone, local_zone):
    local_zone(zone)
    rng = random.Random(20240605)
    lengths = (LEN_LTP, LEN_INDEX_QUOTE, LEN_INDEX_FULL, LEN_QUOTE, LEN_FULL)
    seen: set[tuple[int, int]] = set()
    n_ticks = 0
    for _ in range(600):
        packets = []
        for _ in range(rng.randint(1, 12)):
            length = rng.choice(lengths)
            segment = rng.choice(SEGMENTS)
            seen.add((length, segment))
            packets.append(random_packet(rng, length, segment))
        if rng.random() < 0.1:  # a kind neither parser knows: skipped by both
            packets.insert(rng.randrange(len(packets) + 1), bytes(rng.randint(5, 60) | 1))
        message = frame_packets(packets)
        ours = decode_message(message)
        official = official_parse(message)
        assert_same(ours, official, zone)
        n_ticks += len(ours)
    assert n_ticks > 3000
    assert len(seen) == len(lengths) * len(SEGMENTS)  # every kind × segment exercised


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "UTC"])
def test_extreme_field_values_agree(zone, local_zone):
    local_zone(zone)
    for fill in (0x00, 0xFF):
        for segment in SEGMENTS:
            for length in (LEN_LTP, LEN_INDEX_QUOTE, LEN_INDEX_FULL, LEN_QUOTE, LEN_FULL):
                packet = bytes([fill] * 3) + bytes([segment]) + bytes([fill] * (length - 4))
                message = frame_packets([packet])
                assert_same(decode_message(message), official_parse(message), zone)


def test_price_divisors_follow_the_segment():
    assert price_divisor((408065 >> 8 << 8) | 1) == 100.0
    assert price_divisor(256 | 3) == 10_000_000.0  # CDS
    assert price_divisor(256 | 6) == 10_000.0  # BCD
    assert price_divisor(256 | 12) == 10_000.0  # NCO (official client groups it with BCD)
    assert price_divisor(256 | 9) == 100.0


def test_indices_are_not_tradable_and_have_no_volume_fields():
    nifty = {
        "tradable": False,
        "mode": "full",
        "instrument_token": 256265,  # NIFTY 50 (segment 9)
        "last_price": 22000.5,
        "ohlc": {"high": 22100.0, "low": 21900.25, "open": 21950.0, "close": 21980.0},
        "change": (22000.5 - 21980.0) * 100 / 21980.0,
        "exchange_timestamp": datetime(2024, 6, 5, 9, 15, 1, tzinfo=IST),
    }
    message = encode_message([nifty])
    assert len(message) == 2 + 2 + LEN_INDEX_FULL
    assert decode_message(message) == [nifty]


def test_heartbeat_and_empty_messages_have_no_ticks():
    assert decode_message(HEARTBEAT) == []
    assert decode_message(b"") == []
    assert decode_message(b"\x00\x00") == []


def test_truncated_message_is_rejected_with_the_packet_named():
    message = frame_packets([fixture_packet("quote"), fixture_packet("full")])
    with pytest.raises(TickerProtocolError, match="packet 2 of 2"):
        decode_message(message[:-10])
    with pytest.raises(TickerProtocolError, match="ends before the length of packet 2"):
        decode_message(message[: 2 + 2 + LEN_QUOTE + 1])


def test_stray_trailing_bytes_are_rejected():
    message = frame_packets([fixture_packet("quote")])
    with pytest.raises(TickerProtocolError, match="3 stray bytes"):
        decode_message(message + b"abc")


def test_encode_decode_round_trip_for_built_full_ticks():
    tick = decode_message(frame_packets([fixture_packet("full")]))[0]
    assert decode_packet(encode_packet(tick)) == tick


def test_json_form_uses_official_names_and_iso_ist():
    ticks = decode_message(frame_packets([fixture_packet("full"), fixture_packet("quote")]))
    parsed = json.loads(ticks_to_json(ticks))
    assert parsed[0]["exchange_timestamp"] == "2021-07-05T10:41:27+05:30"
    assert parsed[0]["volume_traded"] == 1192471
    assert parsed[1]["mode"] == "quote"
    assert "exchange_timestamp" not in parsed[1]


def test_text_messages():
    order = decode_text_message(b'{"type": "order", "data": {"order_id": "1", "status": "OPEN"}}')
    assert order.type == "order" and order.data["status"] == "OPEN"
    assert decode_text_message('{"type": "error", "data": "bad"}').data == "bad"
    with pytest.raises(TickerProtocolError, match="not valid JSON"):
        decode_text_message(b"{nope")
    with pytest.raises(TickerProtocolError, match="string 'type'"):
        decode_text_message("[1, 2]")
    assert json.loads(subscribe_message([1, 2])) == {"a": "subscribe", "v": [1, 2]}
    assert json.loads(mode_message("full", [1])) == {"a": "mode", "v": ["full", [1]]}
    with pytest.raises(ValueError, match="mode 'depth'"):
        mode_message("depth", [1])
