"""Grids the battery's unit tests share: :func:`g` writes a small grid as text, and the edge cases every
primitive must survive (1×1, a single colour, a random 30×30)."""

from __future__ import annotations

import random

from batt_tasks.battery.dsl import Grid

ONE: Grid = ((7,),)
FLAT: Grid = ((3,) * 5,) * 5


def g(text: str) -> Grid:
    """A grid from rows of digits separated by spaces: ``g("12 34")``."""
    return tuple(tuple(int(ch) for ch in row) for row in text.split())


def random_grid(seed: int) -> Grid:
    """A 30×30 grid, mostly background (0), with colours 1, 2 and 5, the same for the same ``seed``."""
    rng = random.Random(seed)
    return tuple(tuple(rng.choice((0, 0, 0, 1, 2, 5)) for _ in range(30)) for _ in range(30))


def edge_cases(seed: int) -> dict[str, Grid]:
    """The edge-case grids by name, the 30×30 one drawn with ``seed``."""
    return {"1x1": ONE, "single_colour": FLAT, "30x30": random_grid(seed)}
