"""Grid partition, composition and counting → layout families (candidate ids ``part_*``).

Partitions: a grid divided into equal cells by full separator lines of one colour (:func:`sep_layout`), or into
blocks of content between all-background rows and columns (:func:`gap_cells`). On top of them:

- key recolouring: a small colour key paints the blocks of a one-colour mask (:func:`key_recolour`);
- cells → pixels: each cell becomes one pixel, by majority colour or by a cell-mask → colour table;
- cell layouts: cells filled from a selected cell's pixels, a marked cell moved to its marker's position, a
  template cell completed in every cell, cells filled by their position in the layout, cells made from geometric
  transforms of one source cell;
- overlays of the corner windows of the output's size;
- counting → layout: colour stripes and lines as sequences, objects as a histogram, pixels in reading order.

Every search is bounded: grids are at most 30×30, option lists are short and fixed, tables are learned
leave-one-out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from batt_tasks.battery import dsl, learn, rules
from batt_tasks.battery.dsl import Grid, background, shape
from batt_tasks.battery.learn import Context, NotLearned
from batt_tasks.battery.objects import objects

if TYPE_CHECKING:
    from batt_tasks.battery.candidates import Registry

CandidateFn = Callable[[Context, Grid], Grid]
Span = tuple[int, int]
Layout = tuple[int, tuple[Span, ...], tuple[Span, ...]]  # separator colour (-1: none), row spans, column spans


# ---------------------------------------------------------------------------------------------
# partitions


def _spans(flags: list[bool]) -> tuple[Span, ...]:
    """Maximal runs ``[start, end)`` of False in ``flags``."""
    out: list[Span] = []
    start = -1
    for k, flag in enumerate([*flags, True]):
        if not flag and start < 0:
            start = k
        elif flag and start >= 0:
            out.append((start, k))
            start = -1
    return tuple(out)


@lru_cache(maxsize=256)
def sep_layout(grid: Grid, equal: bool = True) -> Layout | None:
    """The separator colour and the spans of the cells its full lines cut the grid into, or None.

    A colour qualifies when some whole rows and/or columns are in it (not all of them) and there are at least
    two cells between those lines, all of one shape when ``equal``; a non-background colour is preferred, then
    more lines.
    """
    h, w = shape(grid)
    bg = background(grid)
    best: tuple[tuple[int, int], Layout] | None = None
    for colour in dsl.palette(grid):
        rows = [all(v == colour for v in grid[r]) for r in range(h)]
        cols = [all(grid[r][c] == colour for r in range(h)) for c in range(w)]
        if not any(rows) and not any(cols) or all(rows) or all(cols):
            continue
        rs, cs = _spans(rows), _spans(cols)
        if len(rs) * len(cs) < 2:
            continue
        if equal and (len({b - a for a, b in rs}) != 1 or len({b - a for a, b in cs}) != 1):
            continue
        rank = (int(colour != bg), sum(rows) + sum(cols))
        if best is None or rank > best[0]:
            best = (rank, (colour, rs, cs))
    return None if best is None else best[1]


def layout_cells(grid: Grid, layout: Layout) -> list[list[Grid]]:
    """The cells of ``layout`` as rows of sub-grids."""
    _, rs, cs = layout
    return [[tuple(row[c0:c1] for row in grid[r0:r1]) for c0, c1 in cs] for r0, r1 in rs]


def sep_cells(grid: Grid, equal: bool = True) -> tuple[Layout, list[list[Grid]]]:
    """:func:`sep_layout` and its cells; ValueError when the grid has no such layout."""
    layout = sep_layout(grid, equal)
    if layout is None:
        raise ValueError("no separator layout")
    return layout, layout_cells(grid, layout)


def gap_cells(grid: Grid) -> list[list[Grid]]:
    """The blocks between all-background rows and columns; ValueError with fewer than two blocks."""
    bg = background(grid)
    h, w = shape(grid)
    rs = _spans([all(v == bg for v in grid[r]) for r in range(h)])
    cs = _spans([all(grid[r][c] == bg for r in range(h)) for c in range(w)])
    if len(rs) * len(cs) < 2:
        raise ValueError("one block")
    return [[tuple(row[c0:c1] for row in grid[r0:r1]) for c0, c1 in cs] for r0, r1 in rs]


def paste_cells(grid: Grid, layout: Layout, cells: list[list[Grid]]) -> Grid:
    """``grid`` with each cell of ``layout`` replaced by the given cell contents."""
    _, rs, cs = layout
    out = [list(row) for row in grid]
    for (r0, _), crow in zip(rs, cells, strict=True):
        for (c0, _), cell in zip(cs, crow, strict=True):
            for dr, row in enumerate(cell):
                out[r0 + dr][c0 : c0 + len(row)] = row
    return tuple(tuple(row) for row in out)


def _fg(grid: Grid, bg: int) -> int:
    return sum(v != bg for row in grid for v in row)


def _majority(cell: Grid, bg: int) -> int:
    counts = Counter(v for row in cell for v in row if v != bg)
    return min(counts, key=lambda k: (-counts[k], k)) if counts else bg


# ---------------------------------------------------------------------------------------------
# key recolouring: a colour key paints the blocks of a one-colour mask


def key_recolour(key: Grid, mask: Grid, bg: int, mode: str) -> Grid:
    """The mask's foreground painted block-wise by the key.

    ``up``: the mask is a whole number of times the key's size and keeps its size, each block (i, j) of the mask
    in the key's colour (i, j). ``down``: the mask shrinks to the key's size first (a block is set when most of
    it is foreground), and the key shows where the shrunk mask is set.
    """
    kh, kw = shape(key)
    mh, mw = shape(mask)
    if mh % kh or mw % kw or (mh, mw) == (kh, kw) and mode == "down":
        raise ValueError("mask does not divide into the key's blocks")
    fy, fx = mh // kh, mw // kw
    if mode == "up":
        return tuple(tuple(key[r // fy][c // fx] if mask[r][c] != bg else bg for c in range(mw)) for r in range(mh))
    return tuple(
        tuple(
            key[i][j]
            if 2 * _fg(tuple(row[j * fx : (j + 1) * fx] for row in mask[i * fy : (i + 1) * fy]), bg) > fy * fx
            else bg
            for j in range(kw)
        )
        for i in range(kh)
    )


def _one_colour(grid: Grid, bg: int) -> bool:
    return len({v for row in grid for v in row} - {bg}) == 1


def key_and_mask(grid: Grid, how: str) -> tuple[Grid, Grid, int]:
    """Find ``(key, mask, bg)``: ``cells`` (separator cells: the all-foreground multi-colour cell and the largest
    one-colour cell), ``corners`` (the four corner pixels around a framed inside), ``objects`` (the densest
    multi-colour object and the largest one-colour object)."""
    bg = background(grid)
    if how == "cells":
        _, cells = sep_cells(grid, False)
        flat = [c for row in cells for c in row]
        keys = [c for c in flat if _fg(c, bg) == len(c) * len(c[0]) and not _one_colour(c, bg)]
        masks = sorted((c for c in flat if _one_colour(c, bg)), key=lambda c: -len(c) * len(c[0]))
        if len(keys) != 1 or not masks:
            raise ValueError("no key cell")
        return keys[0], masks[0], bg
    if how == "corners":
        h, w = shape(grid)
        if h < 5 or w < 5:
            raise ValueError("too small")
        frame = {grid[1][c] for c in range(1, w - 1)} | {grid[h - 2][c] for c in range(1, w - 1)}
        frame |= {grid[r][1] for r in range(1, h - 1)} | {grid[r][w - 2] for r in range(1, h - 1)}
        if len(frame) != 1 or frame == {bg}:
            raise ValueError("no frame")
        key = ((grid[0][0], grid[0][w - 1]), (grid[h - 1][0], grid[h - 1][w - 1]))
        return key, dsl.crop(grid, 2, 2, h - 3, w - 3), bg
    objs = objects(grid, False, True)
    multi = [o for o in objs if len(o.colours) > 1 and o.size == o.area]
    mono = sorted((o for o in objs if len(o.colours) == 1), key=lambda o: (-o.size, o.box))
    if len(multi) != 1 or not mono:
        raise ValueError("no key object")
    top, left, bottom, right = mono[0].box
    return multi[0].as_grid(bg), dsl.crop(grid, top, left, bottom, right), bg


KEY_OPTIONS = tuple((how, mode) for how in ("cells", "corners", "objects") for mode in ("up", "down"))


def apply_key(grid: Grid, option: tuple[str, str]) -> Grid:
    """:func:`key_recolour` with the key and mask :func:`key_and_mask` finds."""
    key, mask, bg = key_and_mask(grid, option[0])
    return key_recolour(key, mask, bg, option[1])


# ---------------------------------------------------------------------------------------------
# cells → pixels


def gap_pixels(grid: Grid) -> Grid:
    """Each block between empty rows and columns becomes one pixel of its majority colour."""
    bg = background(grid)
    return tuple(tuple(_majority(c, bg) for c in row) for row in gap_cells(grid))


def _cell_key(cell: Grid, bg: int) -> tuple[tuple[bool, ...], ...]:
    return tuple(tuple(v != bg for v in row) for row in cell)


def _cell_grid(grid: Grid, split: str) -> list[list[Grid]]:
    return sep_cells(grid)[1] if split == "sep" else gap_cells(grid)


def _pixel_layout(pixels: list[list[int]], kind: str) -> Grid:
    """Pixels as a grid (``grid``), or a one-line sequence stretched into rows / columns of its own length."""
    if kind == "grid":
        return tuple(tuple(row) for row in pixels)
    line = [v for row in pixels for v in row]
    if kind == "rows":
        return dsl.check(tuple((v,) * len(line) for v in line))
    return dsl.check(tuple(tuple(line) for _ in line))


PIXEL_KEYS: dict[str, Callable[[Grid, int], object]] = {
    "mask": _cell_key,
    "filled": lambda cell, bg: any(v != bg for row in cell for v in row),
    "colours": lambda cell, bg: tuple(sorted({v for row in cell for v in row} - {bg})),
}


def learn_cell_table(S: tuple[learn.Pair, ...], split: str, key: str = "mask") -> tuple[str, dict[Any, int]] | None:
    """A table cell mask → output pixel colour, and how the pixels are laid out, from every pair."""
    if not S:
        return None
    for kind in ("grid", "rows", "cols"):
        table: dict[Any, int] = {}
        ok = True
        for i, o in S:
            try:
                cells = _cell_grid(i, split)
            except ValueError:
                return None
            bg = background(i)
            keys = [[PIXEL_KEYS[key](c, bg) for c in row] for row in cells]
            n = sum(len(r) for r in keys)
            if kind == "grid":
                if shape(o) != (len(keys), len(keys[0])):
                    ok = False
                    break
                seq = [(k, v) for krow, orow in zip(keys, o, strict=True) for k, v in zip(krow, orow, strict=True)]
            else:
                if shape(o) != (n, n):
                    ok = False
                    break
                flat = [k for row in keys for k in row]
                line = [row[0] for row in o] if kind == "rows" else list(o[0])
                if _pixel_layout([line], kind) != o:
                    ok = False
                    break
                seq = list(zip(flat, line, strict=True))
            for k, v in seq:
                if table.setdefault(k, v) != v:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            return kind, table
    return None


def cell_table_learned(split: str, key: str = "mask") -> CandidateFn:
    """Each cell becomes the pixel a (cell key → colour) table learned leave-one-out gives (key: the cell's mask,
    whether it is filled, or its colours)."""

    def run(ctx: Context, grid: Grid) -> Grid:
        kind, table = ctx.need(("part_cell_table", split, key), lambda: learn_cell_table(ctx.loo(), split, key))
        bg = background(grid)
        try:
            pixels = [[table[PIXEL_KEYS[key](c, bg)] for c in row] for row in _cell_grid(grid, split)]
        except KeyError as exc:
            raise NotLearned("unseen cell") from exc
        return _pixel_layout(pixels, kind)

    return run


# ---------------------------------------------------------------------------------------------
# cell layouts


CELL_PICKS: dict[str, Callable[[list[Grid], int], int]] = {
    "fewest_fg": lambda cells, bg: _unique_index([-_fg(c, bg) for c in cells]),
    "most_fg": lambda cells, bg: _unique_index([_fg(c, bg) for c in cells]),
    "most_colours": lambda cells, bg: _unique_index([len(set(dsl.palette(c)) - {bg}) for c in cells]),
    "fewest_colours": lambda cells, bg: _unique_index([-len(set(dsl.palette(c)) - {bg}) for c in cells]),
    "unique": lambda cells, bg: _lone_index([c for c in cells]),
    "unique_mask": lambda cells, bg: _lone_index([_cell_key(c, bg) for c in cells]),
    "first_nonempty": lambda cells, bg: _first_index([bool(_fg(c, bg)) for c in cells]),
}


def _unique_index(keys: list[int]) -> int:
    best = max(keys)
    if keys.count(best) != 1:
        raise ValueError("tie")
    return keys.index(best)


def _first_index(flags: list[bool]) -> int:
    if not any(flags):
        raise ValueError("all cells empty")
    return flags.index(True)


def _lone_index(keys: list[Any]) -> int:
    counts = Counter(keys)
    lone = [k for k, key in enumerate(keys) if counts[key] == 1]
    if len(lone) != 1:
        raise ValueError("no unique cell")
    return lone[0]


def _cell_bg(grid: Grid, layout: Layout) -> int:
    """The background inside the cells (the grid's background, unless that is the separator colour)."""
    sep = layout[0]
    counts = Counter(v for row in layout_cells(grid, layout) for c in row for r in c for v in r)
    counts.pop(sep, None)
    if 0 in counts:
        return 0
    return min(counts, key=lambda k: (-counts[k], k)) if counts else background(grid)


def cells_from_selected(grid: Grid, pick: str) -> Grid:
    """The cell picked by ``pick`` spread over the layout: cell (i, j) is filled with the picked cell's pixel
    (i, j) (the layout must have as many cells as the picked cell has pixels)."""
    layout, cells = sep_cells(grid)
    flat = [c for row in cells for c in row]
    bg = _cell_bg(grid, layout)
    chosen = flat[CELL_PICKS[pick](flat, bg)]
    if shape(chosen) != (len(cells), len(cells[0])):
        raise ValueError("layout and cell differ in shape")
    ch, cw = shape(cells[0][0])
    filled = [[tuple((chosen[i][j],) * cw for _ in range(ch)) for j in range(len(cells[0]))] for i in range(len(cells))]
    return paste_cells(grid, layout, filled)


def move_marked_cell(grid: Grid, marker: int) -> Grid:
    """The only cell holding ``marker`` moves to the layout position of the marker inside it; the rest is cleared."""
    layout, cells = sep_cells(grid)
    bg = _cell_bg(grid, layout)
    found = [(i, j) for i, row in enumerate(cells) for j, c in enumerate(row) if any(marker in r for r in c)]
    if len(found) != 1:
        raise ValueError("not one marked cell")
    cell = cells[found[0][0]][found[0][1]]
    if shape(cell) != (len(cells), len(cells[0])):
        raise ValueError("layout and cell differ in shape")
    (mr, mc), *rest = [(r, c) for r, row in enumerate(cell) for c, v in enumerate(row) if v == marker]
    if rest:
        raise ValueError("several markers")
    empty = tuple((bg,) * len(cell[0]) for _ in cell)
    out = [[cell if (i, j) == (mr, mc) else empty for j in range(len(cells[0]))] for i in range(len(cells))]
    return paste_cells(grid, layout, out)


def complete_from_template(grid: Grid, option: tuple[str, int]) -> Grid:
    """Every cell gets the template cell's foreground where it is empty, painted in the separator colour
    (``colour`` -1) or a learned colour; the template is picked by ``pick``."""
    pick, colour = option
    layout, cells = sep_cells(grid)
    bg = _cell_bg(grid, layout)
    flat = [c for row in cells for c in row]
    template = flat[CELL_PICKS[pick](flat, bg)]
    paint = layout[0] if colour < 0 else colour
    out = [
        [
            tuple(
                tuple(paint if t != bg and v == bg else v for t, v in zip(trow, crow, strict=True))
                for trow, crow in zip(template, cell, strict=True)
            )
            for cell in row
        ]
        for row in cells
    ]
    return paste_cells(grid, layout, out)


def _role(k: int, n: int) -> int:
    """A cell index's role in its line: 0 first, 1 last, 2 the exact middle, 3 other."""
    if k == 0:
        return 0
    if k == n - 1:
        return 1
    if n % 2 and k == n // 2:
        return 2
    return 3


def learn_role_fill(S: tuple[learn.Pair, ...]) -> dict[tuple[int, int], int] | None:
    """A table (row role, column role) → colour for cells that become solid, the others unchanged."""
    table: dict[tuple[int, int], int] = {}
    if not S:
        return None
    for i, o in S:
        if shape(i) != shape(o):
            return None
        layout = sep_layout(i, False)
        if layout is None:
            return None
        ins, outs = layout_cells(i, layout), layout_cells(o, layout)
        nr, nc = len(ins), len(ins[0])
        for a in range(nr):
            for b in range(nc):
                ci, co = ins[a][b], outs[a][b]
                colours = {v for row in co for v in row}
                key = (_role(a, nr), _role(b, nc))
                value = -1 if co == ci else (colours.pop() if len(colours) == 1 else None)
                if value is None or table.setdefault(key, value) != value:
                    return None
    if all(v < 0 for v in table.values()):
        return None
    return table


def apply_role_fill(grid: Grid, table: dict[tuple[int, int], int]) -> Grid:
    """Fill cells by their (row role, column role) as a learned table says; a role pair the table has not seen
    keeps its cell when most seen role pairs do."""
    layout, cells = sep_cells(grid, False)
    nr, nc = len(cells), len(cells[0])
    keep = 2 * sum(v < 0 for v in table.values()) > len(table)
    out = []
    for a in range(nr):
        row = []
        for b in range(nc):
            key = (_role(a, nr), _role(b, nc))
            if key not in table and not keep:
                raise NotLearned("unseen cell role")
            value = table.get(key, -1)
            cell = cells[a][b]
            row.append(cell if value < 0 else tuple((value,) * len(cell[0]) for _ in cell))
        out.append(row)
    return paste_cells(grid, layout, out)


def learn_cell_transforms(S: tuple[learn.Pair, ...]) -> tuple[tuple[str, ...], ...] | None:
    """For outputs keeping the input's separator layout, which geometric transform of the first cell fills each
    output cell, agreed by every pair (the layout's cell counts must agree too)."""
    names: list[list[str]] | None = None
    for i, o in S:
        if shape(i) != shape(o):
            return None
        layout = sep_layout(i)
        if layout is None:
            return None
        source = layout_cells(i, layout)[0][0]
        outs = layout_cells(o, layout)
        found = []
        for row in outs:
            frow = []
            for cell in row:
                frow.append(
                    [n for n, fn in dsl.GEOMETRIC.items() if shape(fn(source)) == shape(cell) and fn(source) == cell]
                )
            found.append(frow)
        if names is None:
            names = [[",".join(x) for x in row] for row in found]  # candidates so far, as strings
            continue
        if (len(names), len(names[0])) != (len(found), len(found[0])):
            return None
        names = [
            [",".join(n for n in prev.split(",") if n in now) for prev, now in zip(prow, frow, strict=True)]
            for prow, frow in zip(names, found, strict=True)
        ]
    if names is None or any(not n for row in names for n in row):
        return None
    result = tuple(tuple(n.split(",")[0] for n in row) for row in names)
    if all(n == "identity" for row in result for n in row):
        return None
    return result


def apply_cell_transforms(grid: Grid, names: tuple[tuple[str, ...], ...]) -> Grid:
    """Fill the layout's cells with the learned transforms of the first cell."""
    layout, cells = sep_cells(grid)
    if (len(cells), len(cells[0])) != (len(names), len(names[0])):
        raise ValueError("layout differs")
    source = cells[0][0]
    out = [[dsl.GEOMETRIC[n](source) for n in row] for row in names]
    if any(shape(c) != shape(source) for row in out for c in row):
        raise ValueError("non-square transform")
    return paste_cells(grid, layout, out)


def mirror_cell_in_separator_colour(grid: Grid) -> Grid:
    """The only non-empty cell, its foreground in the separator colour, mirrored into a 2×2 block."""
    layout, cells = sep_cells(grid)
    bg = _cell_bg(grid, layout)
    full = [c for row in cells for c in row if _fg(c, bg)]
    if len(full) != 1:
        raise ValueError("not one shape")
    cell = tuple(tuple(layout[0] if v != bg else bg for v in row) for row in full[0])
    top = dsl.hconcat(cell, dsl.flip_h(cell))
    return dsl.vconcat(top, dsl.flip_v(top))


# ---------------------------------------------------------------------------------------------
# windows


def overlay_corner_windows(grid: Grid, size: tuple[int, int]) -> Grid:
    """The four corner windows of ``size`` overlaid (foreground wins); the windows must cover the grid but for
    at most one middle row or column."""
    h, w = shape(grid)
    oh, ow = size
    if oh > h or ow > w or 2 * oh + 1 < h or 2 * ow + 1 < w or (oh, ow) == (h, w):
        raise ValueError("windows do not tile the grid")
    bg = background(grid)
    out = [[bg] * ow for _ in range(oh)]
    for top in (0, h - oh):
        for left in (0, w - ow):
            for r in range(oh):
                for c in range(ow):
                    v = grid[top + r][left + c]
                    if v != bg:
                        out[r][c] = v
    return tuple(tuple(row) for row in out)


def overlay_windows_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`overlay_corner_windows` with the output shape every train pair has, when it explains them all."""
    size = ctx.need("out_shape", lambda: learn.learn_output_shape(ctx.S))
    ctx.need("part_windows", lambda: learn.fit(ctx.S, (size,), overlay_corner_windows))
    return overlay_corner_windows(grid, size)


# ---------------------------------------------------------------------------------------------
# counting → layout


def stripe_sequence(grid: Grid) -> Grid:
    """The colours of a grid made of stripes, in order: a row when the stripes stand side by side (the top row
    shows more colours than the left column), else a column; colours ordered by their mean position."""
    top = len(set(grid[0]))
    left = len({row[0] for row in grid})
    if top == left:
        raise ValueError("no stripe direction")
    axis = "h" if top > left else "v"
    where: dict[int, list[int]] = {}
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            where.setdefault(v, []).append(c if axis == "h" else r)
    order = sorted(where, key=lambda k: (sum(where[k]) / len(where[k]), k))
    if len(order) < 2:
        raise ValueError("one colour")
    return (tuple(order),) if axis == "h" else tuple((k,) for k in order)


def line_colours_square(grid: Grid) -> Grid:
    """The colours of the straight lines (one colour all on one row, or one column, at least half the grid long),
    in order, as an N×N square of rows (horizontal lines) or columns (vertical lines)."""
    bg = background(grid)
    h, w = shape(grid)
    where: dict[int, list[tuple[int, int]]] = {}
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            if v != bg:
                where.setdefault(v, []).append((r, c))
    horizontal, vertical = [], []
    for colour, cells in sorted(where.items()):
        rows = {r for r, _ in cells}
        cols = {c for _, c in cells}
        if len(rows) == 1 and 2 * len(cells) >= w and len(cols) == len(cells):
            horizontal.append((cells[0][0], colour))
        elif len(cols) == 1 and 2 * len(cells) >= h and len(rows) == len(cells):
            vertical.append((cells[0][1], colour))
    if bool(horizontal) == bool(vertical):
        raise ValueError("no single line direction")
    lines = [c for _, c in sorted(horizontal or vertical)]
    n = len(lines)
    if n < 2:
        raise ValueError("one line")
    if horizontal:
        return tuple((c,) * n for c in lines)
    return tuple(tuple(lines) for _ in range(n))


def largest_objects_histogram(grid: Grid) -> Grid:
    """The colours of the largest objects (all of the largest size), left to right, as columns that tall."""
    objs = objects(grid, True, True)
    if not objs:
        raise ValueError("no objects")
    best = max(o.size for o in objs)
    chosen = sorted((o for o in objs if o.size == best), key=lambda o: (o.box[1], o.box[0]))
    if len({o.box[1] for o in chosen}) != len(chosen):
        raise ValueError("objects share a column")
    return dsl.check(tuple(tuple(o.colour for o in chosen) for _ in range(best)))


def pixels_in_order(grid: Grid, option: tuple[str, bool, int, int]) -> Grid:
    """The foreground pixels' colours ordered by column (``col``) or row (``row``), written into an ``h``×``w``
    grid row by row (``snake``: every other row right to left), the rest background."""
    order, snake, h, w = option
    bg = background(grid)
    found = [(c, r, v) if order == "col" else (r, c, v) for r, row in enumerate(grid) for c, v in enumerate(row)]
    colours = [v for _, _, v in sorted(x for x in found if x[2] != bg)]
    if not colours or len(colours) > h * w:
        raise ValueError("pixels do not fit")
    cells = colours + [0] * (h * w - len(colours))
    rows = [cells[k * w : (k + 1) * w] for k in range(h)]
    if snake:
        rows = [row[::-1] if k % 2 else row for k, row in enumerate(rows)]
    return tuple(tuple(row) for row in rows)


def pixels_in_order_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`pixels_in_order` with the order, snake and fixed output shape the train pairs agree on."""

    def options() -> list[tuple[str, bool, int, int]]:
        size = learn.learn_output_shape(ctx.S)
        if size is None:
            return []
        return [(order, snake, *size) for order in ("col", "row") for snake in (False, True)]

    option = ctx.need("part_pixel_order", lambda: learn.fit(ctx.S, options(), pixels_in_order))
    return pixels_in_order(grid, option)


def rescale_majority(grid: Grid, factors: tuple[int, int]) -> Grid:
    """Shrink by ``factors[0]`` (each block's majority foreground colour), then grow by ``factors[1]``."""
    down, up = factors
    h, w = shape(grid)
    if h % down or w % down:
        raise ValueError("does not divide")
    bg = background(grid)
    small = tuple(
        tuple(_majority(tuple(row[c : c + down] for row in grid[r : r + down]), bg) for c in range(0, w, down))
        for r in range(0, h, down)
    )
    return dsl.check(dsl.upscale(small, up))


def rescale_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`rescale_majority` with the factors (down ≥ 2, up ≥ 2) every train pair agrees on."""

    def options() -> list[tuple[int, int]]:
        return [(d, u) for d in (2, 3, 4) for u in (2, 3, 4, 5) if d != u]

    factors = ctx.need("part_rescale", lambda: learn.fit(ctx.S, options(), rescale_majority))
    return rescale_majority(grid, factors)


def noisiest_region_colour(grid: Grid) -> Grid:
    """1×1: the colour of the region holding the most cells of the rarest colour (noise in solid regions)."""
    counts = dsl.colour_counts(grid)
    if len(counts) < 3:
        raise ValueError("no noise")
    noise = min(counts, key=lambda k: (counts[k], k))
    h, w = shape(grid)
    hits: Counter[int] = Counter()
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            if v != noise:
                continue
            near = Counter(
                grid[r + dr][c + dc]
                for dr, dc in dsl.NEIGHBOURS_4
                if 0 <= r + dr < h and 0 <= c + dc < w and grid[r + dr][c + dc] != noise
            )
            if near:
                hits[min(near, key=lambda k: (-near[k], k))] += 1
    ranked = hits.most_common()
    if not ranked or len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        raise ValueError("tie")
    return ((ranked[0][0],),)


def copies_by_count(grid: Grid) -> Grid:
    """A square of (background cells)² blocks of the grid's size; the first (foreground cells) blocks in reading
    order are copies of the grid, the rest background."""
    bg = background(grid)
    h, w = shape(grid)
    fg = _fg(grid, bg)
    side = h * w - fg
    if not fg or side < 1 or side * max(h, w) > dsl.MAX_SIDE or fg > side * side:
        raise ValueError("does not fit")
    empty = tuple((bg,) * w for _ in range(h))
    blocks = [grid if k < fg else empty for k in range(side * side)]
    return tuple(
        tuple(v for b in blocks[br * side : (br + 1) * side] for v in b[r]) for br in range(side) for r in range(h)
    )


def staircase_rows(grid: Grid) -> Grid:
    """A one-row grid with a run of N cells from the left grows into a staircase: row k has N + k cells, as many
    rows as half the width."""
    if len(grid) != 1:
        raise ValueError("not one row")
    row = grid[0]
    bg = background(grid) if len(set(row)) > 1 else 0
    colours = {v for v in row if v != bg}
    n = sum(v != bg for v in row)
    if len(colours) != 1 or row[:n] != (row[0],) * n or row[0] == bg:
        raise ValueError("not a run from the left")
    w = len(row)
    colour = row[0]
    return dsl.check(tuple(tuple(colour if c < n + k else bg for c in range(w)) for k in range(w // 2)))


def staircase_around(grid: Grid, colours: tuple[int, int]) -> Grid:
    """One horizontal run from the left edge of length N: rows above get runs N+1, N+2... in ``colours[0]``,
    rows below runs N-1, N-2... in ``colours[1]``."""
    bg = background(grid)
    runs = [(r, row) for r, row in enumerate(grid) if any(v != bg for v in row)]
    if len(runs) != 1:
        raise ValueError("not one run")
    r0, row = runs[0]
    n = sum(v != bg for v in row)
    if row[:n] != (row[0],) * n:
        raise ValueError("not a run from the left")
    w = len(row)
    above, below = colours
    out = [list(r) for r in grid]
    for r in range(len(grid)):
        length = n + (r0 - r)
        colour = above if r < r0 else below
        if r != r0:
            for c in range(min(max(length, 0), w)):
                out[r][c] = colour
    return tuple(tuple(r) for r in out)


def diagonals_by_colours(grid: Grid) -> Grid:
    """One row of pixels becomes an N×N grid, N = width × number of colours, each pixel rising diagonally to the
    right from the bottom row."""
    if len(grid) != 1:
        raise ValueError("not one row")
    bg = 0
    row = grid[0]
    k = len(set(row) - {bg})
    n = len(row) * k
    if not k or n > dsl.MAX_SIDE:
        raise ValueError("too large")
    out = [[bg] * n for _ in range(n)]
    for c0, v in enumerate(row):
        if v == bg:
            continue
        for step in range(n):
            if c0 + step < n:
                out[n - 1 - step][c0 + step] = v
    return tuple(tuple(r) for r in out)


def scale_into_frame(grid: Grid) -> Grid:
    """The largest rectangular frame (a one-colour box outline) with the other foreground scaled up to fill its
    inside."""
    bg = background(grid)
    frames = [
        o
        for o in objects(grid, True, False)
        if o.height >= 3 and o.width >= 3 and o.size == 2 * (o.height + o.width) - 4
    ]
    if len(frames) != 1:
        raise ValueError("not one frame")
    frame = frames[0]
    top, left, bottom, right = frame.box
    rest = tuple(
        tuple(v if not (top <= r <= bottom and left <= c <= right) else bg for c, v in enumerate(row))
        for r, row in enumerate(grid)
    )
    shape_ = dsl.crop_to_content(rest, bg)
    ih, iw = frame.height - 2, frame.width - 2
    sh, sw = shape(shape_)
    if ih % sh or iw % sw:
        raise ValueError("does not scale into the frame")
    inner = dsl.upscale(shape_, ih // sh, iw // sw)
    box = dsl.crop(grid, top, left, bottom, right)
    return tuple(box[0:1]) + tuple((row[0], *inner[k], row[-1]) for k, row in enumerate(box[1:-1])) + tuple(box[-1:])


def keep_middle_line(grid: Grid, axis: str) -> Grid:
    """Only the middle column (``v``) or row (``h``) of a grid with an odd width (height) is kept."""
    h, w = shape(grid)
    bg = background(grid)
    if axis == "v":
        if w % 2 == 0 or w < 3:
            raise ValueError("no middle column")
        return tuple(tuple(v if c == w // 2 else bg for c, v in enumerate(row)) for row in grid)
    if h % 2 == 0 or h < 3:
        raise ValueError("no middle row")
    return tuple(row if r == h // 2 else (bg,) * w for r, row in enumerate(grid))


def crop_colour_padded(grid: Grid, option: tuple[int, int, int]) -> Grid:
    """The bounding box of one colour grown by ``dy`` rows and ``dx`` columns on each side."""
    colour, dy, dx = option
    box = dsl.bbox(tuple(tuple(int(v == colour) for v in row) for row in grid), 0)
    if box is None:
        raise ValueError("colour absent")
    top, left, bottom, right = box
    h, w = shape(grid)
    if top - dy < 0 or left - dx < 0 or bottom + dy >= h or right + dx >= w:
        raise ValueError("outside the grid")
    return dsl.crop(grid, top - dy, left - dx, bottom + dy, right + dx)


def _padded_options(ctx: Context) -> list[tuple[int, int, int]]:
    if any(shape(o)[0] > shape(i)[0] or shape(o)[1] > shape(i)[1] or shape(o) == shape(i) for i, o in ctx.S):
        return []
    colours = sorted({v for i, _ in ctx.S for row in i for v in row})
    return [(c, dy, dx) for dy in range(3) for dx in range(3) if dy or dx for c in colours]


def fractal_of_shrunk_content(grid: Grid, factor: int) -> Grid:
    """The content's bounding box shrunk by ``factor`` (blocks of one colour), then expanded self-similarly:
    each foreground cell of the small pattern becomes a copy of it."""
    content = dsl.crop_to_content(grid)
    bg = background(grid)
    h, w = shape(content)
    if h % factor or w % factor:
        raise ValueError("does not divide")
    small = tuple(
        tuple(_majority(tuple(row[c : c + factor] for row in content[r : r + factor]), bg) for c in range(0, w, factor))
        for r in range(0, h, factor)
    )
    sh, sw = shape(small)
    if sh * sh > dsl.MAX_SIDE or sw * sw > dsl.MAX_SIDE:
        raise ValueError("too large")
    empty = tuple((bg,) * sw for _ in range(sh))
    blocks = [[small if v != bg else empty for v in row] for row in small]
    return tuple(tuple(v for b in brow for v in b[r]) for brow in blocks for r in range(sh))


def shrink_object_in_noise_colour(grid: Grid) -> Grid:
    """The most common foreground colour's bounding box, made of square blocks, shrunk to one cell per block and
    painted in the other foreground colour (the scattered noise)."""
    bg = background(grid)
    counts = dsl.colour_counts(grid)
    counts.pop(bg, None)
    if len(counts) != 2:
        raise ValueError("not two foreground colours")
    main = min(counts, key=lambda k: (-counts[k], k))
    box = dsl.crop_to_content(tuple(tuple(int(v == main) for v in row) for row in grid), 0)
    others = set(counts) - {main}
    if len(others) != 1:
        raise ValueError("not one noise colour")
    paint = others.pop()
    h, w = shape(box)
    # the block size: the shortest run of equal cells along rows and columns
    runs = []
    for line in (*box, *dsl.transpose(box)):
        start = 0
        for k in range(1, len(line) + 1):
            if k == len(line) or line[k] != line[start]:
                runs.append(k - start)
                start = k
    f = min(runs)
    if f < 2 or h % f or w % f:
        raise ValueError("no block size")
    small = tuple(tuple(box[r][c] for c in range(0, w, f)) for r in range(0, h, f))
    if dsl.upscale(small, f) != box:
        raise ValueError("not made of blocks")
    return tuple(tuple(paint if v else bg for v in row) for row in small)


def overlay_on_anchor(grid: Grid, option: tuple[int, int, int]) -> Grid:
    """Every object (8-wise, any colours) holding one cell of the anchor colour, cut to an ``h``×``w`` window
    centred on that cell, overlaid into one ``h``×``w`` grid."""
    anchor, oh, ow = option
    if oh % 2 == 0 or ow % 2 == 0:
        raise ValueError("even window")
    bg = background(grid)
    h, w = shape(grid)
    points = [(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v == anchor]
    if not 2 <= len(points) <= 12:
        raise ValueError("anchors")
    out = [[bg] * ow for _ in range(oh)]
    for r, c in points:
        for dr in range(oh):
            for dc in range(ow):
                rr, cc = r - oh // 2 + dr, c - ow // 2 + dc
                if 0 <= rr < h and 0 <= cc < w and grid[rr][cc] != bg:
                    if out[dr][dc] not in (bg, grid[rr][cc]):
                        raise ValueError("windows clash")
                    out[dr][dc] = grid[rr][cc]
    return tuple(tuple(row) for row in out)


def _anchor_options(ctx: Context) -> list[tuple[int, int, int]]:
    size = learn.learn_output_shape(ctx.S)
    if size is None:
        return []
    return [(c, *size) for c in range(10)]


def assemble_corners(grid: Grid) -> Grid:
    """Four same-sized pieces, each missing one corner of its box, put together: a piece goes to the quadrant
    opposite its missing corner (a piece missing its bottom-right corner is the top-left quadrant)."""
    bg = background(grid)
    objs = objects(grid, True, True)
    if len(objs) != 4 or len({(o.height, o.width) for o in objs}) != 1:
        raise ValueError("not four equal pieces")
    h, w = objs[0].height, objs[0].width
    if 2 * h > dsl.MAX_SIDE or 2 * w > dsl.MAX_SIDE:
        raise ValueError("too large")
    out = [[bg] * (2 * w) for _ in range(2 * h)]
    used = set()
    for obj in objs:
        piece = obj.as_grid(bg)
        missing = [(a, b) for a in (0, 1) for b in (0, 1) if piece[a * (h - 1)][b * (w - 1)] == bg]
        if len(missing) != 1:
            raise ValueError("not one corner missing")
        qa, qb = 1 - missing[0][0], 1 - missing[0][1]
        if (qa, qb) in used:
            raise ValueError("two pieces for one quadrant")
        used.add((qa, qb))
        for r, row in enumerate(piece):
            out[qa * h + r][qb * w : (qb + 1) * w] = row
    return tuple(tuple(row) for row in out)


def bounce(grid: Grid, option: tuple[str, int]) -> Grid:
    """The grid reflected back and forth along ``axis`` without repeating its edge rows (columns): ``k``×(n-1)+1
    rows (columns) in all."""
    axis, k = option
    g = grid if axis == "v" else dsl.transpose(grid)
    n = len(g)
    if n < 2 or k * (n - 1) + 1 > dsl.MAX_SIDE:
        raise ValueError("too large")
    period = 2 * (n - 1)
    rows = tuple(g[min(t % period, period - t % period)] for t in range(k * (n - 1) + 1))
    return rows if axis == "v" else dsl.transpose(rows)


def nested_corners_extend(grid: Grid, size: tuple[int, int]) -> Grid:
    """A square pattern (the grid, else its content) whose colour depends only on max(row, column) (nested L
    shapes from the top-left), continued periodically to ``size``."""
    for pattern in (grid, dsl.crop_to_content(grid)):
        n = len(pattern)
        if shape(pattern) != (n, n) or n < 2:
            continue
        seq = [pattern[k][k] for k in range(n)]
        if all(pattern[r][c] == seq[max(r, c)] for r in range(n) for c in range(n)):
            break
    else:
        raise ValueError("not nested corners")
    oh, ow = size
    return tuple(tuple(seq[max(r, c) % n] for c in range(ow)) for r in range(oh))


def nested_corners_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`nested_corners_extend` to the output shape the train pairs' shape rule gives."""
    rule = ctx.need("shape_rule", lambda: learn.learn_shape_rule(ctx.S))
    return nested_corners_extend(grid, learn.apply_shape_rule(rule, grid))


def kronecker_halves_any(grid: Grid) -> Grid:
    """:func:`rules.kronecker_halves` along whichever axis splits off a one-colour mask half (side by side
    first, then stacked)."""
    try:
        return rules.kronecker_halves(grid, "h")
    except ValueError:
        return rules.kronecker_halves(grid, "v")


# ---------------------------------------------------------------------------------------------
# many parts: selection, boolean combination, overlay by colour priority

PART_SPLITS = ("sep", "sep_unequal", "gaps", "h2", "v2", "h3", "v3", "h4", "v4")


def parts_of(grid: Grid, how: str) -> list[Grid]:
    """The grid's parts: separator cells (equal or not), blocks between empty lines, or ``n`` equal slices along
    an axis (``h3``: three side by side); at least two parts, all one shape unless ``sep_unequal``/``gaps``."""
    if how in ("sep", "sep_unequal"):
        parts = [c for row in sep_cells(grid, how == "sep")[1] for c in row]
    elif how == "gaps":
        parts = [c for row in gap_cells(grid) for c in row]
    else:
        parts = list(dsl.split_parts(grid, how[0], int(how[1])))
    if len(parts) < 2:
        raise ValueError("one part")
    return parts


def _parts_bg(grid: Grid, how: str) -> int:
    """The background inside the parts (separator cells may have a background other than the grid's)."""
    layout = sep_layout(grid, how == "sep") if how in ("sep", "sep_unequal") else None
    return background(grid) if layout is None else _cell_bg(grid, layout)


def _same_shape_parts(grid: Grid, how: str) -> list[Grid]:
    parts = parts_of(grid, how)
    if len({shape(p) for p in parts}) != 1:
        raise ValueError("parts differ in shape")
    return parts


def _splits_to_output(S: tuple[learn.Pair, ...]) -> list[str]:
    """The splits whose parts have the output's shape in every pair."""
    found = []
    for how in PART_SPLITS:
        try:
            if all(shape(_same_shape_parts(i, how)[0]) == shape(o) for i, o in S):
                found.append(how)
        except ValueError:
            continue
    return found


PART_OPS: dict[str, Callable[[int, int], bool]] = {  # (set parts, all parts) -> cell is set
    "and": lambda k, n: k == n,
    "or": lambda k, n: k > 0,
    "odd": lambda k, n: k % 2 == 1,
    "one": lambda k, n: k == 1,
    "none": lambda k, n: k == 0,
    "not_all": lambda k, n: 0 < k < n,
}


def combine_parts(grid: Grid, option: tuple[str, str, int]) -> Grid:
    """The parts' foreground masks combined cell-wise by ``op`` (on how many parts are set there), painted in
    ``colour`` on the background."""
    how, op, colour = option
    parts = _same_shape_parts(grid, how)
    bg = _parts_bg(grid, how)
    n = len(parts)
    fn = PART_OPS[op]
    h, w = shape(parts[0])
    return tuple(tuple(colour if fn(sum(p[r][c] != bg for p in parts), n) else bg for c in range(w)) for r in range(h))


def _combine_options(ctx: Context) -> list[tuple[str, str, int]]:
    splits = _splits_to_output(ctx.S)
    colours = learn.output_colours(ctx.S)
    return [(how, op, c) for how in splits for op in PART_OPS for c in colours]


def learn_priority(S: tuple[learn.Pair, ...], how: str) -> tuple[int, ...] | None:
    """A colour order (strongest first) such that each output cell shows the strongest colour among the parts'
    cells there (background where no part has a colour), consistent over every pair; None when there is none."""
    beats: set[tuple[int, int]] = set()
    colours: set[int] = set()
    for i, o in S:
        try:
            parts = _same_shape_parts(i, how)
        except ValueError:
            return None
        if shape(parts[0]) != shape(o):
            return None
        bg = _parts_bg(i, how)
        for r, row in enumerate(o):
            for c, v in enumerate(row):
                present = {p[r][c] for p in parts} - {bg}
                if not present:
                    if v != bg:
                        return None
                    continue
                if v not in present:
                    return None
                colours |= present
                beats.update((v, x) for x in present if x != v)
    if not beats:
        return None
    # a topological order of the precedences (smaller colour first among the free ones); None on a cycle
    order: list[int] = []
    left = set(colours)
    while left:
        free = sorted(k for k in left if not any((x, k) in beats for x in left if x != k))
        if not free:
            return None
        order.append(free[0])
        left.remove(free[0])
    return tuple(order)


def overlay_by_priority(grid: Grid, how: str, order: tuple[int, ...]) -> Grid:
    """The parts overlaid, each cell showing the strongest of the parts' colours there (``order``)."""
    parts = _same_shape_parts(grid, how)
    bg = _parts_bg(grid, how)
    rank = {k: n for n, k in enumerate(order)}
    h, w = shape(parts[0])
    out = []
    for r in range(h):
        row = []
        for c in range(w):
            present = {p[r][c] for p in parts} - {bg}
            if any(x not in rank for x in present):
                raise NotLearned("unranked colour")
            row.append(min(present, key=lambda x: rank[x]) if present else bg)
        out.append(tuple(row))
    return tuple(out)


def overlay_priority_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`overlay_by_priority` with the first split whose colour order explains every train pair."""

    def learn_choice() -> tuple[str, tuple[int, ...]] | None:
        for how in _splits_to_output(ctx.S):
            order = learn_priority(ctx.S, how)
            if order is not None:
                return how, order
        return None

    how, order = ctx.need("part_priority", learn_choice)
    return overlay_by_priority(grid, how, order)


PART_PICKS: dict[str, Callable[[list[Grid], int], int]] = {
    **CELL_PICKS,
    "unique_colours": lambda parts, bg: _lone_index([tuple(sorted(set(dsl.palette(p)) - {bg})) for p in parts]),
    "unique_fg_count": lambda parts, bg: _lone_index([_fg(p, bg) for p in parts]),
    "only_symmetric": lambda parts, bg: _lone_index([p == dsl.flip_h(p) or p == dsl.flip_v(p) for p in parts]),
}


def select_part(grid: Grid, option: tuple[str, str]) -> Grid:
    """The part (of split ``how``) that ``pick`` chooses."""
    how, pick = option
    parts = parts_of(grid, how)
    return parts[PART_PICKS[pick](parts, _parts_bg(grid, how))]


def _select_options(ctx: Context) -> list[tuple[str, str]]:
    if any(shape(o)[0] >= shape(i)[0] and shape(o)[1] >= shape(i)[1] for i, o in ctx.S):
        return []
    return [(how, pick) for how in PART_SPLITS for pick in PART_PICKS]


def _cell_map(pairs: list[tuple[Grid, Grid]]) -> dict[int, int] | None:
    """The colour map taking each grid to its same-shaped partner cell by cell, or None."""
    mapping: dict[int, int] = {}
    for a, b in pairs:
        for ra, rb in zip(a, b, strict=True):
            for x, y in zip(ra, rb, strict=True):
                if mapping.setdefault(x, y) != y:
                    return None
    return mapping


def learn_select_then(S: tuple[learn.Pair, ...]) -> tuple[str, str, str, tuple[tuple[int, int], ...]] | None:
    """A part selection followed by a geometric transform and/or a colour map, agreed by every pair: the first
    (split, pick) whose picked parts map onto the outputs by one transform and one consistent colour map; None
    when a plain selection explains the pairs. Returns ``(how, pick, transform, colour map items)``."""
    if not S or any(shape(o)[0] * shape(o)[1] >= shape(i)[0] * shape(i)[1] for i, o in S):
        return None
    selections = []
    for how in PART_SPLITS:
        for pick in PART_PICKS:
            try:
                picked = [select_part(i, (how, pick)) for i, _ in S]
            except ValueError:
                continue
            if all(p == o for p, (_, o) in zip(picked, S, strict=True)):
                return None  # a plain selection explains the pairs: part_select_part_learned's
            selections.append((how, pick, picked))
    for how, pick, picked in selections:
        for name, fn in dsl.GEOMETRIC.items():
            moved = [fn(p) for p in picked]
            if any(shape(m) != shape(o) for m, (_, o) in zip(moved, S, strict=True)):
                continue
            mapping = _cell_map([(m, o) for m, (_, o) in zip(moved, S, strict=True)])
            if mapping is not None:
                return how, pick, name, tuple(sorted(mapping.items()))
    return None


def apply_select_then(grid: Grid, learned: tuple[str, str, str, tuple[tuple[int, int], ...]]) -> Grid:
    """Select, transform and recolour as learned; a colour the map has not seen keeps its value."""
    how, pick, name, items = learned
    mapping = dict(items)
    moved = dsl.GEOMETRIC[name](select_part(grid, (how, pick)))
    return tuple(tuple(mapping.get(v, v) for v in row) for row in moved)


# ---------------------------------------------------------------------------------------------
# cells rewritten by a learned per-cell rule

CELL_KEYS: dict[str, Callable[[Grid, list[Grid], int], object]] = {
    "colours": lambda cell, cells, bg: tuple(sorted(set(dsl.palette(cell)) - {bg})),
    "fg_rank": lambda cell, cells, bg: sorted({_fg(c, bg) for c in cells}, reverse=True).index(_fg(cell, bg)),
    "fg_rank_asc": lambda cell, cells, bg: sorted({_fg(c, bg) for c in cells}).index(_fg(cell, bg)),
    "mask": lambda cell, cells, bg: _cell_key(cell, bg),
}

#: what happens to a cell: ("keep",), ("clear",), ("solid", colour), ("solid_majority",), ("recolour", colour)
Action = tuple[Any, ...]


def _cell_action(before: Grid, after: Grid, bg: int) -> list[Action]:
    """Every action that turns ``before`` into ``after`` (most specific first)."""
    found: list[Action] = []
    if after == before:
        found.append(("keep",))
    colours = {v for row in after for v in row}
    if colours == {bg}:
        found.append(("clear",))
    if len(colours) == 1:
        found.append(("solid", next(iter(colours))))
        if next(iter(colours)) == _majority(before, bg) != bg:
            found.append(("solid_majority",))
    fg_after = {v for row in after for v in row} - {bg}
    if len(fg_after) == 1 and _cell_key(before, bg) == _cell_key(after, bg):
        found.append(("recolour", next(iter(fg_after))))
    return found


def _do_action(cell: Grid, action: Action, bg: int) -> Grid:
    kind = action[0]
    if kind == "keep":
        return cell
    if kind == "clear":
        return tuple((bg,) * len(cell[0]) for _ in cell)
    if kind in ("solid", "solid_majority"):
        colour = action[1] if kind == "solid" else _majority(cell, bg)
        return tuple((colour,) * len(cell[0]) for _ in cell)
    return tuple(tuple(action[1] if v != bg else bg for v in row) for row in cell)


def learn_cell_rule(S: tuple[learn.Pair, ...], name: str) -> dict[object, Action] | None:
    """A table (cell key ``name`` → action) over the separator cells, the same layout in input and output."""
    if not S:
        return None
    options: dict[object, list[Action]] = {}
    for i, o in S:
        if shape(i) != shape(o):
            return None
        layout = sep_layout(i, False)
        if layout is None:
            return None
        bg = _cell_bg(i, layout)
        ins = [c for row in layout_cells(i, layout) for c in row]
        outs = [c for row in layout_cells(o, layout) for c in row]
        for ci, co in zip(ins, outs, strict=True):
            key = CELL_KEYS[name](ci, ins, bg)
            acts = _cell_action(ci, co, bg)
            prev = options.get(key)
            options[key] = acts if prev is None else [a for a in prev if a in acts]
            if not options[key]:
                return None
    table = {k: v[0] for k, v in options.items()}
    if all(a == ("keep",) for a in table.values()):
        return None
    return table


def apply_cell_rule(grid: Grid, name: str, table: dict[object, Action]) -> Grid:
    """Rewrite every separator cell by the learned action for its key."""
    layout, cells = sep_cells(grid, False)
    bg = _cell_bg(grid, layout)
    flat = [c for row in cells for c in row]
    out = []
    for row in cells:
        new = []
        for cell in row:
            key = CELL_KEYS[name](cell, flat, bg)
            if key not in table:
                raise NotLearned("unseen cell key")
            new.append(_do_action(cell, table[key], bg))
        out.append(new)
    return paste_cells(grid, layout, out)


def cell_rule_learned(name: str) -> CandidateFn:
    """Each separator cell kept, cleared, filled or recoloured as a (cell key → action) table learned
    leave-one-out says."""

    def run(ctx: Context, grid: Grid) -> Grid:
        table = ctx.need(("part_cell_rule", name), lambda: learn_cell_rule(ctx.loo(), name))
        return apply_cell_rule(grid, name, table)

    return run


def clean_stripes(grid: Grid) -> Grid:
    """Noisy stripes made clean: every row (or every column, whichever changes fewer cells) takes its majority
    colour."""

    def by_rows(g: Grid) -> Grid:
        out = []
        for row in g:
            counts = Counter(row)
            top = min(counts, key=lambda k: (-counts[k], k))
            out.append((top,) * len(row))
        return tuple(out)

    rows = by_rows(grid)
    cols = dsl.transpose(by_rows(dsl.transpose(grid)))
    changed = [
        sum(a != b for ra, rb in zip(grid, out, strict=True) for a, b in zip(ra, rb, strict=True))
        for out in (rows, cols)
    ]
    if changed[0] == changed[1]:
        raise ValueError("no stripe direction")
    return rows if changed[0] < changed[1] else cols


def reverse_rings(grid: Grid) -> Grid:
    """Concentric one-colour rings (by distance to the border) with their colours in reverse order."""
    h, w = shape(grid)
    depth = [[min(r, c, h - 1 - r, w - 1 - c) for c in range(w)] for r in range(h)]
    n = max(max(row) for row in depth) + 1
    ring: dict[int, set[int]] = {}
    for r in range(h):
        for c in range(w):
            ring.setdefault(depth[r][c], set()).add(grid[r][c])
    if n < 2 or any(len(ring[k]) != 1 for k in range(n)):
        raise ValueError("not one-colour rings")
    colours = [next(iter(ring[k])) for k in range(n)]
    return tuple(tuple(colours[n - 1 - depth[r][c]] for c in range(w)) for r in range(h))


def stack_bars(grid: Grid, align: str) -> Grid:
    """Horizontal one-colour bars (one per row at most) restacked at the bottom, longest lowest, one per row,
    pushed to the ``right`` or ``left`` edge."""
    bg = background(grid)
    h, w = shape(grid)
    bars = []
    for row in grid:
        fg = [v for v in row if v != bg]
        if not fg:
            continue
        if len(set(fg)) != 1:
            raise ValueError("not one bar per row")
        cols = [c for c, v in enumerate(row) if v != bg]
        if cols[-1] - cols[0] + 1 != len(cols):
            raise ValueError("broken bar")
        bars.append((len(cols), fg[0]))
    if len(bars) < 2 or len({n for n, _ in bars}) != len(bars):
        raise ValueError("bars tie")
    bars.sort(reverse=True)
    out = [[bg] * w for _ in range(h)]
    for k, (n, colour) in enumerate(bars):
        r = h - 1 - k
        for c in range(w - n, w) if align == "right" else range(n):
            out[r][c] = colour
    return tuple(tuple(row) for row in out)


TURNS = {"identity": ("identity", "identity"), "rot90": ("rot90", "rot270"), "rot180": ("rot180", "rot180")}
TURNS["rot270"] = ("rot270", "rot90")
BAR_OPTIONS = tuple((align, turn) for turn in TURNS for align in ("right", "left"))


def stack_bars_turned(grid: Grid, option: tuple[str, str]) -> Grid:
    """:func:`stack_bars` in a turned frame (bars stacked towards another edge)."""
    align, turn = option
    there, back = TURNS[turn]
    return dsl.GEOMETRIC[back](stack_bars(dsl.GEOMETRIC[there](grid), align))


def shift_lines_by_count(grid: Grid, option: tuple[int, int, int]) -> Grid:
    """Full-length lines (whole rows / columns of one colour) moved by (``dy``, ``dx``) × the number of cells of
    the ``marker`` colour, which is erased."""
    marker, dy, dx = option
    bg = background(grid)
    n = sum(v == marker for row in grid for v in row)
    if not n or marker == bg:
        raise ValueError("no marker")
    clean = tuple(tuple(bg if v == marker else v for v in row) for row in grid)
    h, w = shape(grid)
    rows = [(r, clean[r][0]) for r in range(h) if clean[r][0] != bg and len(set(clean[r])) == 1]
    cols = [(c, clean[0][c]) for c in range(w) if clean[0][c] != bg and len({row[c] for row in clean}) == 1]
    if not rows and not cols:
        raise ValueError("no lines")
    out = [[bg] * w for _ in range(h)]
    for r, colour in rows:
        if not 0 <= r + dy * n < h:
            raise ValueError("line leaves the grid")
        out[r + dy * n] = [colour] * w
    for c, colour in cols:
        if not 0 <= c + dx * n < w:
            raise ValueError("line leaves the grid")
        for r in range(h):
            out[r][c + dx * n] = colour
    return tuple(tuple(row) for row in out)


def _shift_options(ctx: Context) -> list[tuple[int, int, int]]:
    gone = [
        c for c in range(10) if all(any(c in row for row in i) and not any(c in row for row in o) for i, o in ctx.S)
    ]
    return [(m, dy, dx) for m in gone for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def swap_content_colours(grid: Grid) -> Grid:
    """The content's bounding box with its two colours exchanged (the box must hold exactly two colours)."""
    box = dsl.crop_to_content(grid)
    colours = dsl.palette(box)
    if len(colours) != 2:
        raise ValueError("not two colours")
    a, b = colours
    return dsl.recolour(box, {a: b, b: a})


def crop_frame_with_most_dots(grid: Grid) -> Grid:
    """Among one-colour rectangular frames, the one holding the most cells of another colour, cropped, with the
    frame painted in that colour."""
    bg = background(grid)
    best: list[tuple[int, tuple[int, int, int, int], int]] = []
    for obj in objects(grid, True, False):
        if obj.height < 3 or obj.width < 3 or obj.size != 2 * (obj.height + obj.width) - 4:
            continue
        top, left, bottom, right = obj.box
        inside = Counter(
            v for row in grid[top + 1 : bottom] for v in row[left + 1 : right] if v not in (bg, obj.colour)
        )
        if len(inside) == 1:
            colour, n = next(iter(inside.items()))
            best.append((n, obj.box, colour))
    best.sort(key=lambda x: -x[0])
    if not best or len(best) > 1 and best[0][0] == best[1][0]:
        raise ValueError("no single frame with most dots")
    _, box, colour = best[0]
    return tuple(tuple(colour if v != bg else bg for v in row) for row in dsl.crop(grid, *box))


def fit_two_pieces(grid: Grid, size: tuple[int, int]) -> Grid:
    """Two one-colour pieces put together so that they fill an ``h``×``w`` box exactly (no overlap, no gap); the
    first such placement in reading order of the first piece's offset."""
    h, w = size
    objs = objects(grid, True, True)
    if len(objs) != 2 or h * w != objs[0].size + objs[1].size:
        raise ValueError("not two pieces that fill the box")
    a, b = objs
    for ay in range(h - a.height + 1):
        for ax in range(w - a.width + 1):
            out = [[-1] * w for _ in range(h)]
            for r, c, v in a.cells:
                out[r - a.box[0] + ay][c - a.box[1] + ax] = v
            for by in range(h - b.height + 1):
                for bx in range(w - b.width + 1):
                    spots = [(r - b.box[0] + by, c - b.box[1] + bx) for r, c, _ in b.cells]
                    if all(out[r][c] == -1 for r, c in spots):
                        for r, c in spots:
                            out[r][c] = b.colour
                        return tuple(tuple(row) for row in out)
    raise ValueError("the pieces do not fit")


def fit_two_pieces_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`fit_two_pieces` into the output shape every train pair has, when it explains them all."""
    size = ctx.need("out_shape", lambda: learn.learn_output_shape(ctx.S))
    ctx.need("part_two_pieces", lambda: learn.fit(ctx.S, (size,), fit_two_pieces))
    return fit_two_pieces(grid, size)


Stamp = tuple[tuple[tuple[int, int], int], ...]  # (offset, colour; -1 = the pixel's own colour)


def learn_pixel_stamp(S: tuple[learn.Pair, ...]) -> Stamp | None:
    """What every foreground pixel paints on the background cells around it (3×3), the same for every colour:
    a fixed colour or the pixel's own; every other cell unchanged. An offset paints when all its cells agree;
    the whole stamp is then checked on every pair (stamps of neighbouring pixels may overlap)."""
    if not S or any(shape(i) != shape(o) for i, o in S):
        return None
    stamp: dict[tuple[int, int], int] = {}
    mixed: set[tuple[int, int]] = set()  # offsets whose cells disagree: not painted by this offset alone
    for i, o in S:
        bg = background(i)
        h, w = shape(i)
        for r, c, v in dsl.cells(i):
            if v == bg:
                continue
            for dr, dc in dsl.NEIGHBOURS_8:
                rr, cc = r + dr, c + dc
                if not (0 <= rr < h and 0 <= cc < w) or i[rr][cc] != bg:
                    continue
                got = o[rr][cc]
                value = -1 if got == v else got
                if stamp.setdefault((dr, dc), value) != value:
                    mixed.add((dr, dc))
    learned = tuple(sorted((d, v) for d, v in stamp.items() if v != background(S[0][0]) and d not in mixed))
    if not learned:
        return None
    return learned if all(apply_pixel_stamp(i, learned) == o for i, o in S) else None


def apply_pixel_stamp(grid: Grid, stamp: Stamp) -> Grid:
    """Paint the learned stamp around every foreground pixel, on background cells only."""
    bg = background(grid)
    h, w = shape(grid)
    rows = [list(row) for row in grid]
    for r, c, v in dsl.cells(grid):
        if v == bg:
            continue
        for (dr, dc), colour in stamp:
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w and grid[rr][cc] == bg:
                rows[rr][cc] = v if colour < 0 else colour
    return tuple(tuple(row) for row in rows)


# ---------------------------------------------------------------------------------------------
# the registry


def _fitted(key: str, options: Callable[[Context], Iterable[Any]], apply: Callable[[Grid, Any], Grid]) -> CandidateFn:
    """A candidate applying the first option that maps every train input to its output."""

    def run(ctx: Context, grid: Grid) -> Grid:
        return apply(grid, ctx.need(key, lambda: learn.fit(ctx.S, options(ctx), apply)))

    return run


def _new_colour_pairs(ctx: Context) -> list[tuple[int, int]]:
    colours = learn.new_colours(ctx.S)
    return [(a, b) for a in colours for b in colours if a != b]


def _template_options(ctx: Context) -> list[tuple[str, int]]:
    colours = [-1, *learn.new_colours(ctx.S)]
    return [(pick, colour) for pick in ("most_fg", "first_nonempty") for colour in colours]


def _learned_table(
    key: str, learner: Callable[[tuple[learn.Pair, ...]], Any], apply: Callable[[Grid, Any], Grid]
) -> CandidateFn:
    def run(ctx: Context, grid: Grid) -> Grid:
        return apply(grid, ctx.need(key, lambda: learner(ctx.loo())))

    return run


def _learned_all(
    key: str, learner: Callable[[tuple[learn.Pair, ...]], Any], apply: Callable[[Grid, Any], Grid]
) -> CandidateFn:
    def run(ctx: Context, grid: Grid) -> Grid:
        return apply(grid, ctx.need(key, lambda: learner(ctx.S)))

    return run


def _plain(fn: Callable[[Grid], Grid]) -> CandidateFn:
    return lambda ctx, grid: fn(grid)


def _compose_late(post: CandidateFn, pre_name: str) -> CandidateFn:
    """``post∘pre`` with ``pre`` a candidate of :mod:`.candidates` (looked up when first run: that module imports
    this one)."""

    def run(ctx: Context, grid: Grid) -> Grid:
        from batt_tasks.battery import candidates

        pre = getattr(candidates, pre_name)
        return candidates.compose(post, pre, pre_name)(ctx, grid)

    return run


def _verified(key: str, fn: Callable[[Grid], Grid]) -> CandidateFn:
    """A parameterless rule that applies to many grids, given only when it explains every train pair."""

    def run(ctx: Context, grid: Grid) -> Grid:
        ctx.need(("verified", key), lambda: learn.fit(ctx.S, (True,), lambda i, _: fn(i)))
        return fn(grid)

    return run


def add_partition_families(reg: Registry) -> None:
    """Register the ``part_*`` candidates (appended at the end of the registry)."""
    reg.add("part_key_recolour_learned", _fitted("part_key", lambda ctx: KEY_OPTIONS, apply_key))
    reg.add("part_gap_cells_to_pixels", _verified("part_gap_cells_to_pixels", gap_pixels))
    for split in ("sep", "gaps"):
        reg.add(f"part_cell_table_{split}_learned", cell_table_learned(split))
    picks = tuple(CELL_PICKS)
    reg.add("part_cells_from_selected_learned", _fitted("part_from_sel", lambda ctx: picks, cells_from_selected))
    reg.add("part_move_marked_cell_learned", _fitted("part_marked", lambda ctx: range(10), move_marked_cell))
    reg.add("part_complete_from_template_learned", _fitted("part_template", _template_options, complete_from_template))
    reg.add("part_fill_cells_by_role_learned", _learned_table("part_role_fill", learn_role_fill, apply_role_fill))
    reg.add("part_cell_transforms_learned", _learned_all("part_cell_geo", learn_cell_transforms, apply_cell_transforms))
    reg.add("part_mirror_cell_separator_colour", _plain(mirror_cell_in_separator_colour))
    reg.add("part_overlay_corner_windows_learned", overlay_windows_learned)
    reg.add("part_stripe_sequence", _verified("part_stripe_sequence", stripe_sequence))
    reg.add("part_line_colours_square", _plain(line_colours_square))
    reg.add("part_largest_objects_histogram", _verified("part_largest_objects_histogram", largest_objects_histogram))
    reg.add("part_pixels_in_order_learned", pixels_in_order_learned)
    reg.add("part_rescale_majority_learned", rescale_learned)
    reg.add("part_noisiest_region_colour", _verified("part_noisiest_region_colour", noisiest_region_colour))
    reg.add("part_copies_by_count", _verified("part_copies_by_count", copies_by_count))
    reg.add("part_staircase_rows", _plain(staircase_rows))
    reg.add("part_staircase_around_learned", _fitted("part_stairs", _new_colour_pairs, staircase_around))
    reg.add("part_diagonals_by_colours", _plain(diagonals_by_colours))
    reg.add("part_scale_into_frame", _plain(scale_into_frame))
    reg.add("part_keep_middle_column", _verified("part_keep_middle_column", lambda g: keep_middle_line(g, "v")))
    reg.add("part_keep_middle_row", _verified("part_keep_middle_row", lambda g: keep_middle_line(g, "h")))
    reg.add("part_crop_colour_padded_learned", _fitted("part_crop_pad", _padded_options, crop_colour_padded))
    reg.add(
        "part_fractal∘shrink_learned∘crop_content",
        _fitted("part_fractal_shrink", lambda ctx: (2, 3, 4), fractal_of_shrunk_content),
    )
    reg.add("part_shrink_object_in_noise_colour", _plain(shrink_object_in_noise_colour))
    reg.add("part_overlay_on_anchor_learned", _fitted("part_anchor", _anchor_options, overlay_on_anchor))
    reg.add("part_assemble_corners", _plain(assemble_corners))
    bounces = [(axis, k) for axis in ("v", "h") for k in range(2, 7)]
    reg.add("part_bounce_learned", _fitted("part_bounce", lambda ctx: bounces, bounce))
    reg.add("part_nested_corners_extend_learned", nested_corners_learned)
    reg.add("part_kronecker_halves_either_axis", _plain(kronecker_halves_any))
    reg.add("part_clean_stripes", _verified("part_clean_stripes", clean_stripes))
    reg.add("part_reverse_rings", _plain(reverse_rings))
    reg.add("part_shift_lines_by_count_learned", _fitted("part_shift_count", _shift_options, shift_lines_by_count))
    reg.add("part_swap_colours∘crop_content", _verified("part_swap_content", swap_content_colours))
    reg.add("part_crop_frame_with_most_dots", _plain(crop_frame_with_most_dots))
    reg.add("part_fit_two_pieces_learned", fit_two_pieces_learned)
    stamp = _learned_all("part_pixel_stamp", learn_pixel_stamp, apply_pixel_stamp)
    for pre in ("tile_learned", "upscale_learned"):
        reg.add(f"part_pixel_stamp_learned∘{pre}", _compose_late(stamp, pre))
    reg.add("part_stack_bars_learned", _fitted("part_bars", lambda ctx: BAR_OPTIONS, stack_bars_turned))
    for split in ("sep", "gaps"):
        for key in ("filled", "colours"):
            reg.add(f"part_cell_table_{split}_by_{key}_learned", cell_table_learned(split, key))
    reg.add("part_combine_parts_learned", _fitted("part_combine", _combine_options, combine_parts))
    reg.add("part_overlay_parts_by_priority_learned", overlay_priority_learned)
    reg.add("part_select_part_learned", _fitted("part_select", _select_options, select_part))
    for name in CELL_KEYS:
        reg.add(f"part_cell_rule_by_{name}_learned", cell_rule_learned(name))
    reg.add(
        "part_transform∘select_part_learned", _learned_all("part_select_then", learn_select_then, apply_select_then)
    )
