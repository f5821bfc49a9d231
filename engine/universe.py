"""Stable symbol ↔ integer id mapping, so per-symbol state everywhere is an array indexed by sid."""

from __future__ import annotations


class Universe:
    """Grows as symbols join; a symbol's sid never changes during a run."""

    def __init__(self, symbols: list[str] | tuple[str, ...] = ()) -> None:
        self._sid: dict[str, int] = {}
        self._names: list[str] = []
        for symbol in symbols:
            self.add(symbol)

    def add(self, symbol: str) -> int:
        sid = self._sid.get(symbol)
        if sid is None:
            sid = len(self._names)
            self._sid[symbol] = sid
            self._names.append(symbol)
        return sid

    def sid(self, symbol: str) -> int:
        return self._sid[symbol]

    def get(self, symbol: str) -> int | None:
        return self._sid.get(symbol)

    def name(self, sid: int) -> str:
        return self._names[sid]

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._sid
