"""Object-level families: objects (or single cells) moving to anchors, templates copied onto same-shaped
objects, and a few object extractions.

Every family follows the battery's style: small primitives of a grid and a parameter tuple, the parameter
fitted on every train pair (:func:`learn.fit`) and memoised in the sample's :class:`Context`. Searches are
bounded: at most :data:`MAX_MOVERS` moving cells, :data:`objects.MAX_OBJECTS` objects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from batt_tasks.battery import dsl, learn
from batt_tasks.battery.dsl import NEIGHBOURS_4, NEIGHBOURS_8, Grid, background, shape
from batt_tasks.battery.learn import Context, NotLearned
from batt_tasks.battery.objects import Obj, objects

if TYPE_CHECKING:
    from batt_tasks.battery.candidates import Registry

CandidateFn = Callable[[Context, Grid], Grid]

MAX_MOVERS = 60  #: cells that may slide in one grid

# ---------------------------------------------------------------------------------------------
# cells sliding to anchors


#: ``(anchor, steps, match, missing, recolour)``: which cells stay put (``static`` colours learned from the
#: pairs, ``big`` c8 objects of two cells or more, ``largest`` object), the ray directions (4 or 8), whether a
#: mover needs an anchor of its own colour (``same``) or takes the nearest (``any``), what happens to a mover
#: no ray leads from to an anchor (``drop`` or ``keep``), and whether a mover takes its anchor's colour.
SlideParams = tuple[str, int, str, str, bool]

SLIDE_OPTIONS: tuple[SlideParams, ...] = tuple(
    (anchor, steps, match, missing, recolour)
    for anchor in ("big", "static", "largest")
    for steps in (4, 8)
    for match in ("any", "same")
    for missing in ("keep", "drop")
    for recolour in (False, True)
    if not (match == "same" and recolour)
)


def static_colours(S: tuple[learn.Pair, ...]) -> tuple[int, ...] | None:
    """Non-background colours whose cells are the same in input and output of every pair (and that some other
    colour's cells do change), or None."""
    if not S or not learn.same_shapes(S):
        return None
    keep: set[int] | None = None
    for i, o in S:
        bg = background(i)
        here = {v for row in i for v in row if v != bg}
        for ri, ro in zip(i, o, strict=True):
            for a, b in zip(ri, ro, strict=True):
                if a != b:
                    here.discard(a)
                    here.discard(b)
        keep = here if keep is None else keep & here
    return tuple(sorted(keep)) if keep else None


def _anchor_cells(grid: Grid, mode: str, statics: tuple[int, ...]) -> set[tuple[int, int]]:
    bg = background(grid)
    if mode == "static":
        return {(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v != bg and v in statics}
    objs = objects(grid, True, True)
    if mode == "big":
        chosen = [o for o in objs if o.size >= 2]
    else:
        sizes = sorted((o.size for o in objs), reverse=True)
        if not sizes or (len(sizes) > 1 and sizes[0] == sizes[1]):
            raise ValueError("no largest object")
        chosen = [o for o in objs if o.size == sizes[0]]
    return {(r, c) for o in chosen for r, c, _ in o.cells}


def slide_to_anchors(grid: Grid, params: SlideParams, statics: tuple[int, ...] = ()) -> Grid:
    """Every non-anchor cell slides along the straight ray (4 or 8 directions) that reaches an anchor cell
    first, until it touches the anchor or a cell that slid there before it (nearest movers first)."""
    mode, nsteps, match, missing, recolour = params
    h, w = shape(grid)
    bg = background(grid)
    anchors = _anchor_cells(grid, mode, statics)
    if not anchors:
        raise ValueError("no anchors")
    movers = [(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v != bg and (r, c) not in anchors]
    if not movers or len(movers) > MAX_MOVERS:
        raise ValueError("no movers or too many")
    steps = NEIGHBOURS_4 if nsteps == 4 else NEIGHBOURS_8
    plans: list[tuple[int, int, int, int, int, int]] = []  # (distance, r, c, dr, dc, anchor colour)
    dropped: list[tuple[int, int]] = []
    for r, c in movers:
        v = grid[r][c]
        best: list[tuple[int, int, int, int]] = []
        for dr, dc in steps:
            nr, nc, k = r + dr, c + dc, 1
            # ``same``: the ray passes through anchors of other colours
            while 0 <= nr < h and 0 <= nc < w and ((nr, nc) not in anchors or (match == "same" and grid[nr][nc] != v)):
                nr, nc, k = nr + dr, nc + dc, k + 1
            if not (0 <= nr < h and 0 <= nc < w):
                continue
            target = grid[nr][nc]
            best.append((k, dr, dc, target))
        if not best:
            dropped.append((r, c))
            continue
        best.sort()
        if len(best) > 1 and best[0][0] == best[1][0] and best[0][3] != best[1][3]:
            raise ValueError("ambiguous anchor")
        k, dr, dc, target = best[0]
        plans.append((k, r, c, dr, dc, target))
    if not plans:
        raise ValueError("nothing slides")
    rows = [list(row) for row in grid]
    for r, c in movers:
        rows[r][c] = bg
    if missing == "keep":
        for r, c in dropped:
            rows[r][c] = grid[r][c]
    placed: set[tuple[int, int]] = set()
    for k, r, c, dr, dc, target in sorted(plans):
        # next to the anchor, or behind the movers that reached it first
        nr, nc = r + (k - 1) * dr, c + (k - 1) * dc
        while (nr, nc) in placed and (nr, nc) != (r, c):
            nr, nc = nr - dr, nc - dc
        placed.add((nr, nc))
        rows[nr][nc] = target if recolour else grid[r][c]
    return tuple(tuple(row) for row in rows)


def slide_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`slide_to_anchors` with the options that explain every train pair."""
    if not learn.same_shapes(ctx.S):
        raise NotLearned("shapes differ")
    statics = ctx.memo("obj_static_colours", lambda: static_colours(ctx.S)) or ()
    options = [p for p in SLIDE_OPTIONS if p[0] != "static" or statics]
    params = ctx.need("obj_slide", lambda: learn.fit(ctx.S, options, lambda i, p: slide_to_anchors(i, p, statics)))
    return slide_to_anchors(grid, params, statics)


# ---------------------------------------------------------------------------------------------
# a multi-coloured template copied onto the one-coloured objects of its shape


def _mask_key(obj: Obj) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    return obj.height, obj.width, obj.shape_key


def stamp_template(grid: Grid, erase_template: bool) -> Grid:
    """Every object with the template's shape (colour-blind) gets the template's colours; the template is the
    only multi-coloured object (or, when all are one-coloured, the only object of a colour of its own)."""
    objs = objects(grid, False, False)
    multi = [o for o in objs if len(o.colours) > 1]
    if len(multi) == 1:
        template = multi[0]
    else:
        if multi:
            raise ValueError("several templates")
        counts = Counter(o.colour for o in objs)
        lone = [o for o in objs if counts[o.colour] == 1]
        if len(lone) != 1 or len(counts) != 2:
            raise ValueError("no template")
        template = lone[0]
    key = _mask_key(template)
    targets = [o for o in objs if o is not template and _mask_key(o) == key]
    if not targets:
        raise ValueError("no targets")
    rows = [list(row) for row in grid]
    bg = background(grid)
    if erase_template:
        for r, c, _ in template.cells:
            rows[r][c] = bg
    top, left, _, _ = template.box
    for obj in targets:
        otop, oleft, _, _ = obj.box
        for r, c, v in template.cells:
            rows[r - top + otop][c - left + oleft] = v
    return tuple(tuple(row) for row in rows)


def stamp_bbox_template(grid: Grid, erase_template: bool) -> Grid:
    """Every solid one-coloured rectangle of the template's box size is replaced by the template (a
    multi-coloured object whose box the rectangles copy)."""
    objs = objects(grid, False, False)
    multi = [o for o in objs if len(o.colours) > 1]
    if len(multi) != 1:
        raise ValueError("no single template")
    template = multi[0]
    targets = [
        o
        for o in objs
        if o is not template
        and len(o.colours) == 1
        and o.is_rectangle()
        and (o.height, o.width) == (template.height, template.width)
    ]
    if not targets:
        raise ValueError("no targets")
    rows = [list(row) for row in grid]
    bg = background(grid)
    if erase_template:
        for r, c, _ in template.cells:
            rows[r][c] = bg
    top, left, _, _ = template.box
    for obj in targets:
        otop, oleft, _, _ = obj.box
        for r, c, _ in obj.cells:
            rows[r][c] = bg
        for r, c, v in template.cells:
            rows[r - top + otop][c - left + oleft] = v
    return tuple(tuple(row) for row in rows)


# ---------------------------------------------------------------------------------------------
# small extractions


def swap_all_two_colours(grid: Grid) -> Grid:
    """Exchange the two colours of a grid that has exactly two (background included)."""
    pal = dsl.palette(grid)
    if len(pal) != 2:
        raise ValueError("not two colours")
    a, b = pal
    return dsl.recolour(grid, {a: b, b: a})


def largest_colours_columns(grid: Grid) -> Grid:
    """One column per largest object (all objects tied at the largest size), left to right, as tall as that
    size, in the object's colour."""
    objs = objects(grid, True, False)
    if not objs:
        raise ValueError("no objects")
    top = max(o.size for o in objs)
    chosen = sorted((o for o in objs if o.size == top), key=lambda o: (o.box[1], o.box[0]))
    return dsl.check(tuple(tuple(o.colour for o in chosen) for _ in range(top)))


def add_object_families(reg: Registry) -> None:
    """The object-level families of this module (ids start with ``obj_``)."""
    reg.add("obj_slide_to_anchors_learned", slide_learned)
    for erase in (False, True):
        suffix = "_move" if erase else ""
        reg.add(f"obj_stamp_template_same_shape{suffix}", lambda ctx, g, e=erase: stamp_template(g, e))
        reg.add(f"obj_stamp_template_same_box{suffix}", lambda ctx, g, e=erase: stamp_bbox_template(g, e))
    reg.add("obj_swap_two_colours∘crop_content", lambda ctx, g: swap_all_two_colours(dsl.crop_to_content(g)))
    reg.add("obj_largest_colours_columns", lambda ctx, g: largest_colours_columns(g))
