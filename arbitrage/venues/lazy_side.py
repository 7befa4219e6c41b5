"""A book side whose levels are made on the first read past the top (the mock market's and the
replay's books): most readers look at the top alone, and every tick makes every book."""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

from arbitrage.domain.book import Level


class LazySide(Sequence[Level]):
    """Subclasses say how to make the top (`_first`) and all the levels (`_make`)."""

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: tuple[Level, ...] | None = None

    def _first(self) -> Level:
        raise NotImplementedError

    def _make(self) -> tuple[Level, ...]:
        raise NotImplementedError

    def levels(self) -> tuple[Level, ...]:
        levels = self._levels
        if levels is None:
            levels = self._levels = self._make()
        return levels

    def columns(self, depth: int) -> tuple[list[float], list[float]]:
        """The top `depth` levels' prices and sizes (the market recorder's columns); subclasses
        make them without a (price, size) tuple per level where they can: the recorder's thread
        would otherwise allocate forty tuples a book, and their count starts garbage collections
        in whichever thread allocates next, the tick's too."""
        levels = self.levels()[:depth]
        return [price for price, _ in levels], [size for _, size in levels]

    @overload
    def __getitem__(self, index: int) -> Level: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Level, ...]: ...

    def __getitem__(self, index: int | slice) -> Level | tuple[Level, ...]:
        if index == 0 and self._levels is None:
            return self._first()  # the top alone, without making the rest
        return self.levels()[index]

    def __len__(self) -> int:
        return len(self.levels())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazySide):
            return self.levels() == other.levels()
        return isinstance(other, tuple) and self.levels() == other

    def __hash__(self) -> int:
        return hash(self.levels())

    def __repr__(self) -> str:
        return repr(self.levels())
