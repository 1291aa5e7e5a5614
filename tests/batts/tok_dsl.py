"""A tiny DSL imported by ``tokpidjin_style.py`` as a sibling module, the way tokpidjin's batts import theirs."""

from __future__ import annotations

from typing import Any

Grid = tuple[tuple[int, ...], ...]


def identity(x: Any) -> Any:
    """The argument itself."""
    return x


def flip_h(grid: Grid) -> Grid:
    """Mirror left-right."""
    return tuple(tuple(reversed(row)) for row in grid)


def rot90(grid: Grid) -> Grid:
    """Rotate clockwise."""
    return tuple(zip(*grid[::-1], strict=True))


def shatter(grid: Grid) -> Grid:
    """Always fails, like a DSL call on the wrong type."""
    raise ValueError("shatter cannot handle this grid")


def cell_diff(a: Grid, b: Grid) -> tuple[int, str]:
    """(1000 × share of equal cells, name); grids of different shapes score 0."""
    if len(a) != len(b) or len(a[0]) != len(b[0]):
        return (0, "shape")
    cells = len(a) * len(a[0])
    same = sum(x == y for ra, rb in zip(a, b, strict=True) for x, y in zip(ra, rb, strict=True))
    return (1000 * same // cells, "cells")
