"""Grid DSL: pure functions on immutable ARC grids (tuples of tuples of ints 0-9).

Every function takes and returns immutable grids (or plain values); none mutates its input.
numpy is used inside where it is faster; results always come back as tuples of tuples.
Functions raise :class:`ValueError` (or return an input unchanged) when a transform does not apply,
and the battery treats an exception as "this candidate has no output for this sample".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache

import numpy as np

Grid = tuple[tuple[int, ...], ...]
GridFn = Callable[[Grid], Grid]

MAX_SIDE = 30


# ---------------------------------------------------------------------------------------------
# conversion and basic facts


def to_array(grid: Grid) -> np.ndarray:
    """The grid as a 2-D ``int8`` numpy array (a copy)."""
    return np.array(grid, dtype=np.int8)


def from_array(array: np.ndarray) -> Grid:
    """A 2-D integer array as an immutable grid."""
    return tuple(tuple(int(v) for v in row) for row in array.tolist())


def shape(grid: Grid) -> tuple[int, int]:
    """``(height, width)`` of the grid."""
    return len(grid), len(grid[0])


def check(grid: Grid) -> Grid:
    """Return ``grid`` when it is a valid, non-empty ARC grid of at most 30×30; raise ValueError otherwise."""
    if not grid or not grid[0]:
        raise ValueError("empty grid")
    h, w = len(grid), len(grid[0])
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ValueError(f"grid {h}x{w} is larger than {MAX_SIDE}x{MAX_SIDE}")
    return grid


def colour_counts(grid: Grid) -> Counter[int]:
    """How many cells have each colour."""
    return Counter(v for row in grid for v in row)


def palette(grid: Grid) -> tuple[int, ...]:
    """The colours present, ascending."""
    return tuple(sorted({v for row in grid for v in row}))


def most_common_colour(grid: Grid) -> int:
    """The most frequent colour; ties go to the smaller colour."""
    counts = colour_counts(grid)
    return min(counts, key=lambda c: (-counts[c], c))


def least_common_colour(grid: Grid) -> int:
    """The least frequent colour present; ties go to the smaller colour."""
    counts = colour_counts(grid)
    return min(counts, key=lambda c: (counts[c], c))


@lru_cache(maxsize=256)
def background(grid: Grid) -> int:
    """The background colour: black (0) when the grid has a fair share of it, otherwise the most common colour.

    ARC uses black as background in most tasks, also where objects cover more cells than it does;
    "a fair share" is at least a third as many cells as the most common colour.
    """
    counts = colour_counts(grid)
    top = most_common_colour(grid)
    if counts.get(0, 0) * 3 >= counts[top]:
        return 0
    return top


# ---------------------------------------------------------------------------------------------
# geometry


def identity(grid: Grid) -> Grid:
    """The grid unchanged."""
    return grid


def rot90(grid: Grid) -> Grid:
    """Rotate a quarter turn clockwise."""
    return tuple(zip(*grid[::-1], strict=False))


def rot180(grid: Grid) -> Grid:
    """Rotate a half turn."""
    return tuple(row[::-1] for row in grid[::-1])


def rot270(grid: Grid) -> Grid:
    """Rotate a quarter turn anticlockwise."""
    return tuple(zip(*grid, strict=False))[::-1]


def flip_h(grid: Grid) -> Grid:
    """Mirror left-right (each row reversed)."""
    return tuple(row[::-1] for row in grid)


def flip_v(grid: Grid) -> Grid:
    """Mirror top-bottom (row order reversed)."""
    return grid[::-1]


def transpose(grid: Grid) -> Grid:
    """Mirror along the main diagonal."""
    return tuple(zip(*grid, strict=False))


def antitranspose(grid: Grid) -> Grid:
    """Mirror along the anti-diagonal."""
    return rot180(transpose(grid))


GEOMETRIC: dict[str, GridFn] = {
    "identity": identity,
    "rot90": rot90,
    "rot180": rot180,
    "rot270": rot270,
    "flip_h": flip_h,
    "flip_v": flip_v,
    "transpose": transpose,
    "antitranspose": antitranspose,
}


# ---------------------------------------------------------------------------------------------
# cropping


def bbox(grid: Grid, bg: int) -> tuple[int, int, int, int] | None:
    """``(top, left, bottom, right)`` (inclusive) of the cells not equal to ``bg``, or None if there are none."""
    rows = [r for r, row in enumerate(grid) if any(v != bg for v in row)]
    if not rows:
        return None
    cols = [c for c in range(len(grid[0])) if any(row[c] != bg for row in grid)]
    return rows[0], cols[0], rows[-1], cols[-1]


def crop(grid: Grid, top: int, left: int, bottom: int, right: int) -> Grid:
    """The sub-grid from ``(top, left)`` to ``(bottom, right)`` inclusive."""
    if top > bottom or left > right or top < 0 or left < 0:
        raise ValueError("empty crop")
    return tuple(row[left : right + 1] for row in grid[top : bottom + 1])


def crop_to_content(grid: Grid, bg: int | None = None) -> Grid:
    """Crop to the bounding box of the non-background cells."""
    bg = background(grid) if bg is None else bg
    box = bbox(grid, bg)
    if box is None:
        raise ValueError("no content")
    return crop(grid, *box)


# ---------------------------------------------------------------------------------------------
# scaling and tiling


def upscale(grid: Grid, fy: int, fx: int | None = None) -> Grid:
    """Each cell becomes an ``fy``×``fx`` block."""
    fx = fy if fx is None else fx
    if fy < 1 or fx < 1:
        raise ValueError("scale factor below 1")
    return check(tuple(tuple(v for v in row for _ in range(fx)) for row in grid for _ in range(fy)))


def downscale(grid: Grid, fy: int, fx: int | None = None) -> Grid:
    """Keep one cell of each ``fy``×``fx`` block (the block's top-left)."""
    fx = fy if fx is None else fx
    h, w = shape(grid)
    if fy < 1 or fx < 1 or h % fy or w % fx:
        raise ValueError("grid does not divide by the scale factor")
    return tuple(row[::fx] for row in grid[::fy])


def tile(grid: Grid, ny: int, nx: int) -> Grid:
    """Repeat the grid ``ny`` times down and ``nx`` times across."""
    if ny < 1 or nx < 1:
        raise ValueError("tile count below 1")
    return check(tuple(row * nx for row in grid) * ny)


def hconcat(a: Grid, b: Grid) -> Grid:
    """``a`` and ``b`` side by side (same height)."""
    if len(a) != len(b):
        raise ValueError("heights differ")
    return check(tuple(ra + rb for ra, rb in zip(a, b, strict=False)))


def vconcat(a: Grid, b: Grid) -> Grid:
    """``a`` above ``b`` (same width)."""
    if len(a[0]) != len(b[0]):
        raise ValueError("widths differ")
    return check(a + b)


# ---------------------------------------------------------------------------------------------
# colours


def recolour(grid: Grid, mapping: dict[int, int]) -> Grid:
    """Replace each colour through ``mapping`` (colours not in it are kept)."""
    return tuple(tuple(mapping.get(v, v) for v in row) for row in grid)


def replace_colour(grid: Grid, old: int, new: int) -> Grid:
    """Replace one colour by another."""
    return tuple(tuple(new if v == old else v for v in row) for row in grid)


def fill_all(grid: Grid, colour: int) -> Grid:
    """A grid of the same shape in one colour."""
    h, w = shape(grid)
    return tuple((colour,) * w for _ in range(h))


def cells(grid: Grid) -> Iterable[tuple[int, int, int]]:
    """``(row, col, colour)`` for every cell, row-major."""
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            yield r, c, v


def colour_count_grid(grid: Grid) -> int:
    """How many distinct colours the grid has."""
    return len(palette(grid))


# ---------------------------------------------------------------------------------------------
# shifting and gravity


def shift(grid: Grid, dy: int, dx: int, bg: int | None = None, wrap: bool = False) -> Grid:
    """Move the whole grid by ``(dy, dx)``; cells shifted in are ``bg`` (or wrap around when ``wrap``)."""
    h, w = shape(grid)
    if wrap:
        return tuple(tuple(grid[(r - dy) % h][(c - dx) % w] for c in range(w)) for r in range(h))
    bg = background(grid) if bg is None else bg
    return tuple(
        tuple(grid[r - dy][c - dx] if 0 <= r - dy < h and 0 <= c - dx < w else bg for c in range(w)) for r in range(h)
    )


def _fall_row(row: tuple[int, ...], bg: int) -> tuple[int, ...]:
    """Non-background cells of a row slide to its end, keeping their order."""
    solid = [v for v in row if v != bg]
    return (bg,) * (len(row) - len(solid)) + tuple(solid)


def gravity(grid: Grid, direction: str, bg: int | None = None) -> Grid:
    """Every non-background cell falls as far as it can towards ``direction`` (``down``/``up``/``left``/``right``)."""
    bg = background(grid) if bg is None else bg
    if direction == "right":
        return tuple(_fall_row(row, bg) for row in grid)
    if direction == "left":
        return flip_h(gravity(flip_h(grid), "right", bg))
    if direction == "down":
        return transpose(gravity(transpose(grid), "right", bg))
    if direction == "up":
        return transpose(gravity(transpose(grid), "left", bg))
    raise ValueError(f"unknown direction {direction!r}")


# ---------------------------------------------------------------------------------------------
# regions


NEIGHBOURS_4 = ((-1, 0), (1, 0), (0, -1), (0, 1))
NEIGHBOURS_8 = NEIGHBOURS_4 + ((-1, -1), (-1, 1), (1, -1), (1, 1))


def border_reachable(grid: Grid, passable: int, diagonal: bool = False) -> set[tuple[int, int]]:
    """Cells of colour ``passable`` connected to the grid border through cells of that colour."""
    h, w = shape(grid)
    steps = NEIGHBOURS_8 if diagonal else NEIGHBOURS_4
    stack = [
        (r, c) for r in range(h) for c in range(w) if (r in (0, h - 1) or c in (0, w - 1)) and grid[r][c] == passable
    ]
    seen = set(stack)
    while stack:
        r, c = stack.pop()
        for dr, dc in steps:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and (nr, nc) not in seen and grid[nr][nc] == passable:
                seen.add((nr, nc))
                stack.append((nr, nc))
    return seen


def fill_enclosed(grid: Grid, colour: int, bg: int | None = None, diagonal: bool = False) -> Grid:
    """Paint ``colour`` over background cells that cannot reach the border through background.

    ``diagonal`` lets the background leak through diagonal gaps (so fewer cells count as enclosed).
    """
    bg = background(grid) if bg is None else bg
    outside = border_reachable(grid, bg, diagonal)
    return tuple(
        tuple(colour if v == bg and (r, c) not in outside else v for c, v in enumerate(row))
        for r, row in enumerate(grid)
    )


def enclosed_cells(grid: Grid, bg: int, diagonal: bool = False) -> list[tuple[int, int]]:
    """The background cells that cannot reach the border through background, row-major."""
    outside = border_reachable(grid, bg, diagonal)
    return [(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v == bg and (r, c) not in outside]


# ---------------------------------------------------------------------------------------------
# overlay, symmetry


def overlay(under: Grid, over: Grid, bg: int) -> Grid:
    """``over``'s non-background cells painted on ``under`` (same shape)."""
    if shape(under) != shape(over):
        raise ValueError("shapes differ")
    return tuple(
        tuple(b if b != bg else a for a, b in zip(ra, rb, strict=False)) for ra, rb in zip(under, over, strict=False)
    )


SYMMETRIES: dict[str, tuple[GridFn, ...]] = {
    "h": (flip_h,),
    "v": (flip_v,),
    "hv": (flip_h, flip_v, rot180),
    "rot180": (rot180,),
    "diag": (transpose,),
    "rot90": (rot90, rot180, rot270),
    "all": (flip_h, flip_v, rot180, transpose, antitranspose, rot90, rot270),
}


def symmetrise(grid: Grid, kind: str, bg: int | None = None) -> Grid:
    """Fill background cells from their mirror images under the symmetry group ``kind`` (see SYMMETRIES)."""
    bg = background(grid) if bg is None else bg
    out = grid
    for fn in SYMMETRIES[kind]:
        image = fn(grid)
        if shape(image) != shape(grid):
            raise ValueError("symmetry changes the shape")
        out = overlay(image, out, bg)
    return out


@lru_cache(maxsize=64)
def complete_symmetry(grid: Grid, mask: int) -> Grid:
    """Replace the ``mask``-coloured cells using the grid's own mirror symmetries, whatever the axes' positions.

    Finds, for each mirror (left-right, top-bottom, both diagonals, about any axis position), whether
    the cells it maps onto each other agree wherever neither is masked; mask cells are then filled
    from their images under the agreeing mirrors. Raises ValueError when some mask cell stays unfilled.
    """
    a = to_array(grid)
    h, w = a.shape
    known = a != mask
    fills = a.copy()
    filled = known.copy()
    for transform in _mirror_candidates(h, w):
        rr, cc = transform
        valid = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        src_r, src_c = np.where(valid, rr, 0), np.where(valid, cc, 0)
        image = a[src_r, src_c]
        image_known = known[src_r, src_c] & valid
        both = known & image_known
        if both.sum() < max(4, known.sum() // 4):
            continue
        if not np.array_equal(a[both], image[both]):
            continue
        take = ~filled & image_known
        fills[take] = image[take]
        filled |= take
    if not filled.all():
        raise ValueError("mask not fully recoverable")
    return from_array(fills)


def _mirror_candidates(h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Index maps of mirrors about every axis position, as (row index, col index) arrays."""
    r, c = np.indices((h, w))
    # axes far from the middle leave too little overlap to be trusted; skip them
    out = [(r, s - c) for s in range(max(1, w // 2 - 1), min(2 * w - 2, w + w // 2 + 1))]
    out += [(s - r, c) for s in range(max(1, h // 2 - 1), min(2 * h - 2, h + h // 2 + 1))]
    out += [(c - k, r + k) for k in range(-(h // 2), w // 2 + 1)]
    out += [(s - c, s - r) for s in range(h // 2, h + w - h // 2)]
    return out


# ---------------------------------------------------------------------------------------------
# splitting and cell-wise combination


@lru_cache(maxsize=256)
def separator_lines(grid: Grid) -> tuple[int, list[int], list[int]] | None:
    """``(colour, rows, cols)`` of full single-colour lines that divide the grid, or None.

    A separator colour fills whole rows and/or columns; the grid's background colour only counts when
    it also never appears elsewhere.
    """
    h, w = shape(grid)
    best: tuple[int, list[int], list[int]] | None = None
    for colour in palette(grid):
        rows = [r for r in range(h) if all(v == colour for v in grid[r])]
        cols = [c for c in range(w) if all(grid[r][c] == colour for r in range(h))]
        if not rows and not cols:
            continue
        if len(rows) == h or len(cols) == w:
            continue
        in_lines = len(rows) * w + len(cols) * h - len(rows) * len(cols)
        if colour_counts(grid)[colour] != in_lines:
            continue
        if best is None or len(rows) + len(cols) > len(best[1]) + len(best[2]):
            best = (colour, rows, cols)
    return best


def _spans(lines: list[int], size: int) -> list[tuple[int, int]]:
    spans, start = [], 0
    for line in lines + [size]:
        if line > start:
            spans.append((start, line))
        start = line + 1
    return spans


def split_cells(grid: Grid) -> list[list[Grid]]:
    """The grid's cells between separator lines, as rows of sub-grids; raises ValueError without separators."""
    sep = separator_lines(grid)
    if sep is None:
        raise ValueError("no separator lines")
    _, rows, cols = sep
    h, w = shape(grid)
    return [[tuple(row[c0:c1] for row in grid[r0:r1]) for c0, c1 in _spans(cols, w)] for r0, r1 in _spans(rows, h)]


@lru_cache(maxsize=256)
def split_parts(grid: Grid, axis: str, n: int = 2) -> tuple[Grid, ...]:
    """Split into ``n`` equal parts along ``axis`` (``h``: side by side, ``v``: stacked), dropping separator lines.

    Separator lines are used when present and they yield ``n`` equal parts; otherwise the grid must divide evenly.
    """
    sep = separator_lines(grid)
    if sep is not None:
        cells = split_cells(grid)
        parts = cells[0] if axis == "h" and len(cells) == 1 else [row[0] for row in cells] if axis == "v" else []
        if axis == "v" and any(len(row) != 1 for row in cells):
            parts = []
        if len(parts) == n and len({shape(p) for p in parts}) == 1:
            return tuple(parts)
    h, w = shape(grid)
    if axis == "h":
        if w % n:
            raise ValueError("width does not divide")
        k = w // n
        return tuple(tuple(row[i * k : (i + 1) * k] for row in grid) for i in range(n))
    if h % n:
        raise ValueError("height does not divide")
    k = h // n
    return tuple(grid[i * k : (i + 1) * k] for i in range(n))


CELL_OPS: dict[str, Callable[[bool, bool], bool]] = {
    "and": lambda a, b: a and b,
    "or": lambda a, b: a or b,
    "xor": lambda a, b: a != b,
    "nor": lambda a, b: not (a or b),
    "left_only": lambda a, b: a and not b,
    "right_only": lambda a, b: b and not a,
}


def combine(a: Grid, b: Grid, op: str, colour: int, bg: int = 0) -> Grid:
    """Cell-wise boolean combination of two same-shaped grids' non-background masks, painted ``colour`` on ``bg``."""
    if shape(a) != shape(b):
        raise ValueError("shapes differ")
    fn = CELL_OPS[op]
    return tuple(
        tuple(colour if fn(x != bg, y != bg) else bg for x, y in zip(ra, rb, strict=False))
        for ra, rb in zip(a, b, strict=False)
    )


# ---------------------------------------------------------------------------------------------
# lines


DIRECTIONS: dict[str, tuple[tuple[int, int], ...]] = {
    "h": ((0, -1), (0, 1)),
    "v": ((-1, 0), (1, 0)),
    "hv": ((0, -1), (0, 1), (-1, 0), (1, 0)),
    "diag": ((-1, -1), (-1, 1), (1, -1), (1, 1)),
    "up": ((-1, 0),),
    "down": ((1, 0),),
    "left": ((0, -1),),
    "right": ((0, 1),),
    "star": NEIGHBOURS_8,
}


def draw_rays(grid: Grid, dirs: str, bg: int | None = None, stop: bool = False, only: int | None = None) -> Grid:
    """From each non-background cell (of colour ``only`` if given) draw its colour along ``dirs`` to the border.

    Rays only paint background cells; with ``stop`` a ray ends at the first non-background cell.
    """
    bg = background(grid) if bg is None else bg
    h, w = shape(grid)
    out = [list(row) for row in grid]
    for r, c, v in cells(grid):
        if v == bg or (only is not None and v != only):
            continue
        for dr, dc in DIRECTIONS[dirs]:
            nr, nc = r + dr, c + dc
            while 0 <= nr < h and 0 <= nc < w:
                if grid[nr][nc] != bg:
                    if stop:
                        break
                elif out[nr][nc] == bg:
                    out[nr][nc] = v
                nr, nc = nr + dr, nc + dc
    return tuple(tuple(row) for row in out)


def connect_pairs(grid: Grid, bg: int | None = None, colour: int | None = None, axes: str = "hv") -> Grid:
    """Join every two same-coloured cells on one row (``h``) or column (``v``) with a line over background.

    The line has the cells' colour, or ``colour`` when given.
    """
    bg = background(grid) if bg is None else bg
    out = [list(row) for row in grid]
    h, w = shape(grid)
    if "h" in axes:
        for r in range(h):
            last: dict[int, int] = {}
            for c in range(w):
                v = grid[r][c]
                if v == bg:
                    continue
                if v in last:
                    for k in range(last[v] + 1, c):
                        if out[r][k] == bg:
                            out[r][k] = v if colour is None else colour
                last[v] = c
    if "v" in axes:
        for c in range(w):
            last = {}
            for r in range(h):
                v = grid[r][c]
                if v == bg:
                    continue
                if v in last:
                    for k in range(last[v] + 1, r):
                        if out[k][c] == bg:
                            out[k][c] = v if colour is None else colour
                last[v] = r
    return tuple(tuple(row) for row in out)


# ---------------------------------------------------------------------------------------------
# periodic patterns


def find_period(grid: Grid, mask: int | None = None) -> tuple[int, int] | None:
    """The smallest ``(py, px)`` (by area, then py) such that cells agree with ``(r mod py, c mod px)``.

    Cells of colour ``mask`` are unknown and ignored; every residue class must keep a known cell.
    Returns None when only the whole grid is a period.
    """
    a = to_array(grid)
    h, w = a.shape
    known = a != mask if mask is not None else np.ones_like(a, dtype=bool)
    # necessary conditions, cheap: cells py rows (px columns) apart agree where both are known
    rows_ok = [py for py in range(1, h + 1) if _shift_agrees(a, known, py, 0)]
    cols_ok = [px for px in range(1, w + 1) if _shift_agrees(a, known, 0, px)]
    options = sorted(((py, px) for py in rows_ok for px in cols_ok), key=lambda p: (p[0] * p[1], p))
    for py, px in options:
        if (py, px) == (h, w):
            return None
        if _periodic_fill(a, known, py, px) is not None:
            return py, px
    return None


def _shift_agrees(a: np.ndarray, known: np.ndarray, dy: int, dx: int) -> bool:
    h, w = a.shape
    x, y = a[: h - dy, : w - dx], a[dy:, dx:]
    both = known[: h - dy, : w - dx] & known[dy:, dx:]
    return bool((x[both] == y[both]).all())


def _periodic_fill(a: np.ndarray, known: np.ndarray, py: int, px: int) -> np.ndarray | None:
    """The ``py``×``px`` tile every known cell agrees with, or None (vectorised over residue classes)."""
    h, w = a.shape
    ny, nx = -(-h // py), -(-w // px)
    vals = np.full((ny * py, nx * px), -1, dtype=np.int16)
    ok = np.zeros((ny * py, nx * px), dtype=bool)
    vals[:h, :w] = a
    ok[:h, :w] = known
    blocks = vals.reshape(ny, py, nx, px)
    okb = ok.reshape(ny, py, nx, px)
    hi = np.where(okb, blocks, -1).max(axis=(0, 2))
    lo = np.where(okb, blocks, 99).min(axis=(0, 2))
    if (hi < 0).any() or (hi != lo).any():
        return None
    return hi


@lru_cache(maxsize=64)
def repair_periodic(grid: Grid, mask: int) -> Grid:
    """Fill the ``mask`` cells by the grid's smallest consistent 2-D period."""
    a = to_array(grid)
    if not (a == mask).any():
        raise ValueError("nothing to repair")
    period = find_period(grid, mask)
    if period is None:
        raise ValueError("no period")
    py, px = period
    tile_vals = _periodic_fill(a, a != mask, py, px)
    assert tile_vals is not None
    h, w = a.shape
    full = np.tile(tile_vals, (h // py + 1, w // px + 1))[:h, :w]
    return from_array(full)


def extend_periodic(grid: Grid, height: int, width: int) -> Grid:
    """The grid's periodic pattern continued (from the top-left) to ``height``×``width``."""
    period = find_period(grid)
    py, px = period if period is not None else shape(grid)
    a = to_array(grid)[:py, :px]
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ValueError("too large")
    return from_array(np.tile(a, (height // py + 1, width // px + 1))[:height, :width])


# ---------------------------------------------------------------------------------------------
# compression and colour sequences


def dedupe_rows(grid: Grid) -> Grid:
    """Collapse runs of identical consecutive rows into one."""
    out = [grid[0]]
    for row in grid[1:]:
        if row != out[-1]:
            out.append(row)
    return tuple(out)


def compress(grid: Grid) -> Grid:
    """Collapse runs of identical consecutive rows and columns."""
    return transpose(dedupe_rows(transpose(dedupe_rows(grid))))


def period_tile(grid: Grid) -> Grid:
    """The smallest tile the grid repeats (raises ValueError when it does not repeat)."""
    period = find_period(grid)
    if period is None:
        raise ValueError("not periodic")
    py, px = period
    return tuple(row[:px] for row in grid[:py])


def colour_sequence(grid: Grid, axis: str) -> Grid:
    """Non-background colours ordered by their mean column (``h``: a row) or mean row (``v``: a column)."""
    bg = background(grid)
    where: dict[int, list[int]] = {}
    for r, c, v in cells(grid):
        if v != bg:
            where.setdefault(v, []).append(c if axis == "h" else r)
    if not where:
        raise ValueError("no colours")
    order = sorted(where, key=lambda k: (sum(where[k]) / len(where[k]), k))
    return (tuple(order),) if axis == "h" else tuple((k,) for k in order)


def bbox_fill_per_colour(grid: Grid) -> Grid:
    """Each non-background colour fills the bounding box of its cells (smaller boxes painted last)."""
    bg = background(grid)
    boxes = []
    for colour in palette(grid):
        if colour == bg:
            continue
        box = bbox(tuple(tuple(1 if v == colour else 0 for v in row) for row in grid), 0)
        if box is not None:
            boxes.append(((box[2] - box[0] + 1) * (box[3] - box[1] + 1), colour, box))
    rows = [list(row) for row in grid]
    for _, colour, (top, left, bottom, right) in sorted(boxes, reverse=True):
        for r in range(top, bottom + 1):
            for c in range(left, right + 1):
                rows[r][c] = colour
    return tuple(tuple(row) for row in rows)


def crop_colour(grid: Grid, colour: int) -> Grid:
    """Crop to the bounding box of every cell of ``colour``."""
    box = bbox(tuple(tuple(1 if v == colour else 0 for v in row) for row in grid), 0)
    if box is None:
        raise ValueError("colour absent")
    return crop(grid, *box)


def denoise_colour(grid: Grid, noise: int) -> Grid:
    """Replace cells of colour ``noise`` by the most common other colour among their 8 neighbours."""
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    for r, c, v in cells(grid):
        if v != noise:
            continue
        near = Counter(grid[r + dr][c + dc] for dr, dc in NEIGHBOURS_8 if 0 <= r + dr < h and 0 <= c + dc < w)
        near.pop(noise, None)
        if near:
            rows[r][c] = min(near, key=lambda k: (-near[k], k))
    return tuple(tuple(row) for row in rows)


def swap_two_colours(grid: Grid) -> Grid:
    """Exchange the two non-background colours of a grid that has exactly two."""
    bg = background(grid)
    fg = [c for c in palette(grid) if c != bg]
    if len(fg) != 2:
        raise ValueError("not two colours")
    a, b = fg
    return recolour(grid, {a: b, b: a})


def monochrome(grid: Grid) -> Grid:
    """Every non-background cell in the most common non-background colour."""
    bg = background(grid)
    fg = Counter(v for row in grid for v in row if v != bg)
    if not fg:
        raise ValueError("no foreground")
    top = min(fg, key=lambda k: (-fg[k], k))
    return tuple(tuple(top if v != bg else v for v in row) for row in grid)


def connect_diagonal(grid: Grid, bg: int | None = None) -> Grid:
    """Join every two same-coloured cells on one diagonal with a line of their colour over background."""
    bg = background(grid) if bg is None else bg
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    for step in ((1, 1), (1, -1)):
        for r, c, v in cells(grid):
            if v == bg:
                continue
            nr, nc = r + step[0], c + step[1]
            path = []
            while 0 <= nr < h and 0 <= nc < w and grid[nr][nc] == bg:
                path.append((nr, nc))
                nr, nc = nr + step[0], nc + step[1]
            if path and 0 <= nr < h and 0 <= nc < w and grid[nr][nc] == v:
                for pr, pc in path:
                    rows[pr][pc] = v
    return tuple(tuple(row) for row in rows)
