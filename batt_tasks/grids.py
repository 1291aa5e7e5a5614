"""ARC grids: the immutable form the batt protocol uses, and their validation.

A grid is a non-empty rectangular tuple of tuples of ints 0–9, at most 30×30.
"""

from __future__ import annotations

from typing import Any

Grid = tuple[tuple[int, ...], ...]

MAX_SIDE = 30


class GridError(ValueError):
    """A value is not a valid ARC grid; the message says what is wrong."""


def grid_problem(value: Any) -> str | None:
    """Say what makes ``value`` not an ARC grid, or return None when it is one."""
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
    return tuple(tuple(row) for row in value)


def to_grid(value: Any) -> Grid:
    """Return ``value`` as an immutable grid, or raise :class:`GridError` saying what is wrong."""
    problem = grid_problem(value)
    if problem is not None:
        raise GridError(problem)
    return tuple(tuple(row) for row in value)


def to_json(grid: Grid) -> list[list[int]]:
    """The JSON form of a grid (lists of lists)."""
    return [list(row) for row in grid]
