"""Objects: connected components of a grid, their properties, and the selectors candidates use.

An object is a set of coloured cells connected 4-wise (or 8-wise with ``diagonal``); ``univalued``
objects have one colour, multi-coloured ones join any non-background colours. Extraction is cached
per grid (a bounded LRU), so the many candidates looking at the same input's objects pay once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache

from batt_tasks.battery.dsl import NEIGHBOURS_4, NEIGHBOURS_8, Grid, background, shape

Cell = tuple[int, int, int]

MAX_OBJECTS = 200


@dataclass(frozen=True)
class Obj:
    """A connected set of ``(row, col, colour)`` cells, row-major sorted."""

    cells: tuple[Cell, ...]

    @cached_property
    def box(self) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` inclusive."""
        rows = [r for r, _, _ in self.cells]
        cols = [c for _, c, _ in self.cells]
        return min(rows), min(cols), max(rows), max(cols)

    @property
    def size(self) -> int:
        """Number of cells."""
        return len(self.cells)

    @property
    def height(self) -> int:
        """Bounding-box height."""
        return self.box[2] - self.box[0] + 1

    @property
    def width(self) -> int:
        """Bounding-box width."""
        return self.box[3] - self.box[1] + 1

    @property
    def area(self) -> int:
        """Bounding-box area."""
        return self.height * self.width

    @cached_property
    def colours(self) -> Counter[int]:
        """Cell count per colour."""
        return Counter(v for _, _, v in self.cells)

    @property
    def colour(self) -> int:
        """The most common colour (ties: smaller colour)."""
        return min(self.colours, key=lambda c: (-self.colours[c], c))

    @cached_property
    def shape_key(self) -> tuple[tuple[int, int], ...]:
        """The cell positions relative to the bounding box, colour-blind."""
        top, left, _, _ = self.box
        return tuple((r - top, c - left) for r, c, _ in self.cells)

    def as_grid(self, bg: int) -> Grid:
        """The object alone on a ``bg`` grid of its bounding box."""
        top, left, _, _ = self.box
        rows = [[bg] * self.width for _ in range(self.height)]
        for r, c, v in self.cells:
            rows[r - top][c - left] = v
        return tuple(tuple(row) for row in rows)

    @cached_property
    def symmetric(self) -> bool:
        """Whether the object (with its colours) is its own left-right or top-bottom mirror image."""
        g = self.as_grid(-1)
        return g == tuple(row[::-1] for row in g) or g == g[::-1]

    def is_rectangle(self) -> bool:
        """Whether the object fills its bounding box."""
        return self.size == self.area


@lru_cache(maxsize=128)
def objects(grid: Grid, univalued: bool = True, diagonal: bool = False, bg: int | None = None) -> tuple[Obj, ...]:
    """Connected components of non-``bg`` cells (``bg`` defaults to the grid's background), in row-major order of
    their first cell. Raises ValueError beyond MAX_OBJECTS components, which bounds every caller's cost."""
    bg = background(grid) if bg is None else bg
    h, w = shape(grid)
    steps = NEIGHBOURS_8 if diagonal else NEIGHBOURS_4
    seen = [[False] * w for _ in range(h)]
    found: list[Obj] = []
    for r0 in range(h):
        row0 = grid[r0]
        for c0 in range(w):
            v0 = row0[c0]
            if v0 == bg or seen[r0][c0]:
                continue
            seen[r0][c0] = True
            stack = [(r0, c0)]
            members: list[Cell] = []
            while stack:
                r, c = stack.pop()
                v = grid[r][c]
                members.append((r, c, v))
                for dr, dc in steps:
                    nr, nc = r + dr, c + dc
                    if 0 <= nr < h and 0 <= nc < w and not seen[nr][nc]:
                        nv = grid[nr][nc]
                        if nv != bg and (not univalued or nv == v0):
                            seen[nr][nc] = True
                            stack.append((nr, nc))
            members.sort()
            found.append(Obj(tuple(members)))
            if len(found) > MAX_OBJECTS:
                raise ValueError("too many objects")
    return tuple(found)


