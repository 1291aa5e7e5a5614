"""Pattern completion and drawing families (ids ``cmp_*``).

- lattice-periodic repair: fill a learned mask colour from the grid's smallest translational lattice, which may
  be sheared (``colour = f((r + c) mod 3)`` has no rectangular period the masked grid shows);
- symmetry about a detected centre: the mirror / rotation group and its centre (any half-cell position) that
  the grid's foreground agrees with most, completed with the cells' own colours or a learned new colour;
- in-painting with a mask colour chosen by what repairs every train pair (the crop of the repaired region too);
- rotational repair about near-centre points, per-object symmetry completion;
- rays from cells, keyed by the cell's colour, direction and 3×3 foreground mask (a table, leave-one-out;
  optionally colour-blind and augmented by the 8 symmetries of the square), also after padding to a learned
  shape; rays from pixels to shapes, from an object's odd "tip", periodic rays, bouncing diagonals;
- lines: through object centres, L-paths between two pixels, split connections, midpoint stamps, outlines,
  diagonal connections, alternating stripes from two pixels, a square spiral;
- flood fill of background regions from seed cells of a learned colour, alternating two-colour floods;
- filling empty rows and columns and empty k×k squares;
- continuation: periodic patterns past their box, runs along lines, content bands, reflections, lines
  completed by analogy with a full template line, header colours cycled over empty lines;
- outputs that are one learned tile repeated over the input's shape.

Most candidates are gated by :func:`learn.fit` (one low-capacity parameter that must reproduce every train
pair) and by :func:`paints_background_only` for drawing tasks, so they stay silent on unrelated tasks.

Every search is bounded (grids are at most 30×30; centres, lattices and foreground counts are capped).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from batt_tasks.battery import dsl, learn
from batt_tasks.battery.dsl import NEIGHBOURS_4, NEIGHBOURS_8, Grid, background, shape
from batt_tasks.battery.learn import Context, NotLearned, Pair

CandidateFn = Callable[[Context, Grid], Grid]

# ---------------------------------------------------------------------------------------------
# lattice-periodic repair

Lattice = tuple[int, int, int]  # (py, px, shear): cells (r, c) and (r + py, c + shear) agree, and (r, c + px)

MAX_LATTICE_AREA = 100


def lattice_classes(h: int, w: int, lattice: Lattice) -> np.ndarray:
    """The residue class of every cell under the lattice spanned by ``(0, px)`` and ``(py, shear)``."""
    py, px, s = lattice
    r, c = np.indices((h, w))
    return (r % py) * px + (c - s * (r // py)) % px


def _lattice_fill(a: np.ndarray, known: np.ndarray, lattice: Lattice) -> np.ndarray | None:
    """Each class's one colour (known cells agreeing), or None when a class disagrees or has no known cell."""
    py, px, _ = lattice
    cls = lattice_classes(*a.shape, lattice).ravel()
    k = known.ravel()
    vals = a.ravel().astype(np.int16)
    n = py * px
    hi = np.full(n, -1, dtype=np.int16)
    lo = np.full(n, 99, dtype=np.int16)
    np.maximum.at(hi, cls[k], vals[k])
    np.minimum.at(lo, cls[k], vals[k])
    if (hi < 0).any() or (hi != lo).any():
        return None
    return hi


def _agrees(a: np.ndarray, known: np.ndarray, dy: int, dx: int) -> bool:
    """Whether cells ``(dy, dx)`` apart agree wherever both are known (``dy`` ≥ 0, any ``dx``)."""
    h, w = a.shape
    if dy >= h or abs(dx) >= w:
        return True
    if dx >= 0:
        x, y, kx, ky = a[: h - dy, : w - dx], a[dy:, dx:], known[: h - dy, : w - dx], known[dy:, dx:]
    else:
        x, y, kx, ky = a[: h - dy, -dx:], a[dy:, : w + dx], known[: h - dy, -dx:], known[dy:, : w + dx]
    both = kx & ky
    return bool((x[both] == y[both]).all())


@lru_cache(maxsize=64)
def find_lattice(grid: Grid, mask: int) -> Lattice | None:
    """The smallest-area lattice (then fewest rows, then least shear) the non-``mask`` cells agree with."""
    a = dsl.to_array(grid)
    h, w = a.shape
    known = a != mask
    if known.all() or not known.any():
        return None
    cols_ok = [px for px in range(1, w + 1) if _agrees(a, known, 0, px)]
    options: list[tuple[int, int, int, int]] = []
    for py in range(1, h + 1):
        for px in cols_ok:
            if py * px > MAX_LATTICE_AREA or py * px >= h * w // 2:
                continue
            for s in range(px):
                options.append((py * px, py, s, px))
    options.sort()
    for _, py, s, px in options:
        if not _agrees(a, known, py, s) or (s and not _agrees(a, known, py, s - px)):
            continue
        if _lattice_fill(a, known, (py, px, s)) is not None:
            return py, px, s
    return None


def repair_lattice(grid: Grid, mask: int) -> Grid:
    """Fill the ``mask`` cells from the grid's smallest consistent (possibly sheared) lattice."""
    lattice = find_lattice(grid, mask)
    if lattice is None:
        raise ValueError("no lattice")
    a = dsl.to_array(grid)
    fill = _lattice_fill(a, a != mask, lattice)
    assert fill is not None
    return dsl.from_array(fill[lattice_classes(*a.shape, lattice)])


# ---------------------------------------------------------------------------------------------
# symmetry about a detected centre

