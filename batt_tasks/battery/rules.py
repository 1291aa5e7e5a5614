"""Learned rule families that look past a cell's neighbourhood: per-colour rays and stamps, colour roles,
folding, quadrant overlays, moving objects into contact.

Each ``*_learned`` function takes the train pairs and returns a parameter (or None); the candidate
functions in :mod:`batt_tasks.battery.candidates` apply it. Parameters are low-capacity (a direction
set per colour, a 3×3 stamp per colour, a permutation of four quadrants...), learned from every pair.
"""

from __future__ import annotations

from collections import Counter
from itertools import permutations

from batt_tasks.battery import dsl
from batt_tasks.battery.dsl import NEIGHBOURS_8, Grid, background, shape
from batt_tasks.battery.objects import SELECTORS, Obj, objects

Pair = tuple[Grid, Grid]

RAY_STEPS = NEIGHBOURS_8


def _ray(grid: Grid, r: int, c: int, dr: int, dc: int) -> list[tuple[int, int]]:
    h, w = shape(grid)
    out = []
    r, c = r + dr, c + dc
    while 0 <= r < h and 0 <= c < w:
        out.append((r, c))
        r, c = r + dr, c + dc
    return out


def learn_rays(S: tuple[Pair, ...]) -> dict[int, tuple[tuple[int, int], ...]] | None:
    """For each input colour, the directions in which every cell of it casts a ray of its colour to the border
    in every (same-shaped) output; None when no colour casts any ray. A direction whose rays never cross a
    background cell is trivially satisfied and not learned."""
    if not S or any(shape(i) != shape(o) for i, o in S):
        return None
    colours = sorted({v for i, _ in S for row in i for v in row} - {background(i) for i, _ in S})
    table: dict[int, tuple[tuple[int, int], ...]] = {}
    for colour in colours:
        dirs = []
        for dr, dc in RAY_STEPS:
            painted = 0  # background cells the rays of this colour and direction paint: the evidence
            ok = True
            for i, o in S:
                bg = background(i)
                for r, c, v in dsl.cells(i):
                    if v != colour:
                        continue
                    for rr, cc in _ray(i, r, c, dr, dc):
                        if i[rr][cc] == bg:
                            if o[rr][cc] != colour:
                                ok = False
                                break
                            painted += 1
                    if not ok:
                        break
                if not ok:
                    break
            if ok and painted:
                dirs.append((dr, dc))
        if dirs:
            table[colour] = tuple(dirs)
    return table or None


def apply_rays(grid: Grid, table: dict[int, tuple[tuple[int, int], ...]]) -> Grid:
    """Cast the learned rays over background cells (earlier rays win where rays cross)."""
    bg = background(grid)
    rows = [list(row) for row in grid]
    for r, c, v in dsl.cells(grid):
        for dr, dc in table.get(v, ()):
            for rr, cc in _ray(grid, r, c, dr, dc):
                if grid[rr][cc] == bg and rows[rr][cc] == bg:
                    rows[rr][cc] = v
    return tuple(tuple(row) for row in rows)


def _isolated(grid: Grid, r: int, c: int, bg: int) -> bool:
    h, w = shape(grid)
    return all(grid[r + dr][c + dc] == bg for dr, dc in NEIGHBOURS_8 if 0 <= r + dr < h and 0 <= c + dc < w)


def learn_stamps(S: tuple[Pair, ...]) -> dict[int, dict[tuple[int, int], int]] | None:
    """For each colour of isolated pixels, the 3×3 pattern painted around them in the outputs (consistent in
    every pair and occurrence); None when no pixel gets a stamp."""
    if not S or any(shape(i) != shape(o) for i, o in S):
        return None
    stamps: dict[int, dict[tuple[int, int], int]] = {}
    for i, o in S:
        bg = background(i)
        h, w = shape(i)
        for r, c, v in dsl.cells(i):
            if v == bg or not _isolated(i, r, c, bg):
                continue
            stamp = stamps.setdefault(v, {})
            for dr, dc in NEIGHBOURS_8:
                rr, cc = r + dr, c + dc
                if 0 <= rr < h and 0 <= cc < w and stamp.setdefault((dr, dc), o[rr][cc]) != o[rr][cc]:
                    return None
    stamps = {k: {d: v for d, v in st.items()} for k, st in sorted(stamps.items())}
    if not any(v != background(S[0][0]) for st in stamps.values() for v in st.values()):
        return None
    return stamps


