"""ARC grids: the immutable form the batt protocol uses, their validation, and their compact text form.

A grid is a non-empty rectangular tuple of tuples of ints 0–9, at most 30×30. Its text form (:func:`to_text`)
is its rows of digits joined by ``|`` (``"070|707"``): what sample results carry, a third the size of the
JSON lists and an order of magnitude faster to encode and decode.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

Grid = tuple[tuple[int, ...], ...]

MAX_SIDE = 30


class GridError(ValueError):
    """A value is not a valid ARC grid; the message says what is wrong."""


def _plain_grid(value: Any) -> bool:
    """True for a valid grid made of plain lists/tuples of plain ints, checked with C-level loops.

    The common case, and fast; anything else (False) goes to :func:`grid_problem`'s cell-by-cell check.
    """
    if type(value) not in _SEQUENCES or not 0 < len(value) <= MAX_SIDE:
        return False
    width = len(value[0]) if type(value[0]) in _SEQUENCES else 0
    if not 0 < width <= MAX_SIDE:
        return False
    for row in value:
        if type(row) not in _SEQUENCES or len(row) != width:
            return False
    cells = list(chain.from_iterable(value))
    # types first (only then are the cells hashable), then values: 1 == True == 1.0, so the type scan is what
    # rules out bools and floats
    return set(map(type, cells)) == _INT and set(cells) <= _COLOURS


_SEQUENCES = (list, tuple)
_INT = {int}
_COLOURS = frozenset(range(10))


def grid_problem(value: Any) -> str | None:
    """Say what makes ``value`` not an ARC grid, or return None when it is one."""
    if _plain_grid(value):
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        return f"grid is {type(value).__name__}, not a list of rows"
    if not value:
        return "grid is empty"
    if len(value) > MAX_SIDE:
        return f"grid has {len(value)} rows, more than {MAX_SIDE}"
    width = None
    for r, row in enumerate(value):
        if isinstance(row, (str, bytes)) or not isinstance(row, (list, tuple)):
            return f"row {r} is {type(row).__name__}, not a list of ints"
        if not row:
            return f"row {r} is empty"
        if width is None:
            width = len(row)
            if width > MAX_SIDE:
                return f"grid has {width} columns, more than {MAX_SIDE}"
        elif len(row) != width:
            return f"grid is ragged: row 0 has {width} cells, row {r} has {len(row)}"
        for c, cell in enumerate(row):
            if isinstance(cell, bool) or not isinstance(cell, int):
                return f"cell [{r}][{c}] is {cell!r}, not an int 0-9"
            if not 0 <= cell <= 9:
                return f"cell [{r}][{c}] is colour {cell}, outside 0-9"
    return None


def as_grid(value: Any) -> Grid | None:
    """Return ``value`` as an immutable grid, or None when it is not a valid ARC grid.

    Accepts lists or tuples of rows (and numpy arrays, through ``tolist``); anything else is None.
    """
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        try:
            value = value.tolist()
        except Exception:  # noqa: BLE001 - a broken object is simply not a grid
            return None
    if grid_problem(value) is not None:
        return None
    return _frozen(value)


def to_grid(value: Any) -> Grid:
    """Return ``value`` as an immutable grid, or raise :class:`GridError` saying what is wrong."""
    problem = grid_problem(value)
    if problem is not None:
        raise GridError(problem)
    return _frozen(value)


def _frozen(value: Any) -> Grid:
    """A valid grid as a tuple of tuples (itself when it already is one)."""
    if type(value) is tuple and all(type(row) is tuple for row in value):
        return value
    return tuple(tuple(row) for row in value)


def to_json(grid: Grid) -> list[list[int]]:
    """The JSON form of a grid (lists of lists)."""
    return [list(row) for row in grid]


def to_text(grid: Grid | list[list[int]]) -> str:
    """The compact text form of a valid grid: rows of digits joined by ``|``."""
    return "|".join("".join(map(str, row)) for row in grid)


def from_text(text: str) -> list[list[int]]:
    """The JSON form (lists of lists) of a grid's text form; raises :class:`GridError` if it is not one."""
    rows = text.split("|") if isinstance(text, str) else []
    if not rows or not all(row.isascii() and row.isdigit() for row in rows):
        raise GridError(f"{str(text)[:40]!r} is not a grid's text form (rows of digits joined by '|')")
    grid = [[int(c) for c in row] for row in rows]
    problem = grid_problem(grid)
    if problem is not None:
        raise GridError(f"{text[:40]!r}: {problem}")
    return grid