# (name, needs A ≡ B mod 2); each maps (r, c) with doubled centre (A, B) to its image
TRANSFORMS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "flip_h": lambda r, c, A, B: (r + 0 * A, B - c),
    "flip_v": lambda r, c, A, B: (A - r, c + 0 * B),
    "rot180": lambda r, c, A, B: (A - r, B - c),
    "transpose": lambda r, c, A, B: ((A - B) // 2 + c, (B - A) // 2 + r),
    "antitranspose": lambda r, c, A, B: ((A + B) // 2 - c, (A + B) // 2 - r),
    "rot90": lambda r, c, A, B: ((A - B) // 2 + c, (A + B) // 2 - r),
    "rot270": lambda r, c, A, B: ((A + B) // 2 - c, (B - A) // 2 + r),
}
GROUPS: dict[str, tuple[str, ...]] = {
    "h": ("flip_h",),
    "v": ("flip_v",),
    "hv": ("flip_h", "flip_v", "rot180"),
    "rot180": ("rot180",),
    "diag": ("transpose",),
    "antidiag": ("antitranspose",),
    "rot90": ("rot90", "rot180", "rot270"),
    "all": ("flip_h", "flip_v", "rot180", "transpose", "antitranspose", "rot90", "rot270"),
}
_PARITY = {"transpose", "antitranspose", "rot90", "rot270"}
MAX_FG = 300
MAX_WORK = 250_000  # centres × foreground cells × transforms


def _maps_onto_itself(cells: set[tuple[int, int]], kind: str, A: int, B: int) -> bool:
    rr = np.array([r for r, _ in cells])
    cc = np.array([c for _, c in cells])
    for name in GROUPS[kind]:
        ir, ic = TRANSFORMS[name](rr, cc, np.int64(A), np.int64(B))
        if {(int(r), int(c)) for r, c in zip(ir, ic, strict=True)} != cells:
            return False
    return True


@lru_cache(maxsize=256)
def pivot_centre(grid: Grid, kind: str) -> tuple[int, int] | None:
    """The doubled bounding-box centre of the one foreground colour whose cells the group ``kind`` maps onto
    themselves about that centre (the pivot other shapes are mirrored around), or None."""
    bg = background(grid)
    by_colour: dict[int, set[tuple[int, int]]] = {}
    for r, c, v in dsl.cells(grid):
        if v != bg:
            by_colour.setdefault(v, set()).add((r, c))
    if len(by_colour) < 2:
        return None
    found = []
    for colour in sorted(by_colour):
        cells = by_colour[colour]
        A = min(r for r, _ in cells) + max(r for r, _ in cells)
        B = min(c for _, c in cells) + max(c for _, c in cells)
        if (A - B) % 2 and any(t in _PARITY for t in GROUPS[kind]):
            continue
        if _maps_onto_itself(cells, kind, A, B):
            found.append((A, B))
    return found[0] if found and len(set(found)) == 1 else None


@lru_cache(maxsize=256)
def symmetry_centre(grid: Grid, kind: str, blind: bool) -> tuple[int, int] | None:
    """The doubled centre ``(A, B)`` (inside the foreground's box) about which the group ``kind`` maps every
    foreground cell into the grid onto background or an equal colour (any foreground when ``blind``), with
    the most foreground-onto-foreground agreements; ties go to the centre nearest the box centre."""
    a = dsl.to_array(grid)
    h, w = a.shape
    bg = background(grid)
    rr, cc = np.nonzero(a != bg)
    if not 0 < len(rr) <= MAX_FG:
        return None
    top, bottom, left, right = rr.min(), rr.max(), cc.min(), cc.max()
    As, Bs = np.meshgrid(np.arange(2 * top, 2 * bottom + 1), np.arange(2 * left, 2 * right + 1), indexing="ij")
    As, Bs = As.ravel().astype(np.int16), Bs.ravel().astype(np.int16)
    rr, cc = rr.astype(np.int16), cc.astype(np.int16)
    if any(t in _PARITY for t in GROUPS[kind]):
        keep = (As - Bs) % 2 == 0
        As, Bs = As[keep], Bs[keep]
    if not len(As) or len(As) * len(rr) * len(GROUPS[kind]) > MAX_WORK:
        return None
    vals = a[rr, cc]
    ok = np.ones(len(As), dtype=bool)
    score = np.zeros(len(As), dtype=np.int64)
    for name in GROUPS[kind]:
        ir, ic = TRANSFORMS[name](rr[None, :], cc[None, :], As[:, None], Bs[:, None])
        inside = (ir >= 0) & (ir < h) & (ic >= 0) & (ic < w)
        ok &= inside.all(axis=1)
        image = a[np.clip(ir, 0, h - 1), np.clip(ic, 0, w - 1)]
        fg = image != bg
        same = fg if blind else fg & (image == vals[None, :])
        ok &= ~(fg & ~same).any(axis=1)
        moved = (ir != rr[None, :]) | (ic != cc[None, :])
        score += (same & moved).sum(axis=1)
    if not ok.any():
        return None
    dist = np.abs(As - (top + bottom)) + np.abs(Bs - (left + right))
    order = np.lexsort((Bs, As, dist, -score, ~ok))
    best = order[0]
    if score[best] == 0:
        return None
    return int(As[best]), int(Bs[best])


def symmetrise_about(grid: Grid, kind: str, colour: int | None, pivot: bool = False) -> Grid:
    """Complete the grid under the group ``kind`` about its detected centre (the best-agreeing one, or the
    :func:`pivot_centre`); new cells take their source's colour, or ``colour`` when given. Raises ValueError
    when no centre fits or an image leaves the grid."""
    centre = pivot_centre(grid, kind) if pivot else symmetry_centre(grid, kind, colour is not None)
    if centre is None:
        raise ValueError("no centre")
    A, B = centre
    a = dsl.to_array(grid)
    bg = background(grid)
    rr, cc = np.nonzero(a != bg)
    vals = a[rr, cc]
    out = a.copy()
    for name in GROUPS[kind]:
        ir, ic = TRANSFORMS[name](rr, cc, np.int64(A), np.int64(B))
        if ir.min() < 0 or ic.min() < 0 or ir.max() >= a.shape[0] or ic.max() >= a.shape[1]:
            raise ValueError("image leaves the grid")
        empty = a[ir, ic] == bg
        out[ir[empty], ic[empty]] = vals[empty] if colour is None else colour
    return dsl.from_array(out)


@lru_cache(maxsize=64)
def repair_rotation(grid: Grid, mask: int) -> Grid:
    """Fill the ``mask`` cells from the grid's rotational symmetries (quarter and half turns) about centres
    within three cells of the grid's centre, then from its mirror symmetries; a rotation counts when the
    known cells it maps onto known cells all agree (and there are enough of them)."""
    a = dsl.to_array(grid)
    h, w = a.shape
    known = a != mask
    if known.all() or not known.any():
        raise ValueError("nothing to repair")
    rr, cc = np.nonzero(known)
    vals = a[rr, cc]
    fills = a.copy()
    filled = known.copy()
    cA = np.arange(max(0, h - 1 - 6), min(2 * h - 2, h - 1 + 6) + 1)
    cB = np.arange(max(0, w - 1 - 6), min(2 * w - 2, w - 1 + 6) + 1)
    As, Bs = (x.ravel() for x in np.meshgrid(cA, cB, indexing="ij"))
    for name in ("rot180", "rot90", "rot270"):
        keep = (As - Bs) % 2 == 0 if name in _PARITY else np.ones(len(As), dtype=bool)
        A, B = As[keep][:, None], Bs[keep][:, None]
        ir, ic = TRANSFORMS[name](rr[None, :], cc[None, :], A, B)
        inside = (ir >= 0) & (ir < h) & (ic >= 0) & (ic < w)
        sr, sc = np.clip(ir, 0, h - 1), np.clip(ic, 0, w - 1)
        both = inside & known[sr, sc]
        agree = ~(both & (a[sr, sc] != vals[None, :])).any(axis=1)
        overlap = both.sum(axis=1)
        good = agree & (overlap >= max(4, len(rr) // 2))
        if not good.any():
            continue
        best = int(np.argmax(np.where(good, overlap, -1)))
        # images of known cells fill the masked cells they land on
        tr, tc = ir[best][inside[best]], ic[best][inside[best]]
        src = vals[inside[best]]
        take = ~filled[tr, tc]
        fills[tr[take], tc[take]] = src[take]
        filled[tr[take], tc[take]] = True
    out = dsl.from_array(fills)
    if filled.all():
        return out
    partial = dsl.from_array(np.where(filled, fills, mask))
    return dsl.complete_symmetry(partial, mask)


def symmetrise_objects(grid: Grid, option: tuple[str, int | None, int]) -> Grid:
    """Complete every object (8-connected, any colours) under the group ``kind`` about its own best centre,
    within its box grown by ``margin`` cells; new cells take the source's colour or ``colour``."""
    from batt_tasks.battery.objects import objects

    kind, colour, margin = option
    bg = background(grid)
    h, w = shape(grid)
    objs = objects(grid, False, True)
    if not objs or len(objs) > 12:
        raise ValueError("no objects or too many")
    out = dsl.to_array(grid)
    for obj in objs:
        if obj.size < 2:
            continue
        top, left, bottom, right = obj.box
        top, left = max(0, top - margin), max(0, left - margin)
        bottom, right = min(h - 1, bottom + margin), min(w - 1, right + margin)
        window = [[bg] * (right - left + 1) for _ in range(bottom - top + 1)]
        for r, c, v in obj.cells:
            window[r - top][c - left] = v
        done = symmetrise_about(tuple(tuple(row) for row in window), kind, colour)
        for r, row in enumerate(done):
            for c, v in enumerate(row):
                if v != bg and out[top + r, left + c] == bg:
                    out[top + r, left + c] = v
    return dsl.from_array(out)


# ---------------------------------------------------------------------------------------------
# rays keyed by the source cell's neighbourhood


def _fg_mask(grid: Grid, r: int, c: int, bg: int) -> int:
    h, w = shape(grid)
    bits = 0
    for dr, dc in NEIGHBOURS_8:
        rr, cc = r + dr, c + dc
        bits = bits * 2 + (1 if 0 <= rr < h and 0 <= cc < w and grid[rr][cc] != bg else 0)
    return bits


@lru_cache(maxsize=256)
def _sources(grid: Grid) -> tuple[tuple[int, int, int, int, bool], ...]:
    """``(r, c, colour, mask, is_fg)`` of foreground cells and of background cells next to exactly one
    foreground colour (their colour is that one)."""
    bg = background(grid)
    h, w = shape(grid)
    out = []
    for r in range(h):
        for c in range(w):
            v = grid[r][c]
            if v != bg:
                out.append((r, c, v, _fg_mask(grid, r, c, bg), True))
                continue
            near = {
                grid[r + dr][c + dc]
                for dr, dc in NEIGHBOURS_8
                if 0 <= r + dr < h and 0 <= c + dc < w and grid[r + dr][c + dc] != bg
            }
            if len(near) == 1:
                out.append((r, c, near.pop(), _fg_mask(grid, r, c, bg), False))
    if len(out) > 400:
        raise ValueError("too many sources")
    return tuple(out)


def _ray_cells(grid: Grid, r: int, c: int, dr: int, dc: int, bg: int, stop: bool) -> list[tuple[int, int]]:
    h, w = shape(grid)
    cells = []
    r, c = r + dr, c + dc
    while 0 <= r < h and 0 <= c < w:
        if grid[r][c] != bg:
            if stop:
                break
        else:
            cells.append((r, c))
        r, c = r + dr, c + dc
    return cells


RayKey = tuple[int, int, int, bool]
RayTable = dict[RayKey, bool]
RayMode = tuple[bool, bool, bool, bool]
# (blind: any colour, stop at foreground, augment by the 8 symmetries, nomask: ignore the neighbourhood)

_OFFSET_INDEX = {d: k for k, d in enumerate(NEIGHBOURS_8)}
_DIHEDRAL: tuple[Callable[[int, int], tuple[int, int]], ...] = (
    lambda r, c: (r, c),
    lambda r, c: (c, -r),
    lambda r, c: (-r, -c),
    lambda r, c: (-c, r),
    lambda r, c: (r, -c),
    lambda r, c: (-r, c),
    lambda r, c: (c, r),
    lambda r, c: (-c, -r),
)


@lru_cache(maxsize=4096)
def _transformed(d: int, mask: int, t: int) -> tuple[int, int]:
    """Direction index and 3×3 mask under the ``t``-th symmetry of the square."""
    fn = _DIHEDRAL[t]
    new_mask = 0
    for k, (dr, dc) in enumerate(NEIGHBOURS_8):
        if mask >> (7 - k) & 1:
            new_mask |= 1 << (7 - _OFFSET_INDEX[fn(dr, dc)])
    return _OFFSET_INDEX[fn(*NEIGHBOURS_8[d])], new_mask


@lru_cache(maxsize=64)
def _ray_observations(i: Grid, o: Grid, stop: bool) -> tuple[tuple[int, int, int, bool, bool | None], ...]:
    """``(colour, direction, mask, is_fg, cast)`` for every source and direction with a ray: ``o`` paints it
    fully (cast True), not at all (False) or partly (None, which says nothing)."""
    bg = background(i)
    found = []
    for r, c, v, mask, fg in _sources(i):
        for d, (dr, dc) in enumerate(NEIGHBOURS_8):
            ray = _ray_cells(i, r, c, dr, dc, bg, stop)
            if not ray:
                continue
            painted = sum(o[y][x] == v for y, x in ray)
            found.append((v, d, mask, fg, painted > 0 if painted in (0, len(ray)) else None))
    return tuple(found)


def learn_neighbourhood_rays(S: tuple[Pair, ...], mode: RayMode) -> RayTable | None:
    """Which (colour, direction, 3×3 foreground mask, is-foreground) sources cast a ray of their colour over
    background: a key casts when its rays were always fully painted, never left empty (rays partly painted
    say nothing). None when no ray is cast or the table does not reproduce every pair."""
    blind, stop, augment, nomask = mode
    if not S or not learn.same_shapes(S):
        return None
    seen: dict[RayKey, set[bool]] = {}
    for i, o in S:
        if background(o) != background(i):
            return None
        observed = {
            (-1 if blind else v, d, 0 if nomask else mask, fg, cast)
            for v, d, mask, fg, cast in _ray_observations(i, o, stop)
        }
        for colour, d, mask, fg, cast in sorted(observed, key=lambda x: (*x[:4], -1 if x[4] is None else int(x[4]))):
            for t in range(8 if augment else 1):
                td, tmask = _transformed(d, mask, t) if t else (d, mask)
                known = seen.setdefault((colour, td, tmask, fg), set())
                if cast is not None:
                    known.add(cast)
    table = {k: v == {True} for k, v in seen.items()}
    if not any(table.values()):
        return None
    for i, o in S:
        if apply_neighbourhood_rays(i, table, mode) != o:
            return None
    return table


def apply_neighbourhood_rays(grid: Grid, table: RayTable, mode: RayMode) -> Grid:
    """Cast the learned rays (background cells only). The table also holds the keys seen not casting; with
    3×3 masks, a foreground source with a ray over background whose key was never seen raises ValueError (the
    pairs do not say what that shape does, and casting nothing there was a wrong guess)."""
    blind, stop, _, nomask = mode
    bg = background(grid)
    rows = [list(row) for row in grid]
    for r, c, v, mask, fg in _sources(grid):
        for d, (dr, dc) in enumerate(NEIGHBOURS_8):
            key = (-1 if blind else v, d, 0 if nomask else mask, fg)
            cast = table.get(key)
            if cast is None and fg and not nomask and _ray_cells(grid, r, c, dr, dc, bg, stop):
                raise ValueError("unseen ray source")
            if cast:
                for y, x in _ray_cells(grid, r, c, dr, dc, bg, stop):
                    if rows[y][x] == bg:
                        rows[y][x] = v
    return tuple(tuple(row) for row in rows)


# ---------------------------------------------------------------------------------------------
# flood fill, empty lines, tiled outputs


def flood_from_seeds(grid: Grid, params: tuple[int, bool]) -> Grid:
    """Background regions (4- or 8-connected) touching a cell of colour ``seed`` take that colour."""
    seed, diagonal = params
    bg = background(grid)
    if seed == bg:
        raise ValueError("seed is background")
    h, w = shape(grid)
    steps = NEIGHBOURS_8 if diagonal else NEIGHBOURS_4
    rows = [list(row) for row in grid]
    stack = [
        (r + dr, c + dc)
        for r in range(h)
        for c in range(w)
        if grid[r][c] == seed
        for dr, dc in steps
        if 0 <= r + dr < h and 0 <= c + dc < w and grid[r + dr][c + dc] == bg
    ]
    if not stack:
        raise ValueError("no seeds")
    while stack:
        r, c = stack.pop()
        if rows[r][c] != bg:
            continue
        rows[r][c] = seed
        for dr, dc in steps:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and rows[nr][nc] == bg:
                stack.append((nr, nc))
    return tuple(tuple(row) for row in rows)


def fill_empty_lines(grid: Grid, params: tuple[int, bool]) -> Grid:
    """Rows and columns that are all background (but for their two end cells, with ``inner``) become ``colour``."""
    colour, inner = params
    bg = background(grid)
    a = dsl.to_array(grid)
    h, w = a.shape
    if (inner and (h < 3 or w < 3)) or (a == bg).all():
        raise ValueError("too small or empty")
    core = a[:, 1:-1] if inner else a
    rows = (core == bg).all(axis=1)
    core = a[1:-1, :] if inner else a
    cols = (core == bg).all(axis=0)
    if not rows.any() and not cols.any():
        raise ValueError("no empty line")
    out = a.copy()
    lo_c, hi_c = (1, w - 1) if inner else (0, w)
    lo_r, hi_r = (1, h - 1) if inner else (0, h)
    for r in np.nonzero(rows)[0]:
        out[r, lo_c:hi_c] = colour
    for c in np.nonzero(cols)[0]:
        out[lo_r:hi_r, c] = colour
    return dsl.from_array(out)


def fill_empty_squares(grid: Grid, params: tuple[int, ...]) -> Grid:
    """Paint ``colour`` over every ``k``×``k`` window that is all background, or all the ``empty`` colour when
    ``params`` is ``(k, colour, empty)`` (windows may overlap), or with ``(k, colour, empty, True)`` the disjoint
    windows taken greedily in reading order."""
    k, colour = params[:2]
    disjoint = len(params) > 3 and bool(params[3])
    empty = params[2] if len(params) > 2 else background(grid)
    a = dsl.to_array(grid)
    h, w = a.shape
    if k < 2 or k > min(h, w):
        raise ValueError("window does not fit")
    bg = a == empty
    ok = np.ones((h - k + 1, w - k + 1), dtype=bool)
    for dr in range(k):
        for dc in range(k):
            ok &= bg[dr : dr + h - k + 1, dc : dc + w - k + 1]
    if not ok.any():
        raise ValueError("no empty square")
    paint = np.zeros_like(bg)
    for r, c in zip(*np.nonzero(ok), strict=True):
        if disjoint and paint[r : r + k, c : c + k].any():
            continue
        paint[r : r + k, c : c + k] = True
    out = a.copy()
    out[paint] = colour
    return dsl.from_array(out)


def rays_to_target(grid: Grid, diagonal: bool, any_shape: bool = False) -> Grid:
    """Each single-cell object that sees the largest object (or, with ``any_shape``, any object of two or more
    cells) along a row or column (or diagonal) over background draws a line of its colour up to it."""
    from batt_tasks.battery.objects import SELECTORS, objects

    objs = objects(grid, False, True)
    targets = [o for o in objs if o.size >= 2] if any_shape else [SELECTORS["largest"](objs)]
    if not targets or targets[0].size < 2:
        raise ValueError("no target")
    where = {(r, c) for target in targets for r, c, _ in target.cells}
    bg = background(grid)
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    changed = False
    for obj in objs:
        if obj.size != 1:
            continue
        r0, c0, v = obj.cells[0]
        for dr, dc in NEIGHBOURS_8 if diagonal else NEIGHBOURS_4:
            r, c, path = r0 + dr, c0 + dc, []
            while 0 <= r < h and 0 <= c < w and grid[r][c] == bg:
                path.append((r, c))
                r, c = r + dr, c + dc
            if path and (r, c) in where:
                changed = True
                for y, x in path:
                    rows[y][x] = v
    if not changed:
        raise ValueError("no ray")
    return tuple(tuple(row) for row in rows)


def extend_runs(grid: Grid, axes: str) -> Grid:
    """Rows (``h``) / columns (``v``) whose foreground is one run of at least two cells repeat that run
    periodically over the whole line, in phase with it."""
    bg = background(grid)
    out = dsl.to_array(grid)
    changed = False
    for axis in axes:
        src = grid if axis == "h" else dsl.transpose(grid)
        for r, row in enumerate(src):
            fg = [c for c, v in enumerate(row) if v != bg]
            if len(fg) < 2 or fg[-1] - fg[0] + 1 != len(fg):
                continue
            start, n = fg[0], len(fg)
            line = [row[start + (c - start) % n] for c in range(len(row))]
            if axis == "h":
                out[r, :] = line
            else:
                out[:, r] = line
            changed = True
    if not changed:
        raise ValueError("no run")
    return dsl.from_array(out)


def tile_content_band(grid: Grid, axis: str) -> Grid:
    """The rows (``v``), columns (``h``) or both (``hv``) of the foreground's bounding box repeated over the
    whole grid, in phase with the box."""
    box = dsl.bbox(grid, background(grid))
    if box is None:
        raise ValueError("no content")
    top, left, bottom, right = box
    a = dsl.to_array(grid)
    h, w = a.shape
    rows = np.arange(h)
    cols = np.arange(w)
    if "v" in axis:
        rows = top + (rows - top) % (bottom - top + 1)
    if "h" in axis:
        cols = left + (cols - left) % (right - left + 1)
    return dsl.from_array(a[np.ix_(rows, cols)])


def bounce(grid: Grid, params: tuple[str, int | None]) -> Grid:
    """A diagonal line from the one foreground cell on the top or bottom row, away from that row, bouncing
    off the side walls (starting ``right``, ``left`` or ``away`` from the nearer wall); the remaining
    background becomes ``fill`` when given."""
    start, fill = params
    bg = background(grid)
    fg = [(r, c, v) for r, c, v in dsl.cells(grid) if v != bg]
    h, w = shape(grid)
    if len(fg) != 1 or w < 2:
        raise ValueError("not one pixel")
    r, c, v = fg[0]
    if r not in (0, h - 1) or h < 2:
        raise ValueError("not on the top or bottom row")
    dr = -1 if r == h - 1 else 1
    toward = {"right": 1, "left": -1, "away": 1 if c < w - 1 - c else -1}
    dc = toward[start]
    rows = [[bg if fill is None else fill] * w for _ in range(h)]
    while 0 <= r < h:
        rows[r][c] = v
        if not 0 <= c + dc < w:
            dc = -dc
        r, c = r + dr, c + dc
    return tuple(tuple(row) for row in rows)


def _periodic(a: np.ndarray, p: int, axis: int) -> bool:
    n = a.shape[axis]
    if p >= n:
        return True
    if axis == 0:
        return bool(np.array_equal(a[p:], a[: n - p]))
    return bool(np.array_equal(a[:, p:], a[:, : n - p]))


def continue_both_ways(grid: Grid, axis: str) -> Grid:
    """:func:`continue_pattern` to both sides along ``axis`` (``h``: left and right, ``v``: up and down)."""
    first, second = ("right", "left") if axis == "h" else ("down", "up")
    out = grid
    done = False
    for direction in (first, second):
        try:
            out = continue_pattern(out, direction)
            done = True
        except ValueError:
            continue
    if not done:
        raise ValueError("nothing to continue")
    return out


def continue_pattern(grid: Grid, direction: str) -> Grid:
    """Continue the foreground box's smallest column period over the background beyond it to the right (the
    other directions by symmetry): columns past the box repeat the box's columns, in phase."""
    turn = {"right": (dsl.identity, dsl.identity), "left": (dsl.flip_h, dsl.flip_h)}
    turn["down"] = (dsl.transpose, dsl.transpose)
    turn["up"] = (lambda x: dsl.transpose(dsl.flip_v(x)), lambda x: dsl.flip_v(dsl.transpose(x)))
    there, back = turn[direction]
    src = there(grid)
    box = dsl.bbox(src, background(grid))
    if box is None:
        raise ValueError("no content")
    _, left, _, right = box
    a = dsl.to_array(src)
    w = a.shape[1]
    width = right - left + 1
    if right == w - 1 or width < 2:
        raise ValueError("nothing beyond")
    block = a[:, left : right + 1]
    for px in range(1, width):
        if np.array_equal(block[:, px:], block[:, : width - px]):
            break
    else:
        raise ValueError("no period")
    out = a.copy()
    for c in range(right + 1, w):
        out[:, c] = a[:, left + (c - left) % px]
    return back(dsl.from_array(out))


def complete_by_analogy(grid: Grid, axis: str) -> Grid:
    """Rows (``h``) or columns (``v``) with some background become the first full line recoloured the way
    their foreground cells recolour it (each template colour maps to one colour)."""
    src = grid if axis == "h" else dsl.transpose(grid)
    bg = background(grid)
    full = [row for row in src if bg not in row]
    if not full:
        raise ValueError("no template line")
    template = full[0]
    out = []
    changed = False
    for row in src:
        fg = [(t, v) for t, v in zip(template, row, strict=True) if v != bg]
        if not fg or bg not in row:
            out.append(row)
            continue
        mapping: dict[int, int] = {}
        for t, v in fg:
            if mapping.setdefault(t, v) != v:
                raise ValueError("inconsistent line")
        if any(t not in mapping for t in template):
            raise ValueError("template colour unseen")
        out.append(tuple(mapping[t] for t in template))
        changed = True
    if not changed:
        raise ValueError("nothing to complete")
    result = tuple(out)
    return result if axis == "h" else dsl.transpose(result)


def stripes_from_two(grid: Grid) -> Grid:
    """Two pixels start full lines across the grid's short side, repeated alternately with their spacing
    towards the far side (along the long side)."""
    bg = background(grid)
    fg = [(r, c, v) for r, c, v in dsl.cells(grid) if v != bg]
    if len(fg) != 2:
        raise ValueError("not two pixels")
    h, w = shape(grid)
    src = grid if w >= h else dsl.transpose(grid)
    pts = sorted((c, v) for _, c, v in fg) if w >= h else sorted((r, v) for r, _, v in fg)
    (c1, v1), (c2, v2) = pts
    gap = c2 - c1
    if gap < 1:
        raise ValueError("same line")
    width = len(src[0])
    line = [bg] * width
    for k, c in enumerate(range(c1, width, gap)):
        line[c] = v1 if k % 2 == 0 else v2
    rows = tuple(tuple(line) for _ in src)
    return rows if w >= h else dsl.transpose(rows)


def lines_through_centres(grid: Grid, params: tuple[int | None, str]) -> Grid:
    """A row and/or column line (``h``, ``v``, ``hv``) through the centre of every object of three or more
    cells (each with an odd-sized box), over background, in ``colour`` (or the object's colour)."""
    from batt_tasks.battery.objects import objects

    colour, axes = params
    bg = background(grid)
    objs = [o for o in objects(grid, True, True) if o.size >= 3]  # lines through pixels are rays
    if not objs or len(objs) > 30:
        raise ValueError("no shapes or too many")
    out = dsl.to_array(grid)
    a = dsl.to_array(grid)
    for obj in objs:
        top, left, bottom, right = obj.box
        if (bottom - top) % 2 or (right - left) % 2:
            raise ValueError("no centre cell")
        r, c = (top + bottom) // 2, (left + right) // 2
        paint = obj.colour if colour is None else colour
        if "h" in axes:
            out[r, a[r] == bg] = paint
        if "v" in axes:
            out[a[:, c] == bg, c] = paint
    return dsl.from_array(out)


def periodic_rays(grid: Grid, params: tuple[int, int]) -> Grid:
    """From every foreground cell a ray in direction ``d`` (index of NEIGHBOURS_8) to the border over
    background, alternating ``colour`` and the cell's own colour (``colour`` first)."""
    d, colour = params
    bg = background(grid)
    dr, dc = NEIGHBOURS_8[d]
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    fg = [(r, c, v) for r, c, v in dsl.cells(grid) if v != bg]
    if not fg or len(fg) > 60:
        raise ValueError("no sources or too many")
    for r, c, v in fg:
        k = 0
        r, c = r + dr, c + dc
        while 0 <= r < h and 0 <= c < w and grid[r][c] == bg:
            rows[r][c] = colour if k % 2 == 0 else v
            k += 1
            r, c = r + dr, c + dc
    return tuple(tuple(row) for row in rows)


def reflect_extend(grid: Grid, params: tuple[str, int]) -> Grid:
    """The grid continued by reflecting it ``k`` times about its last row (``v``) or column (``h``), sharing
    the edge line: rows 0..h-1, h-2..0, 1..h-1... for ``k``×(h-1)+1 rows."""
    axis, k = params
    src = grid if axis == "v" else dsl.transpose(grid)
    h = len(src)
    if h < 2:
        raise ValueError("too short")
    period = 2 * (h - 1)
    n = k * (h - 1) + 1
    if n > dsl.MAX_SIDE:
        raise ValueError("too large")
    rows = tuple(src[min(r % period, period - r % period)] for r in range(n))
    return rows if axis == "v" else dsl.transpose(rows)


def pad_to(grid: Grid, params: tuple[learn.ShapeRule, str]) -> Grid:
    """The grid on a background canvas of the shape ``rule`` gives, at the ``corner`` (``tl``, ``tr``, ``bl``,
    ``br``)."""
    rule, corner = params
    h, w = shape(grid)
    oh, ow = learn.apply_shape_rule(rule, grid)
    if oh < h or ow < w or (oh, ow) == (h, w) or oh > dsl.MAX_SIDE or ow > dsl.MAX_SIDE:
        raise ValueError("not a larger canvas")
    top = 0 if corner[0] == "t" else oh - h
    left = 0 if corner[1] == "l" else ow - w
    rows = [[background(grid)] * ow for _ in range(oh)]
    for r, row in enumerate(grid):
        rows[top + r][left : left + w] = row
    return tuple(tuple(row) for row in rows)


def alternating_flood(grid: Grid, wall: int) -> Grid:
    """Background reachable (4-connected) from the cells of the two colours other than background and
    ``wall`` fills in those two colours alternately, each cell taking the colour its neighbour towards the
    seeds does not have."""
    bg = background(grid)
    colours = sorted({v for row in grid for v in row} - {bg, wall})
    if len(colours) != 2 or wall == bg:
        raise ValueError("not two seed colours")
    a, b = colours
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    frontier = [(r, c) for r, c, v in dsl.cells(grid) if v in (a, b)]
    if len(frontier) > 20:
        raise ValueError("too many seeds")
    while frontier:
        nxt = []
        for r, c in frontier:
            other = b if rows[r][c] == a else a
            for dr, dc in NEIGHBOURS_4:
                nr, nc = r + dr, c + dc
                if 0 <= nr < h and 0 <= nc < w and rows[nr][nc] == bg:
                    rows[nr][nc] = other
                    nxt.append((nr, nc))
        frontier = nxt
    return tuple(tuple(row) for row in rows)


def spiral(grid: Grid, colour: int) -> Grid:
    """A square spiral of ``colour`` from the top-left corner inwards (clockwise, one background cell
    between turns), on a background grid of the input's shape."""
    h, w = shape(grid)
    bg = background(grid)
    rows = [[bg] * w for _ in range(h)]
    r, c, d = 0, 0, 0
    steps = ((0, 1), (1, 0), (0, -1), (-1, 0))
    rows[0][0] = colour
    turns = 0
    while turns < 2:
        dr, dc = steps[d]
        nr, nc = r + dr, c + dc
        far_r, far_c = nr + dr, nc + dc
        ahead_blocked = not (0 <= far_r < h and 0 <= far_c < w) or rows[far_r][far_c] == colour
        if 0 <= nr < h and 0 <= nc < w and rows[nr][nc] != colour and not ahead_blocked:
            r, c = nr, nc
            rows[r][c] = colour
            turns = 0
        elif 0 <= nr < h and 0 <= nc < w and rows[nr][nc] != colour and not (0 <= far_r < h and 0 <= far_c < w):
            r, c = nr, nc
            rows[r][c] = colour
            d = (d + 1) % 4
            turns += 1
        else:
            d = (d + 1) % 4
            turns += 1
    return tuple(tuple(row) for row in rows)


def l_path(grid: Grid, params: tuple[int, str, int]) -> Grid:
    """An L-shaped path of ``colour`` over background between the two foreground pixels, leaving the one of
    colour ``start`` along ``first`` (``v``: its column, ``h``: its row) and turning once."""
    start, first, colour = params
    bg = background(grid)
    fg = [(r, c, v) for r, c, v in dsl.cells(grid) if v != bg]
    if len(fg) != 2 or [v for _, _, v in fg].count(start) != 1:
        raise ValueError("not two pixels with one start")
    (r0, c0, _), (r1, c1, _) = sorted(fg, key=lambda x: x[2] != start)
    corner = (r1, c0) if first == "v" else (r0, c1)
    rows = [list(row) for row in grid]
    for (ra, ca), (rb, cb) in (((r0, c0), corner), (corner, (r1, c1))):
        for r in range(min(ra, rb), max(ra, rb) + 1):
            for c in range(min(ca, cb), max(ca, cb) + 1):
                if rows[r][c] == bg:
                    rows[r][c] = colour
    return tuple(tuple(row) for row in rows)


def tip_rays(grid: Grid, towards: bool) -> Grid:
    """Every two-coloured object whose minor colour is one cell (its tip) casts a ray of that colour over
    background, from the tip towards (or away from) the object's centre, snapped to the nearest of 8
    directions."""
    from batt_tasks.battery.objects import objects

    bg = background(grid)
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    cast = False
    for obj in objects(grid, False, True):
        if len(obj.colours) != 2:
            continue
        tip_colour = min(obj.colours, key=lambda k: (obj.colours[k], k))
        if obj.colours[tip_colour] != 1:
            continue
        r0, c0 = next((r, c) for r, c, v in obj.cells if v == tip_colour)
        body = [(r, c) for r, c, v in obj.cells if v != tip_colour]
        vr = sum(r for r, _ in body) / len(body) - r0
        vc = sum(c for _, c in body) / len(body) - c0
        if not towards:
            vr, vc = -vr, -vc
        norm = (vr * vr + vc * vc) ** 0.5
        if norm == 0:
            continue
        dr, dc = max(NEIGHBOURS_8, key=lambda d: (d[0] * vr + d[1] * vc) / (d[0] * d[0] + d[1] * d[1]) ** 0.5)
        r, c = r0 + dr, c0 + dc
        while 0 <= r < h and 0 <= c < w:
            if grid[r][c] == bg:
                rows[r][c] = tip_colour
                cast = True
            r, c = r + dr, c + dc
    if not cast:
        raise ValueError("no tip ray")
    return tuple(tuple(row) for row in rows)


def split_connect(grid: Grid, middle: int) -> Grid:
    """Two pixels at the two ends of a row (or column) fill it: each colour its half, ``middle`` between."""
    bg = background(grid)
    h, w = shape(grid)
    out = [list(row) for row in grid]
    done = False
    for r, row in enumerate(grid):
        if row[0] != bg and row[-1] != bg and all(v == bg for v in row[1:-1]) and w % 2:
            half = w // 2
            out[r] = [row[0]] * half + [middle] + [row[-1]] * half
            done = True
    for c in range(w):
        col = [grid[r][c] for r in range(h)]
        if col[0] != bg and col[-1] != bg and all(v == bg for v in col[1:-1]) and h % 2:
            half = h // 2
            for r, v in enumerate([col[0]] * half + [middle] + [col[-1]] * half):
                out[r][c] = v
            done = True
    if not done:
        raise ValueError("no end pixels")
    return tuple(tuple(row) for row in out)


def midpoint_stamp(grid: Grid, params: tuple[int, str]) -> Grid:
    """Between every two same-coloured pixels on a row or column (an odd distance apart) a ``plus`` or
    ``dot`` of ``colour`` at their midpoint."""
    colour, stamp = params
    bg = background(grid)
    fg = [(r, c, v) for r, c, v in dsl.cells(grid) if v != bg]
    if len(fg) > 20:
        raise ValueError("too many pixels")
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    found = False
    for k, (r0, c0, v0) in enumerate(fg):
        for r1, c1, v1 in fg[k + 1 :]:
            if v0 != v1 or (r0 != r1 and c0 != c1) or (r0 + r1) % 2 or (c0 + c1) % 2:
                continue
            mr, mc = (r0 + r1) // 2, (c0 + c1) // 2
            cells = [(mr, mc)] + ([(mr + dr, mc + dc) for dr, dc in NEIGHBOURS_4] if stamp == "plus" else [])
            for r, c in cells:
                if 0 <= r < h and 0 <= c < w and grid[r][c] == bg:
                    rows[r][c] = colour
                    found = True
    if not found:
        raise ValueError("no pair")
    return tuple(tuple(row) for row in rows)


def cycle_header(grid: Grid, axis: str) -> Grid:
    """Below a full header row (``v``; right of a header column for ``h``) and one separator line, each empty
    line is filled with the header's colours in turn."""
    src = grid if axis == "v" else dsl.transpose(grid)
    bg = background(grid)
    if len(src) < 3 or bg in src[0] or bg in src[1]:
        raise ValueError("no header")
    header = src[0]
    rest = src[2:]
    if any(v != bg for row in rest for v in row):
        raise ValueError("body not empty")
    w = len(header)
    rows = src[:2] + tuple((header[k % w],) * w for k in range(len(rest)))
    return rows if axis == "v" else dsl.transpose(rows)


def outline(grid: Grid, params: tuple[int, bool, int]) -> Grid:
    """Background cells next to (4-wise, or 8-wise with ``diagonal``) a cell of colour ``source`` (any
    foreground when ``source`` is -1) become ``colour``."""
    source, diagonal, colour = params
    a = dsl.to_array(grid)
    bg = background(grid)
    src = (a != bg) if source < 0 else (a == source)
    if not src.any():
        raise ValueError("no source cells")
    near = np.zeros_like(src)
    h, w = a.shape
    for dr, dc in NEIGHBOURS_8 if diagonal else NEIGHBOURS_4:
        shifted = np.zeros_like(src)
        shifted[max(0, dr) : h + min(0, dr), max(0, dc) : w + min(0, dc)] = src[
            max(0, -dr) : h + min(0, -dr), max(0, -dc) : w + min(0, -dc)
        ]
        near |= shifted
    out = a.copy()
    out[near & (a == bg)] = colour
    return dsl.from_array(out)


def connect_diagonal_in(grid: Grid, colour: int) -> Grid:
    """Join every two same-coloured cells on one diagonal (over background only) with ``colour``."""
    bg = background(grid)
    joined = dsl.connect_diagonal(grid, bg)
    return tuple(
        tuple(colour if v != o else v for v, o in zip(row, orow, strict=True))
        for row, orow in zip(joined, grid, strict=True)
    )


def learn_output_tile(S: tuple[Pair, ...]) -> Grid | None:
    """The smallest tile (by area) every output repeats from its top-left corner, or None. Needs at least two
    pairs, outputs of their inputs' shapes in at least two shapes, and a tile smaller than the largest output."""
    if len(S) < 2 or not learn.same_shapes(S) or len({shape(o) for _, o in S}) < 2:
        return None
    outs = [dsl.to_array(o) for _, o in S]
    hmax = max(o.shape[0] for o in outs)
    wmax = max(o.shape[1] for o in outs)
    row_periods = [py for py in range(1, hmax + 1) if all(_periodic(o, py, 0) for o in outs)]
    col_periods = [px for px in range(1, wmax + 1) if all(_periodic(o, px, 1) for o in outs)]
    options = sorted((py * px, py, px) for py in row_periods for px in col_periods)
    for _, py, px in options:
        if py >= hmax and px >= wmax:
            break
        tile = np.full((py, px), -1, dtype=np.int16)
        ok = True
        for o in outs:
            h, w = o.shape
            big = np.full((-(-h // py) * py, -(-w // px) * px), -1, dtype=np.int16)
            big[:h, :w] = o
            blocks = big.reshape(-(-h // py), py, -(-w // px), px)
            hi = blocks.max(axis=(0, 2))
            lo = np.where(blocks < 0, 99, blocks).min(axis=(0, 2))
            seen = hi >= 0
            if (seen & (hi != lo)).any() or (seen & (tile >= 0) & (tile != hi)).any():
                ok = False
                break
            tile = np.where(seen, hi, tile)
        if ok and (tile >= 0).all():
            return dsl.from_array(tile)
    return None


def apply_output_tile(grid: Grid, tile: Grid) -> Grid:
    """The learned tile repeated over the input's shape."""
    h, w = shape(grid)
    t = dsl.to_array(tile)
    return dsl.from_array(np.tile(t, (-(-h // t.shape[0]), -(-w // t.shape[1])))[:h, :w])


# ---------------------------------------------------------------------------------------------
# candidates


def paints_background_only(S: tuple[Pair, ...]) -> bool:
    """Whether every output has its input's shape and background and differs from it only on background cells
    (drawing tasks: rays, symmetric completion, fills)."""
    if not S or not learn.same_shapes(S):
        return False
    changed = False
    for i, o in S:
        bg = background(i)
        for ri, ro in zip(i, o, strict=True):
            if ri != ro:
                changed = True
                if any(a != b and a != bg for a, b in zip(ri, ro, strict=True)):
                    return False
    return changed


def _drawing(ctx: Context) -> None:
    if not ctx.memo("cmp_paints_bg", lambda: paints_background_only(ctx.S)):
        raise NotLearned("not a drawing task")


def _fitted(
    key: Any, options: Callable[[Context], Any], apply: Callable[[Grid, Any], Grid], drawing: bool = False
) -> CandidateFn:
    """``apply`` with the first of ``options`` that reproduces every train pair; a ``drawing`` candidate only runs
    on tasks that paint background and gives no output when it would return its input unchanged."""

    def run(ctx: Context, grid: Grid) -> Grid:
        if drawing:
            _drawing(ctx)
        out = apply(grid, ctx.need(("cmp", key), lambda: learn.fit(ctx.S, options(ctx), apply)))
        if drawing and out == grid:
            raise ValueError("nothing drawn")
        return out

    return run


def _mask_options(ctx: Context) -> list[int]:
    """Colours in every train input and in no output."""
    in_all = set(range(10))
    for i, _ in ctx.S:
        in_all &= set(dsl.palette(i))
    outs = {v for _, o in ctx.S for row in o for v in row}
    return sorted(in_all - outs)


def _repair_options(ctx: Context) -> list[int]:
    return _mask_options(ctx) if learn.same_shapes(ctx.S) else []


def _solid_box(grid: Grid, colour: int) -> bool:
    a = dsl.to_array(grid) == colour
    rows, cols = np.nonzero(a)
    return bool(len(rows)) and bool(a[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all())


def _region_options(ctx: Context) -> list[int]:
    """Mask colours for crops of a repaired region: those of :func:`_mask_options`, then colours that form one
    solid box in every input whose shape is the output's (they may occur in outputs too)."""
    if not all(shape(o)[0] * shape(o)[1] < shape(i)[0] * shape(i)[1] for i, o in ctx.S):
        return []
    first = _mask_options(ctx)
    boxes = [
        c
        for c in range(10)
        if c not in first and all(_solid_box(i, c) and shape(dsl.crop_colour(i, c)) == shape(o) for i, o in ctx.S)
    ]
    return first + boxes


def masked_region(fill: Callable[[Grid, int], Grid]) -> Callable[[Grid, int], Grid]:
    """What ``fill`` restores under the ``mask`` colour's bounding box."""

    def run(grid: Grid, mask: int) -> Grid:
        box = dsl.bbox(tuple(tuple(1 if v == mask else 0 for v in row) for row in grid), 0)
        if box is None:
            raise ValueError("no mask")
        return dsl.crop(fill(grid, mask), *box)

    return run


def _symmetry_options(ctx: Context) -> list[tuple[str, int | None, bool]]:
    colours: list[int | None] = [None]
    colours += list(learn.new_colours(ctx.S))
    # the largest group that reproduces every pair first: a smaller one that also fits is a weaker explanation
    kinds = sorted(GROUPS, key=lambda k: -len(GROUPS[k]))
    return [(kind, colour, pivot) for pivot in (False, True) for colour in colours for kind in kinds]


def _ray_candidate(mode: RayMode) -> CandidateFn:
    def run(ctx: Context, grid: Grid) -> Grid:
        _drawing(ctx)
        table = ctx.need(("cmp_rays", mode), lambda: learn_neighbourhood_rays(ctx.loo(), mode))
        out = apply_neighbourhood_rays(grid, table, mode)
        if out == grid:
            raise ValueError("no ray cast")
        return out

    return run


def _seed_options(ctx: Context) -> list[tuple[int, bool]]:
    return [(c, d) for c in learn.new_colours(ctx.S) for d in (False, True)]


def _line_options(ctx: Context) -> list[tuple[int, bool]]:
    return [(c, inner) for inner in (False, True) for c in learn.new_colours(ctx.S)]


def _centre_line_options(ctx: Context) -> list[tuple[int | None, str]]:
    colours: list[int | None] = [None, *learn.new_colours(ctx.S)]
    return [(colour, axes) for colour in colours for axes in ("hv", "h", "v")]


def _periodic_ray_options(ctx: Context) -> list[tuple[int, int]]:
    return [(d, colour) for colour in learn.new_colours(ctx.S) for d in range(8)]


def _object_symmetry_options(ctx: Context) -> list[tuple[str, int | None, int]]:
    colours: list[int | None] = [None, *learn.new_colours(ctx.S)]
    kinds = ("h", "v", "hv", "rot90")
    return [(kind, colour, margin) for margin in (0, 2) for colour in colours for kind in kinds]


def _reflect_options(ctx: Context) -> list[tuple[str, int]]:
    return [(axis, k) for axis in ("v", "h") for k in (2, 3, 4, 5)]


def _padder(corner: str) -> CandidateFn:
    def run(ctx: Context, grid: Grid) -> Grid:
        rule = ctx.need("shape_rule", lambda: learn.learn_shape_rule(ctx.S))
        return pad_to(grid, (rule, corner))

    return run


def _compose(post: CandidateFn, pre: CandidateFn, key: str) -> CandidateFn:
    def run(ctx: Context, grid: Grid) -> Grid:
        return post(ctx.through(f"cmp_{key}", pre), pre(ctx, grid))

    return run


def _l_path_options(ctx: Context) -> list[tuple[int, str, int]]:
    starts = sorted({v for i, _ in ctx.S for v in dsl.palette(i)} - {background(i) for i, _ in ctx.S})
    return [(s, first, c) for c in learn.new_colours(ctx.S) for s in starts for first in ("v", "h")]


def _colour_x(kinds: tuple[str, ...]) -> Callable[[Context], list[tuple[int, str]]]:
    return lambda ctx: [(c, kind) for c in learn.new_colours(ctx.S) for kind in kinds]


def _outline_options(ctx: Context) -> list[tuple[int, bool, int]]:
    sources = [-1, *sorted({v for i, _ in ctx.S for v in dsl.palette(i)} - {background(i) for i, _ in ctx.S})]
    return [(src, diag, c) for c in learn.new_colours(ctx.S) for src in sources for diag in (False, True)]


def _bounce_options(ctx: Context) -> list[tuple[str, int | None]]:
    fills: list[int | None] = [None, *learn.output_colours(ctx.S)]
    return [(start, fill) for fill in fills for start in ("away", "right", "left")]


def _square_options(ctx: Context) -> list[tuple[int, int]]:
    return [(k, c) for k in (2, 3, 4) for c in learn.new_colours(ctx.S)]


def _output_tile(ctx: Context, grid: Grid) -> Grid:
    return apply_output_tile(grid, ctx.need("cmp_output_tile", lambda: learn_output_tile(ctx.S)))


def add_completion_families(reg: Any) -> None:
    """Register the ``cmp_*`` candidates (at the end of the registry)."""
    fix = masked_region
    reg.add("cmp_repair_lattice", _fitted("lattice", _repair_options, repair_lattice))
    reg.add("cmp_masked_region_lattice", _fitted("region_lattice", _region_options, fix(repair_lattice)))
    reg.add("cmp_masked_region_symmetry", _fitted("region_sym", _region_options, fix(dsl.complete_symmetry)))
    reg.add("cmp_repair_symmetry", _fitted("repair_sym", _repair_options, dsl.complete_symmetry))
    reg.add("cmp_repair_rotation", _fitted("repair_rot", _repair_options, repair_rotation))
    reg.add("cmp_masked_region_rotation", _fitted("region_rot", _region_options, fix(repair_rotation)))
    reg.add("cmp_symmetrise_objects", _fitted("sym_objects", _object_symmetry_options, symmetrise_objects, True))
    reg.add("cmp_symmetrise_about_centre", _fitted("sym_centre", _symmetry_options, _symmetrise, True))
    for blind, augment in ((False, False), (True, False), (True, True)):
        for stop in (False, True):
            suffix = f"{'_blind' if blind else ''}{'_d8' if augment else ''}{'_stop' if stop else ''}"
            name = f"cmp_rays_neighbourhood{suffix}"
            reg.add(name, _ray_candidate((blind, stop, augment, False)))
    for stop in (False, True):
        reg.add(f"cmp_rays_blind_any_cell{'_stop' if stop else ''}", _ray_candidate((True, stop, False, True)))
    reg.add("cmp_flood_from_seeds", _fitted("flood", _seed_options, flood_from_seeds, True))
    reg.add("cmp_fill_empty_lines", _fitted("empty_lines", _line_options, fill_empty_lines, True))
    reg.add("cmp_output_tile", _output_tile)
    for axis in ("h", "v", "hv"):
        reg.add(f"cmp_tile_content_band_{axis}", _fitted(f"band_{axis}", lambda ctx, a=axis: [a], tile_content_band))
    for axis in ("h", "v"):
        both = _fitted(f"continue_both_{axis}", lambda ctx, a=axis: [a], continue_both_ways)
        reg.add(f"cmp_continue_pattern_both_{axis}", both)
    reg.add(
        "cmp_rays_to_shapes", _fitted("rays_shapes", lambda ctx: [0], lambda g, _: rays_to_target(g, False, True), True)
    )
    reg.add("cmp_continue_pattern", _fitted("continue", lambda ctx: ["right", "down", "left", "up"], continue_pattern))
    for axis in ("h", "v"):
        reg.add(
            f"cmp_complete_by_analogy_{axis}", _fitted(f"analogy_{axis}", lambda ctx, a=axis: [a], complete_by_analogy)
        )
    reg.add("cmp_stripes_from_two", _fitted("stripes2", lambda ctx: [0], lambda g, _: stripes_from_two(g)))
    reg.add("cmp_lines_through_centres", _fitted("centre_lines", _centre_line_options, lines_through_centres, True))
    reg.add("cmp_periodic_rays", _fitted("periodic_rays", _periodic_ray_options, periodic_rays, True))
    reg.add("cmp_reflect_extend", _fitted("reflect", _reflect_options, reflect_extend))
    for corner in ("tl", "tr", "bl", "br"):
        pre = _padder(corner)
        for mode in ((True, False, False, True), (True, False, True, False)):
            name = f"cmp_rays_{'neighbourhood_blind_d8' if mode[2] else 'blind_any_cell'}∘pad_{corner}"
            reg.add(name, _compose(_ray_candidate(mode), pre, f"pad_{corner}"))
    reg.add("cmp_alternating_flood", _fitted("alt_flood", lambda ctx: list(range(10)), alternating_flood, True))
    reg.add("cmp_spiral", _fitted("spiral", lambda ctx: list(learn.new_colours(ctx.S)), spiral, True))
    reg.add("cmp_l_path", _fitted("l_path", _l_path_options, l_path, True))
    for towards in (True, False):
        name = f"cmp_tip_rays_{'towards' if towards else 'away'}"
        reg.add(name, _fitted(name, lambda ctx, t=towards: [t], tip_rays, True))
    reg.add(
        "cmp_split_connect", _fitted("split_connect", lambda ctx: list(learn.new_colours(ctx.S)), split_connect, True)
    )
    stamp_options = _colour_x(("plus", "dot"))
    reg.add("cmp_midpoint_stamp", _fitted("midpoint", stamp_options, midpoint_stamp, True))
    for axis in ("v", "h"):
        reg.add(f"cmp_cycle_header_{axis}", _fitted(f"cycle_{axis}", lambda ctx, a=axis: [a], cycle_header, True))
    reg.add("cmp_outline", _fitted("outline", _outline_options, outline, True))
    connect = _fitted("connect_diag", lambda ctx: list(learn.new_colours(ctx.S)), connect_diagonal_in, True)
    reg.add("cmp_connect_diagonal_learned", connect)
    reg.add("cmp_bounce_line", _fitted("bounce", _bounce_options, bounce))
    reg.add("cmp_fill_empty_squares", _fitted("empty_squares", _square_options, fill_empty_squares, True))
    for diagonal in (False, True):
        name = f"cmp_rays_to_largest{'_diag' if diagonal else ''}"
        reg.add(name, _fitted(name, lambda ctx, d=diagonal: [d], rays_to_target, True))
    for axes in ("h", "v", "hv"):
        reg.add(f"cmp_extend_runs_{axes}", _fitted(f"runs_{axes}", lambda ctx, a=axes: [a], extend_runs, True))
    # round 2: generalisations
    reg.add("cmp_symmetrise_unoccluded", _fitted("unoccluded", _unoccluded_options, symmetrise_unoccluded))
    reg.add("cmp_fill_empty_squares_of", _fitted("empty_squares_of", _square_empty_options, fill_empty_squares))


def _symmetrise(grid: Grid, option: tuple[str, int | None, bool]) -> Grid:
    return symmetrise_about(grid, *option)


def occluder(grid: Grid, mask: int | str) -> int:
    """The occluding colour: ``mask`` itself, or for ``"box"`` the one foreground colour whose cells fill their
    bounding box (and are not all the foreground). Raises ValueError when there is no single such colour."""
    if isinstance(mask, int):
        return mask
    bg = background(grid)
    fg = [c for c in dsl.palette(grid) if c != bg]
    boxes = [c for c in fg if _solid_box(grid, c)]
    if len(fg) < 2 or len(boxes) != 1:
        raise ValueError("no single occluding box")
    return boxes[0]


def symmetrise_unoccluded(grid: Grid, option: tuple[int | str, str]) -> Grid:
    """Erase the occluding colour (:func:`occluder`) to background, then complete the rest under the group
    ``kind`` about its best-agreeing centre (:func:`symmetrise_about`): a symmetric shape seen through a patch
    of noise."""
    mask_option, kind = option
    mask = occluder(grid, mask_option)
    bg = background(grid)
    if mask == bg:
        raise ValueError("the mask is the background")
    a = dsl.to_array(grid)
    hidden = a == mask
    if not hidden.any():
        raise ValueError("nothing occluded")
    a[hidden] = bg
    h, w = a.shape
    rr, cc = np.nonzero(a != bg)
    if not 0 < len(rr) <= min(MAX_FG, h * w // 2):
        raise ValueError("no shape on a background")
    hr, hc = np.nonzero(hidden)
    top, bottom = min(rr.min(), hr.min()), max(rr.max(), hr.max())
    left, right = min(cc.min(), hc.min()), max(cc.max(), hc.max())
    As, Bs = np.meshgrid(np.arange(2 * top, 2 * bottom + 1), np.arange(2 * left, 2 * right + 1), indexing="ij")
    As, Bs = As.ravel(), Bs.ravel()
    if any(t in _PARITY for t in GROUPS[kind]):
        keep = (As - Bs) % 2 == 0
        As, Bs = As[keep], Bs[keep]
    if not len(As) or len(As) * len(rr) * len(GROUPS[kind]) > MAX_WORK:
        raise ValueError("too much work")
    vals = a[rr, cc]
    ok = np.ones(len(As), dtype=bool)
    fills = np.zeros(len(As), dtype=np.int64)
    images = []
    for name in GROUPS[kind]:
        ir, ic = TRANSFORMS[name](rr[None, :], cc[None, :], As[:, None], Bs[:, None])
        inside = (ir >= 0) & (ir < h) & (ic >= 0) & (ic < w)
        ok &= inside.all(axis=1)
        jr, jc = np.clip(ir, 0, h - 1), np.clip(ic, 0, w - 1)
        # a visible cell's image is the same colour, or hidden: never uncovered background nor another colour
        ok &= ((a[jr, jc] == vals[None, :]) | hidden[jr, jc]).all(axis=1)
        fills += hidden[jr, jc].sum(axis=1)
        images.append((ir, ic))
    ok &= fills > 0
    if not ok.any():
        raise ValueError("no centre")
    dist = np.abs(As - (top + bottom)) + np.abs(Bs - (left + right))
    best = int(np.lexsort((Bs, As, dist, ~ok))[0])
    out = a.copy()
    for ir, ic in images:
        out[ir[best], ic[best]] = vals
    return dsl.from_array(out)


def _unoccluded_options(ctx: Context) -> list[tuple[int | str, str]]:
    """Occluders (colours in every input and no output, or the solid box) × groups, largest group first."""
    if not learn.same_shapes(ctx.S):
        return []
    kinds = sorted(GROUPS, key=lambda k: -len(GROUPS[k]))
    masks: list[int | str] = [*_mask_options(ctx), "box"]
    return [(mask, kind) for mask in masks for kind in kinds]


def painted_over(S: tuple[Pair, ...]) -> int | None:
    """The one colour that every changed cell of every pair had in the input (same shapes), or None."""
    if not S or not learn.same_shapes(S):
        return None
    under: set[int] = set()
    for i, o in S:
        for ri, ro in zip(i, o, strict=True):
            under.update(a for a, b in zip(ri, ro, strict=True) if a != b)
    return under.pop() if len(under) == 1 else None


def _square_empty_options(ctx: Context) -> list[tuple[int, int, int, int]]:
    empty = painted_over(ctx.S)
    if empty is None:
        return []
    return [(k, c, empty, d) for d in (0, 1) for k in (2, 3, 4, 5) for c in learn.new_colours(ctx.S)]