def apply_stamps(grid: Grid, stamps: dict[int, dict[tuple[int, int], int]]) -> Grid:
    """Paint the learned stamp around each isolated pixel of a stamped colour."""
    bg = background(grid)
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    for r, c, v in dsl.cells(grid):
        if v == bg or v not in stamps or not _isolated(grid, r, c, bg):
            continue
        for (dr, dc), colour in stamps[v].items():
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w and grid[rr][cc] == bg:
                rows[rr][cc] = colour
    return tuple(tuple(row) for row in rows)


def colour_roles(grid: Grid) -> list[int]:
    """The grid's colours by role: most frequent first (ties: smaller colour)."""
    counts = dsl.colour_counts(grid)
    return sorted(counts, key=lambda k: (-counts[k], k))


RoleMap = dict[int, tuple[str, int]]


def learn_role_map(S: tuple[Pair, ...]) -> RoleMap | None:
    """A colour map by frequency role: role k becomes a fixed colour (``("abs", c)``) or the colour of role j
    (``("role", j)``), consistent over every pair; None when no pair agrees or nothing changes."""
    if not S or any(shape(i) != shape(o) for i, o in S):
        return None
    observed: dict[int, list[tuple[list[int], int]]] = {}
    for i, o in S:
        roles = colour_roles(i)
        index = {colour: k for k, colour in enumerate(roles)}
        mapping: dict[int, int] = {}
        for ri, ro in zip(i, o, strict=True):
            for a, b in zip(ri, ro, strict=True):
                if mapping.setdefault(a, b) != b:
                    return None
        for colour, out in mapping.items():
            observed.setdefault(index[colour], []).append((roles, out))
    result: RoleMap = {}
    for k, seen in sorted(observed.items()):
        outs = {out for _, out in seen}
        if len(outs) == 1 and len(seen) > 1 and not all(roles[k] == out for roles, out in seen):
            result[k] = ("abs", outs.pop())
            continue
        for j in range(10):
            if all(j < len(roles) and roles[j] == out for roles, out in seen):
                result[k] = ("role", j)
                break
        else:
            if len(outs) == 1:
                result[k] = ("abs", outs.pop())
            else:
                return None
    if all(v == ("role", k) for k, v in result.items()):
        return None
    return result


def apply_role_map(grid: Grid, table: RoleMap) -> Grid:
    """Recolour ``grid`` through a role map."""
    roles = colour_roles(grid)
    mapping = {}
    for k, colour in enumerate(roles):
        if k not in table:
            raise ValueError("unseen role")
        kind, value = table[k]
        if kind == "abs":
            mapping[colour] = value
        elif value < len(roles):
            mapping[colour] = roles[value]
        else:
            raise ValueError("missing role")
    return dsl.recolour(grid, mapping)


def fold(grid: Grid, axis: str, top_first: bool) -> Grid:
    """Fold the grid in half along ``axis`` (``h``: left/right halves) and overlay the mirrored second half."""
    a, b = dsl.split_parts(grid, axis, 2)
    b = dsl.flip_h(b) if axis == "h" else dsl.flip_v(b)
    bg = background(grid)
    return dsl.overlay(a, b, bg) if top_first else dsl.overlay(b, a, bg)


def quadrants(grid: Grid) -> tuple[Grid, ...]:
    """The four quadrants (top-left, top-right, bottom-left, bottom-right), split by separators or evenly."""
    sep = dsl.separator_lines(grid)
    if sep is not None:
        cells = dsl.split_cells(grid)
        if len(cells) == 2 and all(len(row) == 2 for row in cells):
            quads = (cells[0][0], cells[0][1], cells[1][0], cells[1][1])
            if len({shape(q) for q in quads}) == 1:
                return quads
    top, bottom = dsl.split_parts(grid, "v", 2)
    tl, tr = dsl.split_parts(top, "h", 2)
    bl, br = dsl.split_parts(bottom, "h", 2)
    return tl, tr, bl, br


ORDERS = tuple(permutations(range(4)))


def overlay_quadrants(grid: Grid, order: tuple[int, ...]) -> Grid:
    """Overlay the quadrants, ``order[0]`` at the bottom and ``order[-1]`` on top."""
    quads = quadrants(grid)
    bg = 0
    out = quads[order[0]]
    for k in order[1:]:
        out = dsl.overlay(out, quads[k], bg)
    return out