def _unique_best(objs: tuple[Obj, ...], key: Callable[[Obj], float], largest: bool = True) -> Obj:
    """The object with the strictly greatest (or smallest) key; ValueError on ties or no objects."""
    if not objs:
        raise ValueError("no objects")
    sign = -1 if largest else 1
    ranked = sorted(objs, key=lambda o: sign * key(o))
    if len(ranked) > 1 and key(ranked[0]) == key(ranked[1]):
        raise ValueError("tie")
    return ranked[0]


def _unique_by(objs: tuple[Obj, ...], prop: Callable[[Obj], object]) -> Obj:
    """The only object whose ``prop`` value no other object shares."""
    counts = Counter(prop(o) for o in objs)
    lone = [o for o in objs if counts[prop(o)] == 1]
    if len(lone) != 1:
        raise ValueError("no unique object")
    return lone[0]


def _common_by(objs: tuple[Obj, ...], prop: Callable[[Obj], object]) -> Obj:
    """The first object whose ``prop`` value is shared by the most objects (strictly)."""
    counts = Counter(prop(o) for o in objs)
    ranked = counts.most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        raise ValueError("no most common")
    return next(o for o in objs if prop(o) == ranked[0][0])


SELECTORS: dict[str, Callable[[tuple[Obj, ...]], Obj]] = {
    "largest": lambda objs: _unique_best(objs, lambda o: o.size),
    "smallest": lambda objs: _unique_best(objs, lambda o: o.size, largest=False),
    "biggest_box": lambda objs: _unique_best(objs, lambda o: o.area),
    "smallest_box": lambda objs: _unique_best(objs, lambda o: o.area, largest=False),
    "most_colours": lambda objs: _unique_best(objs, lambda o: len(o.colours)),
    "densest": lambda objs: _unique_best(objs, lambda o: o.size / o.area),
    "sparsest": lambda objs: _unique_best(objs, lambda o: o.size / o.area, largest=False),
    "unique_colour": lambda objs: _unique_by(objs, lambda o: o.colour),
    "unique_shape": lambda objs: _unique_by(objs, lambda o: o.shape_key),
    "unique_size": lambda objs: _unique_by(objs, lambda o: o.size),
    "common_colour": lambda objs: _common_by(objs, lambda o: o.colour),
    "topmost": lambda objs: _unique_best(objs, lambda o: o.box[0], largest=False),
    "bottommost": lambda objs: _unique_best(objs, lambda o: o.box[2]),
    "leftmost": lambda objs: _unique_best(objs, lambda o: o.box[1], largest=False),
    "rightmost": lambda objs: _unique_best(objs, lambda o: o.box[3]),
    "most_secondary": lambda objs: _unique_best(objs, lambda o: o.size - o.colours[o.colour]),
    "fewest_secondary": lambda objs: _unique_best(objs, lambda o: o.size - o.colours[o.colour], largest=False),
    "only_rectangle": lambda objs: _unique_by(objs, lambda o: o.is_rectangle()),
    "symmetric": lambda objs: _unique_by(objs, lambda o: o.symmetric),
    "asymmetric": lambda objs: _unique_by(objs, lambda o: not o.symmetric),
}


def paint(grid: Grid, objs: tuple[Obj, ...] | list[Obj], colour: int | None = None) -> Grid:
    """``grid`` with the objects' cells painted (in their own colours, or ``colour``)."""
    rows = [list(row) for row in grid]
    for obj in objs:
        for r, c, v in obj.cells:
            rows[r][c] = v if colour is None else colour
    return tuple(tuple(row) for row in rows)


def erase(grid: Grid, objs: tuple[Obj, ...] | list[Obj], bg: int) -> Grid:
    """``grid`` with the objects' cells set to ``bg``."""
    return paint(grid, objs, bg)


def keep_only(grid: Grid, objs: tuple[Obj, ...] | list[Obj], bg: int) -> Grid:
    """A ``bg`` grid of the same shape holding only the given objects."""
    h, w = shape(grid)
    return paint(tuple((bg,) * w for _ in range(h)), objs)