def _gap_step(mover: Obj, target: Obj) -> tuple[int, int] | None:
    """The unit step that brings ``mover`` towards ``target`` along the axis they overlap on."""
    mt, ml, mb, mr = mover.box
    tt, tl, tb, tr = target.box
    rows_overlap = mt <= tb and tt <= mb
    cols_overlap = ml <= tr and tl <= mr
    if rows_overlap and not cols_overlap:
        return (0, 1) if mr < tl else (0, -1)
    if cols_overlap and not rows_overlap:
        return (1, 0) if mb < tt else (-1, 0)
    return None


def move_to_contact(grid: Grid, mover_sel: str, one_step: bool = False) -> Grid:
    """Slide the object picked by ``mover_sel`` (among two or more one-colour objects) towards the nearest
    other object along their shared rows/columns until it touches it (or by one cell with ``one_step``)."""
    bg = background(grid)
    objs = objects(grid, True, True)
    if len(objs) < 2:
        raise ValueError("need two objects")
    mover = SELECTORS[mover_sel](objs)
    others = [o for o in objs if o is not mover]
    cells_other = {(r, c) for o in others for r, c, _ in o.cells}
    h, w = shape(grid)
    best = None
    for target in others:
        step = _gap_step(mover, target)
        if step is not None:
            best = step
            break
    if best is None:
        raise ValueError("no aligned target")
    dr, dc = best
    moved = 0
    limit = 1 if one_step else max(h, w)
    while moved < limit:
        nxt = [(r + dr * (moved + 1), c + dc * (moved + 1)) for r, c, _ in mover.cells]
        if any(not (0 <= r < h and 0 <= c < w) or (r, c) in cells_other for r, c in nxt):
            break
        moved += 1
    if moved == 0:
        raise ValueError("cannot move")
    rows = [list(row) for row in grid]
    for r, c, _ in mover.cells:
        rows[r][c] = bg
    for r, c, v in mover.cells:
        rows[r + dr * moved][c + dc * moved] = v
    return tuple(tuple(row) for row in rows)


def crop_inside_corners(grid: Grid) -> Grid:
    """The region inside four same-coloured corner markers, its content recoloured to the markers' colour."""
    bg = background(grid)
    counts = dsl.colour_counts(grid)
    for colour in sorted(counts):
        if colour == bg or counts[colour] != 4:
            continue
        where = [(r, c) for r, c, v in dsl.cells(grid) if v == colour]
        rows = sorted({r for r, _ in where})
        cols = sorted({c for _, c in where})
        if len(rows) == 2 and len(cols) == 2 and rows[1] - rows[0] > 1 and cols[1] - cols[0] > 1:
            inner = dsl.crop(grid, rows[0] + 1, cols[0] + 1, rows[1] - 1, cols[1] - 1)
            return tuple(tuple(colour if v != bg else bg for v in row) for row in inner)
    raise ValueError("no corner markers")


def object_colours_by_size(grid: Grid, vertical: bool) -> Grid:
    """The colours of the objects, largest object first, as a row (or a column)."""
    objs = objects(grid, True, True)
    if not objs:
        raise ValueError("no objects")
    ranked = sorted(objs, key=lambda o: (-o.size, o.box))
    colours = tuple(o.colour for o in ranked)
    return tuple((c,) for c in colours) if vertical else (colours,)


def recolour_minor_colours(grid: Grid, colour: int) -> Grid:
    """Every cell not of the grid's most common colour becomes ``colour``."""
    top = dsl.most_common_colour(grid)
    return tuple(tuple(v if v == top else colour for v in row) for row in grid)


def colours_by_count(grid: Grid, drop_top: bool) -> Grid:
    """The non-background colours as a column, most frequent first (optionally without the most frequent)."""
    bg = background(grid)
    counts = Counter(v for row in grid for v in row if v != bg)
    order = sorted(counts, key=lambda k: (-counts[k], k))
    if drop_top:
        order = order[1:]
    if not order:
        raise ValueError("no colours")
    return tuple((c,) for c in order)


def count_objects_of(grid: Grid, colour: int, min_size: int) -> int:
    """How many one-colour objects (8-wise) of ``colour`` with at least ``min_size`` cells the grid has."""
    return sum(1 for o in objects(grid, True, True) if o.colour == colour and o.size >= min_size)


def count_diagonal(grid: Grid, colour: int) -> Grid:
    """An N×N grid with ``colour`` on its main diagonal, N = the number of objects (8-wise, one colour)."""
    n = len(objects(grid, True, True))
    if not 1 <= n <= dsl.MAX_SIDE:
        raise ValueError("no objects")
    return tuple(tuple(colour if r == c else 0 for c in range(n)) for r in range(n))


def count_bar(grid: Grid, params: tuple[int, int, int, int, int]) -> Grid:
    """A 1×``width`` row whose first N cells are ``colour`` (the rest 0), N = objects of ``of`` with at least
    ``min_size`` cells."""
    of, min_size, colour, width, _ = params
    n = count_objects_of(grid, of, min_size)
    if n > width:
        raise ValueError("too many")
    return ((colour,) * n + (0,) * (width - n),)


def pad_replicate(grid: Grid, corner: int) -> Grid:
    """The grid framed by a copy of its own edge rows and columns, the four corners ``corner``."""
    h, w = shape(grid)
    top = (corner, *grid[0], corner)
    bottom = (corner, *grid[-1], corner)
    middle = tuple((row[0], *row, row[-1]) for row in grid)
    return dsl.check((top, *middle, bottom))


def fill_fullest_cells(grid: Grid) -> Grid:
    """For grids divided by separator lines: the cells with the most foreground become solid in their colour,
    every other cell is cleared."""
    sep = dsl.separator_lines(grid)
    if sep is None:
        raise ValueError("no separator lines")
    line, rows, cols = sep
    bg = background(grid)
    h, w = shape(grid)
    spans = [(r, c) for r in dsl._spans(rows, h) for c in dsl._spans(cols, w)]
    counts = []
    for (r0, r1), (c0, c1) in spans:
        cell = Counter(v for row in grid[r0:r1] for v in row[c0:c1] if v not in (bg, line))
        counts.append(cell)
    best = max(sum(c.values()) for c in counts)
    if best == 0:
        raise ValueError("empty cells")
    out = [list(row) for row in grid]
    for ((r0, r1), (c0, c1)), cell in zip(spans, counts, strict=True):
        full = sum(cell.values()) == best
        colour = min(cell, key=lambda k: (-cell[k], k)) if full else bg
        for r in range(r0, r1):
            for c in range(c0, c1):
                out[r][c] = colour
    return tuple(tuple(row) for row in out)


def symmetrise_in_box(grid: Grid, kind: str) -> Grid:
    """:func:`dsl.symmetrise` applied inside the bounding box of the foreground (the rest unchanged)."""
    bg = background(grid)
    box = dsl.bbox(grid, bg)
    if box is None:
        raise ValueError("no foreground")
    top, left, bottom, right = box
    inner = dsl.symmetrise(dsl.crop(grid, top, left, bottom, right), kind, bg)
    rows = [list(row) for row in grid]
    for r, row in enumerate(inner):
        rows[top + r][left : right + 1] = row
    return tuple(tuple(row) for row in rows)


def colour_histogram(grid: Grid) -> Grid:
    """One column per colour of a grid without black, most frequent first, filled from the top with as many
    cells as the colour has, the rest black; height = the largest count."""
    counts = dsl.colour_counts(grid)
    if 0 in counts:
        raise ValueError("black is the filler")
    order = sorted(counts, key=lambda k: (-counts[k], k))
    height = counts[order[0]]
    return dsl.check(tuple(tuple(c if counts[c] > r else 0 for c in order) for r in range(height)))


def kronecker_halves(grid: Grid, axis: str) -> Grid:
    """The two halves (by separator or evenly along ``axis``) as a mask and a colour pattern: each pattern cell
    becomes a copy of the mask in that cell's colour (background cells stay empty). The mask is the half with
    one foreground colour."""
    a, b = dsl.split_parts(grid, axis, 2)
    bg = background(grid)
    ca = {v for row in a for v in row} - {bg}
    cb = {v for row in b for v in row} - {bg}
    if len(ca) == 1 and len(cb) != 1:
        mask, pattern = a, b
    elif len(cb) == 1 and len(ca) != 1:
        mask, pattern = b, a
    else:
        raise ValueError("no single-colour mask half")
    mh, mw = shape(mask)
    ph, pw = shape(pattern)
    if ph * mh > dsl.MAX_SIDE or pw * mw > dsl.MAX_SIDE:
        raise ValueError("too large")
    return tuple(
        tuple(
            pattern[r // mh][c // mw] if mask[r % mh][c % mw] != bg and pattern[r // mh][c // mw] != bg else bg
            for c in range(pw * mw)
        )
        for r in range(ph * mh)
    )


ObjectStamps = dict[Grid, dict[tuple[int, int], int]]


def _stamp_objects(grid: Grid) -> tuple[Obj, ...]:
    return objects(grid, False, True)


def learn_object_stamps(S: tuple[Pair, ...]) -> ObjectStamps | None:
    """For each object appearance (8-connected, with its colours), what the outputs show on its bounding box
    grown by one cell, consistent over every occurrence; every change must fall inside such a box. None when
    the pairs disagree or nothing changes."""
    if not S or any(shape(i) != shape(o) for i, o in S):
        return None
    stamps: ObjectStamps = {}
    for i, o in S:
        h, w = shape(i)
        covered = [[False] * w for _ in range(h)]
        for obj in _stamp_objects(i):
            top, left, bottom, right = obj.box
            stamp = stamps.setdefault(obj.as_grid(-1), {})
            for r in range(top - 1, bottom + 2):
                for c in range(left - 1, right + 2):
                    if 0 <= r < h and 0 <= c < w:
                        covered[r][c] = True
                        if stamp.setdefault((r - top, c - left), o[r][c]) != o[r][c]:
                            return None
        if any(i[r][c] != o[r][c] and not covered[r][c] for r in range(h) for c in range(w)):
            return None
    if all(i == o for i, o in S):
        return None
    return stamps


def apply_object_stamps(grid: Grid, stamps: ObjectStamps) -> Grid:
    """Paint each object's learned stamp over its grown bounding box (objects in reading order)."""
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    for obj in _stamp_objects(grid):
        stamp = stamps.get(obj.as_grid(-1))
        if stamp is None:
            raise ValueError("unseen object")
        top, left, _, _ = obj.box
        for (dr, dc), colour in stamp.items():
            r, c = top + dr, left + dc
            if 0 <= r < h and 0 <= c < w:
                rows[r][c] = colour
    return tuple(tuple(row) for row in rows)


def stamp_template(grid: Grid, options: tuple[str, bool]) -> Grid:
    """Copy the one multi-cell object (the template) onto every single-pixel marker: its centre on the marker
    (``anchor`` "centre", odd-sized templates) or its cell of the marker's colour on the marker ("colour");
    with ``keep`` the template stays where it was."""
    anchor, keep = options
    bg = background(grid)
    objs = _stamp_objects(grid)
    templates = [o for o in objs if o.size > 1]
    markers = [o for o in objs if o.size == 1]
    if len(templates) != 1 or not markers:
        raise ValueError("needs one template and markers")
    template = templates[0]
    top, left, bottom, right = template.box
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    if not keep:
        for r, c, _ in template.cells:
            rows[r][c] = bg
    for marker in markers:
        mr, mc, colour = marker.cells[0]
        if anchor == "centre":
            if (bottom - top) % 2 or (right - left) % 2:
                raise ValueError("no centre")
            ar, ac = (top + bottom) // 2, (left + right) // 2
        else:
            same = [(r, c) for r, c, v in template.cells if v == colour]
            if len(same) != 1:
                raise ValueError("no single anchor cell")
            ar, ac = same[0]
        for r, c, v in template.cells:
            rr, cc = r - ar + mr, c - ac + mc
            if 0 <= rr < h and 0 <= cc < w:
                rows[rr][cc] = v
    return tuple(tuple(row) for row in rows)


def crop_most_of_colour(grid: Grid, options: tuple[int, bool]) -> Grid:
    """The bounding box of the multi-colour object (4- or 8-connected) with the most cells of ``colour``."""
    colour, diagonal = options
    objs = objects(grid, False, diagonal)
    counts = [o.colours.get(colour, 0) for o in objs]
    if not counts or counts.count(max(counts)) != 1 or max(counts) == 0:
        raise ValueError("no single object with the most of the colour")
    return dsl.crop(grid, *objs[counts.index(max(counts))].box)
