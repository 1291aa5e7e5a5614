"""Object-level families (candidate ids ``obj_…``): objects and cells that move, objects painted by their
role and properties, templates copied onto marks, and extractions of objects.

- moving: cells sliding to anchors (``obj_slide_to_anchors_learned``), objects aligned with a reference,
  mirrored across an anchor line / at their marker side / around a symmetric pivot, moved into the holes of
  their shape, slid to a wall with a bar behind, moved along a line of dots, shifted by a marker count;
- painting: role tables (an object's edge, inside, holes and halo, by an object property, learned
  leave-one-out), background-region tables, objects shaped like a framed reference, bars under objects,
  marks under object centres, rim/core boxes inverted and grown;
- templates: a multi-coloured template onto one-coloured objects of its shape or box, and onto marks that
  show part of it (rotated, reflected, scaled);
- extraction: the largest object's block pattern, objects gathered on their marker cell, per-colour boxes
  overlaid (the swap∘crop, scale-into-frame, fullest-frame, bars-by-length, largest-objects, corner-piece and
  two-piece families live in :mod:`.partition`).

Every family follows the battery's style: small primitives of a grid and a parameter tuple, the parameter
fitted on every train pair (:func:`learn.fit`) and memoised in the sample's :class:`Context`; tables are
learned leave-one-out. Searches are bounded: at most :data:`MAX_MOVERS` moving cells,
:data:`MAX_ROLE_OBJECTS` objects per role table, :data:`MAX_TEMPLATES` templates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

from batt_tasks.battery import dsl, learn
from batt_tasks.battery.dsl import NEIGHBOURS_4, NEIGHBOURS_8, Grid, background, shape
from batt_tasks.battery.learn import Context, NotLearned
from batt_tasks.battery.objects import SELECTORS, Obj, keep_only, objects

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
SlideParams = tuple[str, int, str, str, bool, bool]

SLIDE_OPTIONS: tuple[SlideParams, ...] = tuple(
    (anchor, steps, match, missing, recolour, False)
    for anchor in ("big", "static", "largest")
    for steps in (4, 8)
    for match in ("any", "same")
    for missing in ("keep", "drop")
    for recolour in (False, True)
    if not (match == "same" and recolour)
) + (("static", 8, "any", "keep", False, True), ("big", 8, "any", "keep", False, True))


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
    first, until it touches the anchor or a cell that slid there before it (nearest movers first); with
    ``one_step`` (the last parameter) it moves a single step that way."""
    mode, nsteps, match, missing, recolour, one_step = params
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
        reach = min(k - 1, 1) if one_step else k - 1
        nr, nc = r + reach * dr, c + reach * dc
        while (nr, nc) in placed and (nr, nc) != (r, c):
            nr, nc = nr - dr, nc - dc
        placed.add((nr, nc))
        rows[nr][nc] = target if recolour else grid[r][c]
    return tuple(tuple(row) for row in rows)


def _fg_count(grid: Grid) -> int:
    bg = background(grid)
    return sum(v != bg for row in grid for v in row)


def _same_mask(i: Grid, o: Grid) -> bool:
    """Whether ``o`` has foreground exactly where ``i`` has (only colours change)."""
    bg = background(i)
    return shape(i) == shape(o) and all(
        (a == bg) == (b == bg) for ri, ro in zip(i, o, strict=True) for a, b in zip(ri, ro, strict=True)
    )


def slide_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`slide_to_anchors` with the options that explain every train pair."""
    if not learn.same_shapes(ctx.S):
        raise NotLearned("shapes differ")
    if not ctx.memo("obj_fg_not_more", lambda: all(_fg_count(o) <= _fg_count(i) and i != o for i, o in ctx.S)):
        raise NotLearned("more foreground in an output")
    statics = ctx.memo("obj_static_colours", lambda: static_colours(ctx.S)) or ()
    options = [p for p in SLIDE_OPTIONS if p[0] != "static" or statics]
    params = ctx.need("obj_slide", lambda: learn.fit(ctx.S, options, lambda i, p: slide_to_anchors(i, p, statics)))
    return slide_to_anchors(grid, params, statics)


# ---------------------------------------------------------------------------------------------
# a multi-coloured template copied onto the one-coloured objects of its shape


def _mask_key(obj: Obj) -> tuple[int, int, tuple[tuple[int, int], ...]]:
    return obj.height, obj.width, obj.shape_key


def _stamp_onto(grid: Grid, template: Obj, targets: list[Obj], erase_template: bool, clear_targets: bool) -> Grid:
    """``template``'s cells copied onto each target, aligned at the boxes' top-left corners; the template's own
    cells become background when ``erase_template``, each target's cells first when ``clear_targets``."""
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
        if clear_targets:
            for r, c, _ in obj.cells:
                rows[r][c] = bg
        for r, c, v in template.cells:
            rows[r - top + otop][c - left + oleft] = v
    return tuple(tuple(row) for row in rows)


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
    return _stamp_onto(grid, template, targets, erase_template, clear_targets=False)


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
    return _stamp_onto(grid, template, targets, erase_template, clear_targets=True)


# ---------------------------------------------------------------------------------------------
# per-object paint tables: each cell's role around an object (its edge, inside, hole, halo) and a property
# of that object give the output colour, learned leave-one-out

KEEP = -1  #: table value: the cell keeps its input colour
ROLE_KINDS: dict[str, tuple[bool, bool]] = {"c8": (True, True), "c4": (True, False), "multi_c8": (False, True)}
MAX_ROLE_OBJECTS = 40

ObjProp = Callable[[Obj, tuple[Obj, ...]], object]

OBJ_PROPS: dict[str, ObjProp] = {
    "none": lambda o, objs: 0,
    "colour": lambda o, objs: o.colour,
    "size": lambda o, objs: o.size,
    "width_parity": lambda o, objs: (o.width % 2, o.height % 2),
    "is_largest": lambda o, objs: o.size == max(x.size for x in objs),
    "is_rectangle": lambda o, objs: o.is_rectangle(),
    "shape": lambda o, objs: o.shape_key,
    "bends": lambda o, objs: _bends(o),
    "square_hole": lambda o, objs: _square_hole(o),
}


def _square_hole(obj: Obj) -> bool:
    """Whether the object encloses holes that together fill a square."""
    cells = _holes(obj)
    if not cells:
        return False
    rows, cols = [r for r, _ in cells], [c for _, c in cells]
    height, width = max(rows) - min(rows) + 1, max(cols) - min(cols) + 1
    return height == width and height * width == len(cells)


def _bends(obj: Obj) -> tuple[int, int]:
    """The line-drawing shape of an object: its ends (cells with one 4-neighbour in it) and turns (two
    4-neighbours, not in line), both clipped at 5."""
    own = {(r, c) for r, c, _ in obj.cells}
    ends = turns = 0
    for r, c in own:
        near = [(dr, dc) for dr, dc in NEIGHBOURS_4 if (r + dr, c + dc) in own]
        if len(near) == 1:
            ends += 1
        elif len(near) == 2 and near[0][0] != -near[1][0] and near[0][1] != -near[1][1]:
            turns += 1
    return min(ends, 5), min(turns, 5)


def _holes(obj: Obj) -> list[tuple[int, int]]:
    top, left, _, _ = obj.box
    return [(r + top, c + left) for r, c in dsl.enclosed_cells(obj.as_grid(-1), -1)]


@lru_cache(maxsize=64)
def cell_roles(grid: Grid, kind: str) -> tuple[tuple[Obj, ...], dict[tuple[int, int], tuple[tuple[str, int], ...]]]:
    """The objects of ``grid`` and, for every cell near one, its ``(role, object index)`` claims: ``edge`` or
    ``inner`` for the object's own cells, ``hole`` for background it encloses, ``halo4``/``halo_d`` for
    background next to it (side/corner only); a background cell near several objects has several claims."""
    objs = objects(grid, *ROLE_KINDS[kind])
    if not objs or len(objs) > MAX_ROLE_OBJECTS:
        raise ValueError("no objects or too many")
    h, w = shape(grid)
    bg = background(grid)
    roles: dict[tuple[int, int], tuple[tuple[str, int], ...]] = {}
    for n, obj in enumerate(objs):
        own = {(r, c) for r, c, _ in obj.cells}
        for r, c in own:
            inner = all((r + dr, c + dc) in own for dr, dc in NEIGHBOURS_4)
            roles[(r, c)] = (("inner" if inner else "edge", n),)
        claims: dict[tuple[int, int], str] = {}
        for r, c in _holes(obj):
            if grid[r][c] == bg:
                claims[(r, c)] = "hole"
        for r, c in sorted(own):
            for k, (dr, dc) in enumerate(NEIGHBOURS_8):
                cell = (r + dr, c + dc)
                if 0 <= cell[0] < h and 0 <= cell[1] < w and grid[cell[0]][cell[1]] == bg and cell not in claims:
                    claims[cell] = "halo4" if k < 4 else "halo_d"
                elif claims.get(cell) == "halo_d" and k < 4:
                    claims[cell] = "halo4"
        for cell, role in claims.items():
            roles[cell] = (*roles.get(cell, ()), (role, n))
    return objs, roles


RoleKey = tuple[str, object]


@lru_cache(maxsize=256)
def _role_keys(grid: Grid, kind: str, prop: str) -> dict[tuple[int, int], tuple[RoleKey, ...]]:
    objs, roles = cell_roles(grid, kind)
    fn = OBJ_PROPS[prop]
    values = [fn(o, objs) for o in objs]
    out: dict[tuple[int, int], tuple[RoleKey, ...]] = {}
    for cell, claims in roles.items():
        if len(claims) == 1:
            role, n = claims[0]
            out[cell] = ((role, values[n]),)
        else:
            out[cell] = tuple(sorted({(role, values[n]) for role, n in claims}, key=repr))
    return out


def learn_role_table(S: tuple[learn.Pair, ...], kind: str, prop: str) -> dict[RoleKey, int] | None:
    """A table (role, object property) → output colour (or KEEP) learned from the cells with one claim, that
    must then reproduce every pair (cells with several claims included, cells without any unchanged), or None."""
    if not S or not learn.same_shapes(S):
        return None
    seen: dict[RoleKey, set[tuple[int, int]]] = {}
    changed = False
    for i, o in S:
        keys = _role_keys(i, kind, prop)
        for r, (ri, ro) in enumerate(zip(i, o, strict=True)):
            for c, (a, b) in enumerate(zip(ri, ro, strict=True)):
                key = keys.get((r, c))
                if key is None:
                    if a != b:
                        return None
                    continue
                changed |= a != b
                if len(key) == 1:
                    seen.setdefault(key[0], set()).add((a, b))
    if not changed:
        return None
    table: dict[RoleKey, int] = {}
    for k, found in seen.items():
        outs = {b for _, b in found}
        if all(a == b for a, b in found):
            table[k] = KEEP
        elif len(outs) == 1:
            table[k] = outs.pop()
        else:
            return None
    try:
        if any(apply_role_table(i, kind, prop, table) != o for i, o in S):
            return None
    except ValueError:
        return None
    return table


def apply_role_table(grid: Grid, kind: str, prop: str, table: dict[RoleKey, int]) -> Grid:
    """Paint every cell with a role by the learned table (a cell with several claims takes the one value that
    changes it, if any); raises NotLearned for an unseen key, ValueError for a contested cell."""
    rows = [list(row) for row in grid]
    for (r, c), key in sorted(_role_keys(grid, kind, prop).items()):
        values = set()
        for k in key:
            value = table.get(k)
            if value is None:
                raise NotLearned("unseen role")
            if value != KEEP and value != grid[r][c]:
                values.add(value)
        if len(values) > 1:
            raise ValueError("contested cell")
        if values:
            rows[r][c] = values.pop()
    return tuple(tuple(row) for row in rows)


@lru_cache(maxsize=32)
def _changes_near_objects(S: tuple[learn.Pair, ...]) -> bool:
    """Whether every changed cell of every pair is a foreground cell, next to one (8-wise) or enclosed: the
    cheap test every role table must pass."""
    for i, o in S:
        bg = background(i)
        h, w = shape(i)
        enclosed: set[tuple[int, int]] | None = None
        for r, (ri, ro) in enumerate(zip(i, o, strict=True)):
            for c, (a, b) in enumerate(zip(ri, ro, strict=True)):
                if a == b or a != bg:
                    continue
                if any(0 <= r + dr < h and 0 <= c + dc < w and i[r + dr][c + dc] != bg for dr, dc in NEIGHBOURS_8):
                    continue
                if enclosed is None:
                    enclosed = set(dsl.enclosed_cells(i, bg))
                if (r, c) not in enclosed:
                    return False
    return True


def _held_out_covered(S: tuple[learn.Pair, ...], n: int, kind: str, prop: str) -> bool:
    table = learn_role_table(S[:n] + S[n + 1 :], kind, prop)
    if table is None:
        return False
    return all(k in table for key in _role_keys(S[n][0], kind, prop).values() for k in key)


def _differs_from_c4(grid: Grid, kind: str) -> bool:
    """Whether ``grid``'s objects of ``kind`` differ from its one-coloured 4-connected objects."""
    return kind != "c4" and {o.cells for o in objects(grid, *ROLE_KINDS[kind])} != {
        o.cells for o in objects(grid, *ROLE_KINDS["c4"])
    }


def choose_role_prop(S: tuple[learn.Pair, ...], kind: str) -> str | None:
    """The first object property (in :data:`OBJ_PROPS` order) whose role table fits every train pair,
    preferring one whose table learned without each pair still knows that pair's keys; or None."""
    if not S or not learn.same_shapes(S):
        return None
    if not _changes_near_objects(S):
        return None
    for i, o in S:  # every changed cell has a role
        roles = cell_roles(i, kind)[1]
        if any(
            a != b and (r, c) not in roles
            for r, (ri, ro) in enumerate(zip(i, o, strict=True))
            for c, (a, b) in enumerate(zip(ri, ro, strict=True))
        ):
            return None
    fitting = [prop for prop in OBJ_PROPS if learn_role_table(S, kind, prop) is not None]
    for prop in fitting:
        if len(S) > 1 and all(_held_out_covered(S, n, kind, prop) for n in range(len(S))):
            return prop
    return fitting[0] if fitting else None


def role_table_learned(kind: str) -> CandidateFn:
    """:func:`choose_role_prop`'s role table, learned leave-one-out. Wider objects (``c8``, ``multi_c8``) than
    4-connected one-coloured ones answer on a sample whose objects differ from those only when the c4 table does
    not fit the train pairs: else the pairs never told the two apart, and the c4 table decides."""

    def run(ctx: Context, grid: Grid) -> Grid:
        prop = ctx.need(("obj_role_prop", kind), lambda: choose_role_prop(ctx.S, kind))
        if (
            kind != "c4"
            and _differs_from_c4(grid, kind)
            and ctx.memo(("obj_role_prop", "c4"), lambda: choose_role_prop(ctx.S, "c4")) is not None
        ):
            raise NotLearned("connectivity not told apart by the train pairs")
        table = ctx.need(("obj_role_table", kind), lambda: learn_role_table(ctx.loo(), kind, prop))
        return apply_role_table(grid, kind, prop, table)

    return run


# ---------------------------------------------------------------------------------------------
# objects shaped like a reference object (one inside a frame's box) recoloured


def recolour_like_reference(grid: Grid, params: tuple[int, str, str]) -> Grid:
    """Objects (one-coloured, 4-connected) with the shape of a reference object take the reference's colour
    (``ref``) or the frame's (``frame``); references are the objects inside a ``frame``-coloured object: in a
    hole it encloses (``enclosed``) or in its box (``box``)."""
    frame, mode, inside = params
    objs = objects(grid, True, False)
    frames = [o for o in objs if o.colour == frame]
    if not frames:
        raise ValueError("no frame")
    if inside == "enclosed":
        holes = {cell for o in frames for cell in _holes(o)}
        refs = [o for o in objs if o.colour != frame and all((r, c) in holes for r, c, _ in o.cells)]
    else:
        boxes = [o.box for o in frames]
        refs = [
            o
            for o in objs
            if o.colour != frame
            and any(t <= o.box[0] and lf <= o.box[1] and o.box[2] <= b and o.box[3] <= rt for t, lf, b, rt in boxes)
        ]
    if not refs:
        raise ValueError("no reference")
    by_shape: dict[tuple[int, int, tuple[tuple[int, int], ...]], int] = {}
    for o in refs:
        if by_shape.setdefault(_mask_key(o), o.colour) != o.colour:
            raise ValueError("two references of one shape")
    rows = [list(row) for row in grid]
    hits = 0
    for o in objs:
        if o.colour == frame or o in refs:
            continue
        colour = by_shape.get(_mask_key(o))
        if colour is None:
            continue
        hits += 1
        for r, c, _ in o.cells:
            rows[r][c] = colour if mode == "ref" else frame
    if not hits:
        raise ValueError("nothing matches")
    return tuple(tuple(row) for row in rows)


def recolour_like_reference_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`recolour_like_reference` with the frame colour and mode every train pair agrees on."""

    def options() -> list[tuple[int, str, str]]:
        if not all(_same_mask(i, o) for i, o in ctx.S):
            return []
        common = set(range(10))
        for i, _ in ctx.S:
            common &= set(dsl.palette(i))
        return [(f, m, i) for i in ("enclosed", "box") for f in sorted(common) for m in ("ref", "frame")]

    params = ctx.need("obj_like_ref", lambda: learn.fit(ctx.S, options(), recolour_like_reference))
    return recolour_like_reference(grid, params)


def keep_selected(sel: str) -> Callable[[Grid], Grid]:
    """Erase every (one-coloured, 8-connected) object but the one selector ``sel`` picks (``rarest_colour``:
    every cell but those of the strictly least common colour)."""

    def run(grid: Grid) -> Grid:
        bg = background(grid)
        if sel == "rarest_colour":
            counts = Counter(v for row in grid for v in row if v != bg)
            ranked = sorted(counts.values())
            if not ranked or (len(ranked) > 1 and ranked[0] == ranked[1]):
                raise ValueError("no rarest colour")
            rare = min(counts, key=lambda k: (counts[k], k))
            return tuple(tuple(v if v == rare else bg for v in row) for row in grid)
        obj = SELECTORS[sel](objects(grid, True, True))
        return keep_only(grid, [obj], bg)

    return run


def role_table_after(pre: str, fn: Callable[[Grid], Grid], kind: str) -> CandidateFn:
    """:func:`role_table_learned` on the grids after ``fn`` (a selection step)."""
    post = role_table_learned(kind)

    def run(ctx: Context, grid: Grid) -> Grid:
        return post(ctx.through(pre, lambda c, g: fn(g)), fn(grid))

    return run


# ---------------------------------------------------------------------------------------------
# background regions recoloured by a region property, learned leave-one-out


@lru_cache(maxsize=64)
def bg_regions(grid: Grid) -> tuple[tuple[tuple[tuple[int, int], ...], frozenset[int]], ...]:
    """The 4-connected regions of background cells, each with the set of colours next to it (4-wise)."""
    bg = background(grid)
    marked = tuple(tuple(1 if v == bg else 0 for v in row) for row in grid)
    h, w = shape(grid)
    out = []
    for reg in objects(marked, True, False, 0):
        cells = tuple((r, c) for r, c, _ in reg.cells)
        near = {
            grid[r + dr][c + dc]
            for r, c in cells
            for dr, dc in NEIGHBOURS_4
            if 0 <= r + dr < h and 0 <= c + dc < w and grid[r + dr][c + dc] != bg
        }
        out.append((cells, frozenset(near)))
    return tuple(out)


def _region_keys(grid: Grid, prop: str) -> list[object]:
    regions = bg_regions(grid)
    if prop == "extreme":
        sizes = [len(cells) for cells, _ in regions]
        top, low = max(sizes), min(sizes)
        return ["largest" if n == top else "smallest" if n == low else "other" for n in sizes]
    colour = int(prop[-1])  # "next_to_k"
    return [colour in near for _, near in regions]


REGION_PROPS = ("extreme", *(f"next_to_{k}" for k in range(10)))


def learn_region_table(S: tuple[learn.Pair, ...], prop: str) -> dict[object, int] | None:
    """A table region property → output colour (KEEP: unchanged) over pairs where only whole background
    regions change, each to one colour; it must discriminate (two different values), or None."""
    if not S or not learn.same_shapes(S):
        return None
    table: dict[object, int] = {}
    for i, o in S:
        regions = bg_regions(i)
        covered = {cell for cells, _ in regions for cell in cells}
        for r, (ri, ro) in enumerate(zip(i, o, strict=True)):
            for c, (a, b) in enumerate(zip(ri, ro, strict=True)):
                if a != b and (r, c) not in covered:
                    return None
        for (cells, _), key in zip(regions, _region_keys(i, prop), strict=True):
            outs = {o[r][c] for r, c in cells}
            if len(outs) != 1:
                return None
            value = outs.pop()
            value = KEEP if value == i[cells[0][0]][cells[0][1]] else value
            if table.setdefault(key, value) != value:
                return None
    return table if len(set(table.values())) > 1 else None


def region_table_learned(ctx: Context, grid: Grid) -> Grid:
    """Background regions recoloured by the first region property whose table fits every train pair; the
    table is learned leave-one-out."""

    def choose() -> str | None:
        return next((p for p in REGION_PROPS if learn_region_table(ctx.S, p) is not None), None)

    prop = ctx.need("obj_region_prop", choose)
    table = ctx.need("obj_region_table", lambda: learn_region_table(ctx.loo(), prop))
    rows = [list(row) for row in grid]
    for (cells, _), key in zip(bg_regions(grid), _region_keys(grid, prop), strict=True):
        if key not in table:
            raise NotLearned("unseen region key")
        if table[key] != KEEP:
            for r, c in cells:
                rows[r][c] = table[key]
    return tuple(tuple(row) for row in rows)


# ---------------------------------------------------------------------------------------------
# objects aligned with a reference


ALIGN_MODES = ("row_top", "row_bottom", "row_centre", "col_left", "col_right", "col_centre", "centre")


def _edge(box: tuple[int, int, int, int], mode: str) -> int:
    top, left, bottom, right = box
    return {
        "row_top": 2 * top,
        "row_bottom": 2 * bottom,
        "row_centre": top + bottom,
        "col_left": 2 * left,
        "col_right": 2 * right,
        "col_centre": left + right,
    }[mode]


def align_to_reference(grid: Grid, params: tuple[int, str]) -> Grid:
    """Objects move to line up with the reference (the cells of colour ``ref``): each object on its own along
    rows (``row_*``: same top, bottom or centre row) or columns (``col_*``), or all other cells together so
    that their box is centred on the reference's box (``centre``)."""
    ref, mode = params
    bg = background(grid)
    h, w = shape(grid)
    ref_cells = [(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v == ref and v != bg]
    if not ref_cells:
        raise ValueError("no reference")
    rbox = (
        min(r for r, _ in ref_cells),
        min(c for _, c in ref_cells),
        max(r for r, _ in ref_cells),
        max(c for _, c in ref_cells),
    )
    others = [o for o in objects(grid, True, True, bg) if o.colour != ref]
    if not others:
        raise ValueError("nothing to move")
    moves: list[tuple[Obj, int, int]] = []
    if mode == "centre":
        cells = [(r, c) for o in others for r, c, _ in o.cells]
        top, left = min(r for r, _ in cells), min(c for _, c in cells)
        bottom, right = max(r for r, _ in cells), max(c for _, c in cells)
        dy2, dx2 = rbox[0] + rbox[2] - top - bottom, rbox[1] + rbox[3] - left - right
        if dy2 % 2 or dx2 % 2:
            raise ValueError("no whole-cell centre")
        moves = [(o, dy2 // 2, dx2 // 2) for o in others]
    else:
        for o in others:
            d2 = _edge(rbox, mode) - _edge(o.box, mode)
            if d2 % 2:
                raise ValueError("no whole-cell alignment")
            moves.append((o, d2 // 2, 0) if mode.startswith("row") else (o, 0, d2 // 2))
    if all(dy == 0 and dx == 0 for _, dy, dx in moves):
        raise ValueError("nothing moves")
    rows = [list(row) for row in grid]
    for o, _, _ in moves:
        for r, c, _ in o.cells:
            rows[r][c] = bg
    for o, dy, dx in moves:
        for r, c, v in o.cells:
            if not (0 <= r + dy < h and 0 <= c + dx < w):
                raise ValueError("moved off the grid")
            rows[r + dy][c + dx] = v
    return tuple(tuple(row) for row in rows)


def _moves_only(ctx: Context) -> bool:
    """Whether every train output has its input's shape and the same number of cells of each colour."""
    return ctx.memo(
        "obj_moves_only",
        lambda: learn.same_shapes(ctx.S) and all(dsl.colour_counts(i) == dsl.colour_counts(o) for i, o in ctx.S),
    )


def align_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`align_to_reference` with the reference colour and mode every train pair agrees on."""

    def options() -> list[tuple[int, str]]:
        if not learn.same_shapes(ctx.S):
            return []
        common = set(range(1, 10))
        for i, _ in ctx.S:
            common &= set(dsl.palette(i))
        return [(c, m) for c in sorted(common) for m in ALIGN_MODES]

    if not _moves_only(ctx):
        raise NotLearned("colour counts change")
    params = ctx.need("obj_align", lambda: learn.fit(ctx.S, options(), align_to_reference))
    return align_to_reference(grid, params)


# ---------------------------------------------------------------------------------------------
# small extractions


def largest_object_pattern(grid: Grid, out_shape: tuple[int, int]) -> Grid:
    """The largest object's blocky pattern: its box (the object alone) scaled down to ``out_shape`` by block
    majority, painted in the grid's other foreground colour (the noise that the object is drawn among)."""
    bg = background(grid)
    obj = SELECTORS["largest"](objects(grid, True, True))
    solo = obj.as_grid(bg)
    (h, w), (oh, ow) = shape(solo), out_shape
    if oh < 2 or ow < 2 or h % oh or w % ow or (h == oh and w == ow):
        raise ValueError("no pattern or does not divide")
    others = {v for row in grid for v in row if v not in (bg, obj.colour)}
    if len(others) != 1:
        raise ValueError("not one other colour")
    paint_colour = others.pop()
    fy, fx = h // oh, w // ow
    rows = []
    for r in range(oh):
        row = []
        for c in range(ow):
            block = [v for rr in solo[r * fy : (r + 1) * fy] for v in rr[c * fx : (c + 1) * fx]]
            row.append(paint_colour if 2 * block.count(obj.colour) > len(block) else bg)
        rows.append(tuple(row))
    return tuple(rows)


def largest_pattern_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`largest_object_pattern` to the output shape every train pair has."""
    return largest_object_pattern(grid, ctx.need("out_shape", lambda: learn.learn_output_shape(ctx.S)))


def gather_on_marker(grid: Grid, params: tuple[int, int, int]) -> Grid:
    """Every object holding one cell of colour ``marker`` is laid on an ``h``×``w`` canvas with that cell at
    the centre (later objects over earlier ones; overlapping different colours is an error)."""
    marker, h, w = params
    if h % 2 == 0 or w % 2 == 0:
        raise ValueError("no centre")
    bg = background(grid)
    objs = [o for o in objects(grid, False, True) if o.colours.get(marker, 0) == 1]
    if len(objs) < 2:
        raise ValueError("fewer than two marked objects")
    rows = [[bg] * w for _ in range(h)]
    for o in objs:
        mr, mc = next((r, c) for r, c, v in o.cells if v == marker)
        for r, c, v in o.cells:
            rr, cc = r - mr + h // 2, c - mc + w // 2
            if not (0 <= rr < h and 0 <= cc < w):
                raise ValueError("off the canvas")
            if rows[rr][cc] not in (bg, v):
                raise ValueError("overlap")
            rows[rr][cc] = v
    return tuple(tuple(row) for row in rows)


def gather_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`gather_on_marker` with the marker colour every train pair agrees on (canvas: the output shape)."""

    def options() -> list[tuple[int, int, int]]:
        out = learn.learn_output_shape(ctx.S)
        return [] if out is None else [(m, *out) for m in range(1, 10)]

    return gather_on_marker(grid, ctx.need("obj_gather", lambda: learn.fit(ctx.S, options(), gather_on_marker)))


def fill_holes_with_matching(grid: Grid, lone_colours: bool = False) -> Grid:
    """Each enclosed background hole takes the one object elsewhere that has exactly its shape (the object
    moves into the hole); holes without such an object stay empty. ``lone_colours``: only objects whose
    colour no other object has may move (the others are distractors)."""
    bg = background(grid)
    holes_mask = set(dsl.enclosed_cells(grid, bg))
    if not holes_mask:
        raise ValueError("no holes")
    marked = tuple(tuple(1 if (r, c) in holes_mask else 0 for c in range(len(grid[0]))) for r in range(len(grid)))
    holes = objects(marked, True, False, 0)
    objs = [o for o in objects(grid, True, True) if not any((r, c) in holes_mask for r, c, _ in o.cells)]
    if lone_colours:
        counts = Counter(o.colour for o in objs)
        objs = [o for o in objs if counts[o.colour] == 1]
    rows = [list(row) for row in grid]
    used: set[int] = set()
    moved = 0
    for hole in holes:
        fits = [k for k, o in enumerate(objs) if k not in used and _mask_key(o) == _mask_key(hole)]
        if len(fits) != 1:
            continue
        obj = objs[fits[0]]
        used.add(fits[0])
        moved += 1
        for r, c, _ in obj.cells:
            rows[r][c] = bg
        dy, dx = hole.box[0] - obj.box[0], hole.box[1] - obj.box[1]
        for r, c, v in obj.cells:
            rows[r + dy][c + dx] = v
    if not moved:
        raise ValueError("no hole fits an object")
    return tuple(tuple(row) for row in rows)


def _base_line(obj: Obj) -> tuple[str, int]:
    """The row (for a wide object) or column (tall) holding most of the object's cells."""
    axis = "row" if obj.width >= obj.height else "col"
    counts = Counter(r if axis == "row" else c for r, c, _ in obj.cells)
    ranked = counts.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        raise ValueError("no base line")
    return axis, ranked[0][0]


def _gap(a: Obj, b: Obj) -> int:
    (at, al, ab, ar), (bt, bl, bb, br) = a.box, b.box
    return max(0, bt - ab, at - bb) + max(0, bl - ar, al - br)


def mirror_across_anchor(grid: Grid, anchor: int) -> Grid:
    """Every object not of colour ``anchor`` is reflected across the base line (the longest row or column) of
    the nearest ``anchor`` object, moving to the other side of it."""
    bg = background(grid)
    h, w = shape(grid)
    objs = objects(grid, True, True)
    anchors = [o for o in objs if o.colour == anchor]
    movers = [o for o in objs if o.colour != anchor]
    if not anchors or not movers:
        raise ValueError("no anchors or nothing to move")
    rows = [list(row) for row in grid]
    placed = []
    for m in movers:
        gaps = sorted((_gap(m, a), k) for k, a in enumerate(anchors))
        if len(gaps) > 1 and gaps[0][0] == gaps[1][0]:
            raise ValueError("two nearest anchors")
        axis, line = _base_line(anchors[gaps[0][1]])
        for r, c, v in m.cells:
            rows[r][c] = bg
            nr, nc = (2 * line - r, c) if axis == "row" else (r, 2 * line - c)
            if not (0 <= nr < h and 0 <= nc < w):
                raise ValueError("reflected off the grid")
            placed.append((nr, nc, v))
    for r, c, v in placed:
        rows[r][c] = v
    return tuple(tuple(row) for row in rows)


def mirror_across_anchor_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`mirror_across_anchor` with the anchor colour every train pair agrees on."""
    anchor = ctx.need(
        "obj_mirror_anchor",
        lambda: learn.fit(ctx.S, range(1, 10), mirror_across_anchor) if _moves_only(ctx) else None,
    )
    return mirror_across_anchor(grid, anchor)


Cells = tuple[tuple[int, int, int], ...]

TRANSFORMS: tuple[Callable[[int, int], tuple[int, int]], ...] = (
    lambda r, c: (r, c),
    lambda r, c: (r, -c),
    lambda r, c: (-r, c),
    lambda r, c: (-r, -c),
    lambda r, c: (c, r),
    lambda r, c: (c, -r),
    lambda r, c: (-c, r),
    lambda r, c: (-c, -r),
)
MAX_TEMPLATES = 4


def _variants(cells: Cells) -> list[Cells]:
    """The distinct images of ``cells`` under the 8 rotations/reflections, each shifted to start at (0, 0)."""
    out: list[Cells] = []
    for fn in TRANSFORMS:
        moved = [(*fn(r, c), v) for r, c, v in cells]
        top, left = min(r for r, _, _ in moved), min(c for _, c, _ in moved)
        norm = tuple(sorted((r - top, c - left, v) for r, c, v in moved))
        if norm not in out:
            out.append(norm)
    return out


def stamp_on_markers(grid: Grid, params: tuple[str, bool]) -> Grid:
    """Copies of the template objects (those with the most colours) placed, rotated or reflected, where the rest of the
    grid shows part of them: ``keys`` mode needs every cell of the template's minor colours to land on a cell
    of that colour (``keys_scaled``: also with the copy scaled up 2 or 3 times); ``subset`` mode needs a whole
    other object to lie on the copy. ``erase``: the templates go."""
    mode, erase_templates = params
    bg = background(grid)
    h, w = shape(grid)
    objs = objects(grid, False, True)
    most = max((len(o.colours) for o in objs), default=0)
    templates = [o for o in objs if len(o.colours) == most > 1 and o.size >= 3]
    if not templates or len(templates) > MAX_TEMPLATES:
        raise ValueError("no templates or too many")
    in_template = {(r, c) for t in templates for r, c, _ in t.cells}
    free = {(r, c): v for r, row in enumerate(grid) for c, v in enumerate(row) if v != bg and (r, c) not in in_template}
    if not free or len(free) > MAX_MOVERS:
        raise ValueError("no marks or too many")
    placements: set[Cells] = set()
    by_marks: dict[frozenset[tuple[int, int]], Cells] = {}  # the first copy (identity first) per set of marks
    for t in templates:
        body = t.colour
        key_colours = set(t.colours) - {body}
        for var in _variants(t.cells):
            if mode != "subset":
                for k in (1, 2, 3) if mode == "keys_scaled" else (1,):
                    big = [(r * k + i, c * k + j, v) for r, c, v in var for i in range(k) for j in range(k)]
                    keys = [(r, c, v) for r, c, v in big if v != body]
                    if not keys:
                        continue
                    kr, kc, kv = keys[0]
                    starts = [(r - kr, c - kc) for (r, c), v in sorted(free.items()) if v == kv]
                    for dy, dx in starts:
                        hit = frozenset((r + dy, c + dx) for r, c, _ in keys)
                        if hit in by_marks or not all(free.get((r + dy, c + dx)) == v for r, c, v in keys):
                            continue
                        if not all((r + dy, c + dx) not in free or free[(r + dy, c + dx)] == v for r, c, v in big):
                            continue
                        # the marks must be whole: no mark of a key colour right next to them is left out
                        if any(
                            (r + a, c + b) in free and (r + a, c + b) not in hit and free[(r + a, c + b)] in key_colours
                            for r, c in hit
                            for a, b in NEIGHBOURS_8
                        ):
                            continue
                        placed = tuple((r + dy, c + dx, v) for r, c, v in big)
                        if mode == "keys_scaled":  # a scaled copy may run off the grid
                            by_marks[hit] = tuple(x for x in placed if 0 <= x[0] < h and 0 <= x[1] < w)
                        elif all(0 <= r < h and 0 <= c < w for r, c, _ in placed):
                            by_marks[hit] = placed
            else:
                for o in objects(grid, False, True):
                    if o in templates or o.size < 2:
                        continue
                    r0, c0, v0 = o.cells[0]
                    for r, c, v in var:
                        if v != v0:
                            continue
                        dy, dx = r0 - r, c0 - c
                        cells = {(rr + dy, cc + dx): vv for rr, cc, vv in var}
                        if all(cells.get((rr, cc)) == vv for rr, cc, vv in o.cells) and all(
                            0 <= rr < h and 0 <= cc < w for rr, cc in cells
                        ):
                            placements.add(tuple((rr + dy, cc + dx, vv) for rr, cc, vv in var))
    placements.update(by_marks.values())
    if not placements:
        raise ValueError("no placement")
    rows = [list(row) for row in grid]
    if erase_templates:
        for r, c in in_template:
            rows[r][c] = bg
    painted: dict[tuple[int, int], int] = {}
    for cells in sorted(placements):
        for r, c, v in cells:
            if not (0 <= r < h and 0 <= c < w):
                raise ValueError("off the grid")
            if painted.setdefault((r, c), v) != v:
                raise ValueError("placements disagree")
            rows[r][c] = v
    return tuple(tuple(row) for row in rows)


def stamp_on_markers_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`stamp_on_markers` with the mode every train pair agrees on."""
    options = [(m, e) for m in ("keys", "subset", "keys_scaled") for e in (False, True)]
    params = ctx.need(
        "obj_stamp_markers",
        lambda: learn.fit(ctx.S, options, stamp_on_markers) if learn.same_shapes(ctx.S) else None,
    )
    return stamp_on_markers(grid, params)


def mirror_around_centre_object(grid: Grid) -> Grid:
    """The grid made mirror-symmetric (both axes) about the centre of the one colour whose cells are
    themselves symmetric both ways (the pivot); everything else is copied into the four quadrants."""
    bg = background(grid)
    h, w = shape(grid)
    pivots = []
    for colour in dsl.palette(grid):
        if colour == bg:
            continue
        cells = {(r, c) for r, row in enumerate(grid) for c, v in enumerate(row) if v == colour}
        top, left = min(r for r, _ in cells), min(c for _, c in cells)
        bottom, right = max(r for r, _ in cells), max(c for _, c in cells)
        if all((top + bottom - r, c) in cells and (r, left + right - c) in cells for r, c in cells):
            pivots.append((top + bottom, left + right))
    if len(pivots) != 1:
        raise ValueError("not one pivot colour")
    sr, sc = pivots[0]
    rows = [list(row) for row in grid]
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            if v == bg:
                continue
            for nr, nc in ((sr - r, c), (r, sc - c), (sr - r, sc - c)):
                if not (0 <= nr < h and 0 <= nc < w):
                    raise ValueError("mirror image off the grid")
                if rows[nr][nc] not in (bg, v):
                    raise ValueError("mirror images disagree")
                rows[nr][nc] = v
    out = tuple(tuple(row) for row in rows)
    if out == grid:
        raise ValueError("already symmetric")
    return out


def stretch_box_to_marker(grid: Grid) -> Grid:
    """A framed box (one multi-coloured rectangle) stretched toward the single marker cell until it covers
    it; the box's middle row/column repeats to fill the new space, and the marker goes."""
    bg = background(grid)
    objs = objects(grid, False, False)
    boxes = [o for o in objs if o.is_rectangle() and o.size >= 4]
    marks = [o for o in objs if o.size == 1]
    if len(boxes) != 1 or len(marks) != 1 or len(objs) != 2:
        raise ValueError("not one box and one marker")
    box, (mr, mc, _) = boxes[0], marks[0].cells[0]
    top, left, bottom, right = box.box
    if box.height < 3 or box.width < 3:
        raise ValueError("box too thin")
    ntop, nleft, nbottom, nright = min(top, mr), min(left, mc), max(bottom, mr), max(right, mc)
    rows = [list(row) for row in grid]
    rows[mr][mc] = bg

    def source(n: int, lo: int, hi: int, nlo: int, nhi: int) -> int:
        if n == nlo:
            return lo
        if n == nhi:
            return hi
        return min(max(n, lo + 1), hi - 1)

    for r in range(ntop, nbottom + 1):
        for c in range(nleft, nright + 1):
            rows[r][c] = grid[source(r, top, bottom, ntop, nbottom)][source(c, left, right, nleft, nright)]
    return tuple(tuple(row) for row in rows)


def mirror_at_marker_side(grid: Grid, new_bg: int) -> Grid:
    """One two-coloured object: its main colour is reflected across the side where its marker cells (the
    minor colour) sit, the markers taking the main colour; the background becomes ``new_bg``."""
    bg = background(grid)
    h, w = shape(grid)
    objs = objects(grid, False, True)
    if len(objs) != 1 or len(objs[0].colours) != 2:
        raise ValueError("not one two-coloured object")
    obj = objs[0]
    main = obj.colour
    cells = {(r, c): v for r, c, v in obj.cells}
    marks = [(r, c) for (r, c), v in cells.items() if v != main]
    sides = set()
    for r, c in marks:
        for dr, dc in NEIGHBOURS_4:
            if cells.get((r - dr, c - dc)) == main:
                sides.add((dr, dc))
    if len(sides) != 1:
        raise ValueError("markers on no single side")
    dr, dc = sides.pop()
    rows = [[new_bg if v == bg else v for v in row] for row in grid]
    if dr:
        k = min(r for r, _ in marks) if dr > 0 else max(r for r, _ in marks) + 1
    else:
        k = min(c for _, c in marks) if dc > 0 else max(c for _, c in marks) + 1
    for (r, c), v in cells.items():
        if v != main:
            rows[r][c] = main
            continue
        nr, nc = (2 * k - 1 - r, c) if dr else (r, 2 * k - 1 - c)
        if not (0 <= nr < h and 0 <= nc < w):
            raise ValueError("reflection off the grid")
        rows[nr][nc] = main
    return tuple(tuple(row) for row in rows)


def mark_centres_on_border(grid: Grid, params: tuple[int, str]) -> Grid:
    """A cell of ``colour`` on the grid's ``side`` edge in line with each object's middle column (or row)."""
    colour, side = params
    h, w = shape(grid)
    objs = objects(grid, True, True)
    if not objs:
        raise ValueError("no objects")
    rows = [list(row) for row in grid]
    for o in objs:
        top, left, bottom, right = o.box
        if side in ("top", "bottom"):
            if (left + right) % 2:
                raise ValueError("no middle column")
            r, c = (0 if side == "top" else h - 1), (left + right) // 2
        else:
            if (top + bottom) % 2:
                raise ValueError("no middle row")
            r, c = (top + bottom) // 2, (0 if side == "left" else w - 1)
        rows[r][c] = colour
    return tuple(tuple(row) for row in rows)


def pixels_into_block(grid: Grid) -> Grid:
    """Single cells move into the cells of the one 2×2 block, each into the block cell on its side (one per
    quadrant); the block's own colour goes."""
    bg = background(grid)
    objs = objects(grid, True, True)
    blocks = [o for o in objs if o.size == 4 and o.height == 2 and o.width == 2]
    pixels = [o for o in objs if o.size == 1]
    if len(blocks) != 1 or len(pixels) != 4 or len(objs) != 5:
        raise ValueError("not one block and four cells")
    top, left, _, _ = blocks[0].box
    rows = [list(row) for row in grid]
    filled = set()
    for o in pixels:
        r, c, v = o.cells[0]
        if r in (top, top + 1) or c in (left, left + 1):
            raise ValueError("cell not in a corner quadrant")
        cell = (top if r < top else top + 1, left if c < left else left + 1)
        if cell in filled:
            raise ValueError("two cells for one corner")
        filled.add(cell)
        rows[r][c] = bg
        rows[cell[0]][cell[1]] = v
    return tuple(tuple(row) for row in rows)


def slide_to_wall_with_bar(grid: Grid, colour: int) -> Grid:
    """One object slides (rigidly) to touch the one full-length line of the grid; a full line of ``colour``
    is drawn along the object's far side."""
    bg = background(grid)
    h, w = shape(grid)
    objs = objects(grid, False, True)
    walls = [o for o in objs if (o.height == h and o.width == 1) or (o.width == w and o.height == 1)]
    movers = [o for o in objs if o not in walls]
    if len(walls) != 1 or len(movers) != 1:
        raise ValueError("not one wall and one object")
    wall, obj = walls[0], movers[0]
    top, left, bottom, right = obj.box
    if wall.width == 1:
        k = wall.box[1]
        shift = (k - 1 - right) if k > right else (k + 1 - left)
        dy, dx = 0, shift
        bar = ("col", left + shift - 1 if k > right else right + shift + 1)
    else:
        k = wall.box[0]
        shift = (k - 1 - bottom) if k > bottom else (k + 1 - top)
        dy, dx = shift, 0
        bar = ("row", top + shift - 1 if k > bottom else bottom + shift + 1)
    axis, line = bar
    if not 0 <= line < (w if axis == "col" else h):
        raise ValueError("no room for the bar")
    rows = [list(row) for row in grid]
    for r, c, _ in obj.cells:
        rows[r][c] = bg
    for r, c, v in obj.cells:
        rows[r + dy][c + dx] = v
    for n in range(h if axis == "col" else w):
        if axis == "col":
            rows[n][line] = colour
        else:
            rows[line][n] = colour
    return tuple(tuple(row) for row in rows)


def shift_by_marker_count(grid: Grid, params: tuple[int, int, int]) -> Grid:
    """The cells of colour ``marker`` go; everything else shifts by (``sy``, ``sx``) × their number, the
    edges stretching (lines that reach an edge keep reaching it)."""
    marker, sy, sx = params
    bg = background(grid)
    h, w = shape(grid)
    n = sum(v == marker for row in grid for v in row)
    if not n or marker == bg:
        raise ValueError("no markers")
    dy, dx = sy * n, sx * n
    if abs(dy) >= h or abs(dx) >= w:
        raise ValueError("shift too far")
    clean = [[bg if v == marker else v for v in row] for row in grid]
    return tuple(
        tuple(clean[min(max(r - dy, 0), h - 1)][min(max(c - dx, 0), w - 1)] for c in range(w)) for r in range(h)
    )


def bars_below_by_colours(grid: Grid, colour: int) -> Grid:
    """Under each multi-coloured object, a bar of ``colour`` as wide as the object and as tall as its number
    of colours."""
    bg = background(grid)
    h, _ = shape(grid)
    objs = [o for o in objects(grid, False, True) if len(o.colours) > 1]
    if not objs:
        raise ValueError("no multi-coloured objects")
    rows = [list(row) for row in grid]
    for o in objs:
        top, left, bottom, right = o.box
        for r in range(bottom + 1, min(h, bottom + 1 + len(o.colours))):
            for c in range(left, right + 1):
                if rows[r][c] == bg:
                    rows[r][c] = colour
    return tuple(tuple(row) for row in rows)


def move_along_dots(grid: Grid, step: int) -> Grid:
    """The one object larger than a cell moves ``step`` cells along the row or column of single-cell dots,
    which stay where they are."""
    bg = background(grid)
    h, w = shape(grid)
    objs = objects(grid, True, True)
    movers = [o for o in objs if o.size > 1]
    dots = [o for o in objs if o.size == 1]
    if len(movers) != 1 or len(dots) < 2:
        raise ValueError("not one object on dots")
    if len({o.cells[0][0] for o in dots}) == 1:
        dy, dx = 0, step
    elif len({o.cells[0][1] for o in dots}) == 1:
        dy, dx = step, 0
    else:
        raise ValueError("dots not on one line")
    out = [list(row) for row in grid]
    for r, c, _ in movers[0].cells:
        out[r][c] = bg
    for r, c, v in movers[0].cells:
        if not (0 <= r + dy < h and 0 <= c + dx < w):
            raise ValueError("off the grid")
        out[r + dy][c + dx] = v
    return tuple(tuple(row) for row in out)


def overlay_colours_centred(grid: Grid) -> Grid:
    """Each foreground colour's cells, cut to their box, laid over each other centred on one canvas (as big
    as the largest box)."""
    bg = background(grid)
    by_colour: dict[int, list[tuple[int, int]]] = {}
    for r, row in enumerate(grid):
        for c, v in enumerate(row):
            if v != bg:
                by_colour.setdefault(v, []).append((r, c))
    if len(by_colour) < 2:
        raise ValueError("fewer than two colours")
    boxes = {
        v: (min(r for r, _ in cs), min(c for _, c in cs), max(r for r, _ in cs), max(c for _, c in cs))
        for v, cs in by_colour.items()
    }
    ch = max(b[2] - b[0] + 1 for b in boxes.values())
    cw = max(b[3] - b[1] + 1 for b in boxes.values())
    out = [[bg] * cw for _ in range(ch)]
    for v in sorted(by_colour):
        top, left, bottom, right = boxes[v]
        oy2, ox2 = ch - 1 - (bottom - top), cw - 1 - (right - left)
        if oy2 % 2 or ox2 % 2:
            raise ValueError("no whole-cell centre")
        for r, c in by_colour[v]:
            rr, cc = r - top + oy2 // 2, c - left + ox2 // 2
            if out[rr][cc] != bg:
                raise ValueError("colours overlap")
            out[rr][cc] = v
    return dsl.check(tuple(tuple(row) for row in out))


def invert_and_grow_boxes(grid: Grid) -> Grid:
    """Each square box with a one-colour rim around a one-colour core: rim and core swap colours, and the
    old rim colour grows out of each side (as long as the side) as far as the core is wide."""
    bg = background(grid)
    h, w = shape(grid)
    objs = objects(grid, False, False)
    if not objs:
        raise ValueError("no objects")
    rows = [list(row) for row in grid]
    for o in objs:
        top, left, bottom, right = o.box
        side = o.height
        if o.width != side or side < 3 or not o.is_rectangle():
            raise ValueError("not a filled square")
        rim = {
            grid[r][c]
            for r in range(top, bottom + 1)
            for c in range(left, right + 1)
            if r in (top, bottom) or c in (left, right)
        }
        core = {grid[r][c] for r in range(top + 1, bottom) for c in range(left + 1, right)}
        if len(rim) != 1 or len(core) != 1 or rim == core:
            raise ValueError("not a rim around a core")
        a, b = rim.pop(), core.pop()
        k = side - 2
        for r in range(top, bottom + 1):
            for c in range(left, right + 1):
                rows[r][c] = a if grid[r][c] == b else b
        for n in range(1, k + 1):
            for m in range(top, bottom + 1):
                for r, c in ((m, left - n), (m, right + n)):
                    if not (0 <= r < h and 0 <= c < w) or grid[r][c] != bg:
                        raise ValueError("no room to grow")
                    rows[r][c] = a
            for m in range(left, right + 1):
                for r, c in ((top - n, m), (bottom + n, m)):
                    if not (0 <= r < h and 0 <= c < w) or grid[r][c] != bg:
                        raise ValueError("no room to grow")
                    rows[r][c] = a
    return tuple(tuple(row) for row in rows)


PREDICATES: dict[str, Callable[[Obj, int], bool]] = {
    "size_eq": lambda o, k: o.size == k,
    "size_ge": lambda o, k: o.size >= k,
    "height_eq": lambda o, k: o.height == k,
    "width_eq": lambda o, k: o.width == k,
}


def learn_predicate_recolour(S: tuple[learn.Pair, ...]) -> tuple[str, str, int, int, int] | None:
    """``(kind, predicate, k, yes, no)``: the first object predicate with a threshold ``k`` such that every
    object of every pair turns ``yes`` when it holds and ``no`` (KEEP: unchanged) when not, both happening."""
    if not S or not all(_same_mask(i, o) for i, o in S):
        return None
    for kind in ("c8", "c4"):
        try:
            extracted = [(objects(i, *ROLE_KINDS[kind]), o) for i, o in S]
        except ValueError:
            continue
        outs: list[tuple[Obj, int | None]] = []
        for objs, o in extracted:
            for obj in objs:
                colours = {o[r][c] for r, c, _ in obj.cells}
                outs.append((obj, colours.pop() if len(colours) == 1 else None))
        if any(v is None for _, v in outs):
            continue
        for pred, fn in PREDICATES.items():
            for k in range(1, 10):
                found: dict[bool, set[int]] = {True: set(), False: set()}
                for obj, v in outs:
                    found[fn(obj, k)].add(KEEP if v == obj.colour else v)
                if all(len(vals) == 1 for vals in found.values()) and found[True] != found[False]:
                    return kind, pred, k, found[True].pop(), found[False].pop()
    return None


def recolour_by_predicate(grid: Grid, params: tuple[str, str, int, int, int]) -> Grid:
    """Every object recoloured ``yes`` or ``no`` (KEEP: unchanged) by an object predicate."""
    kind, pred, k, yes, no = params
    rows = [list(row) for row in grid]
    for obj in objects(grid, *ROLE_KINDS[kind]):
        value = yes if PREDICATES[pred](obj, k) else no
        if value != KEEP:
            for r, c, _ in obj.cells:
                rows[r][c] = value
    return tuple(tuple(row) for row in rows)


def recolour_by_predicate_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`recolour_by_predicate` with the predicate, threshold and colours every train pair agrees on."""
    return recolour_by_predicate(grid, ctx.need("obj_predicate", lambda: learn_predicate_recolour(ctx.S)))


def recolour_by_sighted_marker(grid: Grid, params: tuple[int, int, int, bool]) -> Grid:
    """Every object of colour ``target`` takes the one colour seen first when looking from its cells in
    direction (``dy``, ``dx``) past background and ``target`` cells (a marker in line with it); ``per_cell``:
    each cell on its own."""
    target, dy, dx, per_cell = params
    bg = background(grid)
    h, w = shape(grid)
    objs: list[Obj] = [o for o in objects(grid, True, False) if o.colour == target]
    if per_cell:
        objs = [Obj((cell,)) for o in objs for cell in o.cells]
    if not objs or target == bg:
        raise ValueError("no target objects")
    rows = [list(row) for row in grid]
    for o in objs:
        seen = set()
        for r, c, _ in o.cells:
            nr, nc = r + dy, c + dx
            while 0 <= nr < h and 0 <= nc < w and grid[nr][nc] in (bg, target):
                nr, nc = nr + dy, nc + dx
            if 0 <= nr < h and 0 <= nc < w:
                seen.add(grid[nr][nc])
        if len(seen) != 1:
            raise ValueError("no single marker in sight")
        colour = seen.pop()
        for r, c, _ in o.cells:
            rows[r][c] = colour
    return tuple(tuple(row) for row in rows)


def recolour_by_sighted_marker_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`recolour_by_sighted_marker` with the target colour and direction every train pair agrees on."""

    def options() -> list[tuple[int, int, int, bool]]:
        if not all(_same_mask(i, o) for i, o in ctx.S):
            return []
        changed = sorted(
            {a for i, o in ctx.S for ri, ro in zip(i, o, strict=True) for a, b in zip(ri, ro, strict=True) if a != b}
        )
        return [(t, dy, dx, per) for per in (False, True) for t in changed for dy, dx in NEIGHBOURS_4]

    params = ctx.need("obj_sighted", lambda: learn.fit(ctx.S, options(), recolour_by_sighted_marker))
    return recolour_by_sighted_marker(grid, params)


HALVES = ("lower", "upper", "left", "right")


def recolour_half(grid: Grid, params: tuple[str, int]) -> Grid:
    """The ``half`` (the outer half of rows or columns, the middle line excluded) of every one-coloured
    object painted ``colour``."""
    half, colour = params
    objs = objects(grid, True, False)
    if not objs:
        raise ValueError("no objects")
    rows = [list(row) for row in grid]
    for o in objs:
        top, left, bottom, right = o.box
        for r, c, _ in o.cells:
            if (
                (half == "lower" and r > bottom - o.height // 2)
                or (half == "upper" and r < top + o.height // 2)
                or (half == "left" and c < left + o.width // 2)
                or (half == "right" and c >= right - o.width // 2 + 1)
            ):
                rows[r][c] = colour
    return tuple(tuple(row) for row in rows)


def recolour_half_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`recolour_half` with the half and colour every train pair agrees on."""

    def options() -> list[tuple[str, int]]:
        if not all(_same_mask(i, o) for i, o in ctx.S):
            return []
        return [(half, colour) for half in HALVES for colour in learn.new_colours(ctx.S)]

    return recolour_half(grid, ctx.need("obj_half", lambda: learn.fit(ctx.S, options(), recolour_half)))


def shift_by_marker_count_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`shift_by_marker_count` with the marker colour (in every input, in no output) and direction every
    train pair agrees on."""

    def options() -> list[tuple[int, int, int]]:
        if not learn.same_shapes(ctx.S):
            return []
        markers = set(range(1, 10))
        for i, o in ctx.S:
            markers &= set(dsl.palette(i)) - set(dsl.palette(o))
        return [(m, sy, sx) for m in sorted(markers) for sy in (-1, 0, 1) for sx in (-1, 0, 1) if sy or sx]

    params = ctx.need("obj_marker_shift", lambda: learn.fit(ctx.S, options(), shift_by_marker_count))
    return shift_by_marker_count(grid, params)


def add_object_families(reg: Registry) -> None:
    """The object-level families of this module (ids start with ``obj_``)."""
    reg.add("obj_slide_to_anchors_learned", slide_learned)
    for erase in (False, True):
        suffix = "_move" if erase else ""
        reg.add(f"obj_stamp_template_same_shape{suffix}", lambda ctx, g, e=erase: stamp_template(g, e))
        reg.add(f"obj_stamp_template_same_box{suffix}", lambda ctx, g, e=erase: stamp_bbox_template(g, e))
    reg.add("obj_recolour_like_reference_learned", recolour_like_reference_learned)
    reg.add("obj_region_table_learned", region_table_learned)
    reg.add("obj_align_to_reference_learned", align_learned)
    reg.add("obj_largest_object_pattern_learned", largest_pattern_learned)
    reg.add("obj_gather_on_marker_learned", gather_learned)
    reg.add("obj_mirror_across_anchor_learned", mirror_across_anchor_learned)
    reg.add("obj_stamp_template_on_marks_learned", stamp_on_markers_learned)
    reg.add("obj_mirror_around_centre_object", lambda ctx, g: mirror_around_centre_object(g))
    reg.add("obj_stretch_box_to_marker", lambda ctx, g: stretch_box_to_marker(g))
    reg.add("obj_pixels_into_block_corners", lambda ctx, g: pixels_into_block(g))
    reg.add(
        "obj_slide_to_wall_with_bar_learned",
        lambda ctx, g: slide_to_wall_with_bar(
            g, ctx.need("obj_wall_bar", lambda: learn.fit(ctx.S, range(10), slide_to_wall_with_bar))
        ),
    )
    reg.add("obj_shift_by_marker_count_learned", shift_by_marker_count_learned)
    reg.add("obj_overlay_colours_centred", lambda ctx, g: overlay_colours_centred(g))
    reg.add("obj_invert_and_grow_boxes", lambda ctx, g: invert_and_grow_boxes(g))
    reg.add("obj_recolour_by_predicate_learned", recolour_by_predicate_learned)
    reg.add("obj_recolour_by_sighted_marker_learned", recolour_by_sighted_marker_learned)
    reg.add("obj_recolour_half_learned", recolour_half_learned)
    reg.add(
        "obj_bars_below_by_colour_count_learned",
        lambda ctx, g: bars_below_by_colours(
            g, ctx.need("obj_bars_below", lambda: learn.fit(ctx.S, range(10), bars_below_by_colours))
        ),
    )
    reg.add(
        "obj_move_along_dots_learned",
        lambda ctx, g: move_along_dots(
            g, ctx.need("obj_dots_step", lambda: learn.fit(ctx.S, (1, 2, 3, -1, -2, -3), move_along_dots))
        ),
    )
    border_options = [(c, side) for side in ("bottom", "top", "left", "right") for c in range(10)]
    reg.add(
        "obj_mark_centres_on_border_learned",
        lambda ctx, g: mark_centres_on_border(
            g, ctx.need("obj_centre_marks", lambda: learn.fit(ctx.S, border_options, mark_centres_on_border))
        ),
    )
    reg.add(
        "obj_mirror_at_marker_side_learned",
        lambda ctx, g: mirror_at_marker_side(
            g, ctx.need("obj_marker_mirror_bg", lambda: learn.fit(ctx.S, range(10), mirror_at_marker_side))
        ),
    )
    reg.add(
        "obj_fill_holes_with_matching_objects_learned",
        lambda ctx, g: fill_holes_with_matching(
            g,
            ctx.need(
                "obj_holes_lone",
                lambda: learn.fit(ctx.S, (False, True), fill_holes_with_matching) if _moves_only(ctx) else None,
            ),
        ),
    )
    for sel in ("rarest_colour", "largest", "smallest"):
        pre = f"keep_{sel}" if sel == "rarest_colour" else f"keep_{sel}_object_c8"
        reg.add(f"obj_role_table_c8_learned∘{pre}", role_table_after(pre, keep_selected(sel), "c8"))
    for kind in ROLE_KINDS:
        reg.add(f"obj_role_table_{kind}_learned", role_table_learned(kind))
    reg.add("obj_role_table_c8_relative_learned", relative_role_table_learned("c8"))
    reg.add("obj_complete_template_parts_learned", complete_template_parts_learned)
    reg.add("obj_recolour_by_nearest_learned", recolour_by_nearest_learned)
    reg.add("obj_project_markers_learned", project_markers_learned)


# ---------------------------------------------------------------------------------------------
# role tables whose values may be relative to the object: its own (majority) or its minor colour

OWN = -2  #: table value: the claiming object's majority colour
MINOR = -3  #: table value: the claiming object's least common colour (multi-coloured objects)


def _minor(obj: Obj) -> int:
    return min(obj.colours, key=lambda c: (obj.colours[c], c))


@lru_cache(maxsize=256)
def _relative_role_keys(
    grid: Grid, kind: str, prop: str
) -> dict[tuple[int, int], tuple[tuple[RoleKey, int, int], ...]]:
    """Every cell with a role: its ``((role, property), own colour, minor colour)`` claims, sorted."""
    objs, roles = cell_roles(grid, kind)
    fn = OBJ_PROPS[prop]
    values = [(fn(o, objs), o.colour, _minor(o)) for o in objs]
    out: dict[tuple[int, int], tuple[tuple[RoleKey, int, int], ...]] = {}
    for cell, claims in roles.items():
        found = {((role, values[n][0]), values[n][1], values[n][2]) for role, n in claims}
        out[cell] = tuple(sorted(found, key=repr))
    return out


def learn_relative_role_table(S: tuple[learn.Pair, ...], kind: str, prop: str) -> dict[RoleKey, int] | None:
    """Like :func:`learn_role_table`, a table (role, object property) → colour, KEEP, OWN or MINOR; a key whose
    cells take more than one colour must take the claiming object's own (or minor) colour in every one of them.
    At least one key must be relative (else :func:`learn_role_table` says it all), and the table must reproduce
    every pair."""
    if not S or not learn.same_shapes(S):
        return None
    seen: dict[RoleKey, list[tuple[int, int, int, int]]] = {}
    for i, o in S:
        keys = _relative_role_keys(i, kind, prop)
        for r, (ri, ro) in enumerate(zip(i, o, strict=True)):
            for c, (a, b) in enumerate(zip(ri, ro, strict=True)):
                claims = keys.get((r, c))
                if claims is None:
                    if a != b:
                        return None
                    continue
                if len(claims) == 1:
                    key, own, minor = claims[0]
                    seen.setdefault(key, []).append((a, b, own, minor))
    table: dict[RoleKey, int] = {}
    for k in sorted(seen, key=repr):
        found = seen[k]
        outs = {b for _, b, _, _ in found}
        if all(a == b for a, b, _, _ in found):
            table[k] = KEEP
        elif len(outs) == 1:
            table[k] = outs.pop()
        elif all(b == own for _, b, own, _ in found):
            table[k] = OWN
        elif all(b == minor for _, b, _, minor in found):
            table[k] = MINOR
        else:
            return None
    if not any(v in (OWN, MINOR) for v in table.values()):
        return None
    try:
        if any(apply_relative_role_table(i, kind, prop, table) != o for i, o in S):
            return None
    except ValueError:
        return None
    return table


def apply_relative_role_table(grid: Grid, kind: str, prop: str, table: dict[RoleKey, int]) -> Grid:
    """Paint every cell with a role by a relative role table (see :func:`apply_role_table`)."""
    rows = [list(row) for row in grid]
    for (r, c), claims in sorted(_relative_role_keys(grid, kind, prop).items()):
        values = set()
        for key, own, minor in claims:
            value = table.get(key)
            if value is None:
                raise NotLearned("unseen role")
            value = own if value == OWN else minor if value == MINOR else value
            if value != KEEP and value != grid[r][c]:
                values.add(value)
        if len(values) > 1:
            raise ValueError("contested cell")
        if values:
            rows[r][c] = values.pop()
    result = tuple(tuple(row) for row in rows)
    if result == grid:
        raise ValueError("no change")
    return result


RELATIVE_PROPS = tuple(p for p in OBJ_PROPS if p != "colour")


def relative_role_table_learned(kind: str) -> CandidateFn:
    """The first object property whose relative role table fits every train pair (preferring one whose table
    learned without each pair still knows that pair's keys); the table itself is learned leave-one-out."""

    def covered(S: tuple[learn.Pair, ...], n: int, prop: str) -> bool:
        table = learn_relative_role_table(S[:n] + S[n + 1 :], kind, prop)
        if table is None:
            return False
        return all(key in table for claims in _relative_role_keys(S[n][0], kind, prop).values() for key, _, _ in claims)

    def choose(S: tuple[learn.Pair, ...]) -> str | None:
        if len(S) < 2 or not learn.same_shapes(S) or len(learn.new_colours(S)) < 2:
            return None  # one new colour: an absolute table says it all
        if not _changes_near_objects(S):
            return None
        fitting = [prop for prop in RELATIVE_PROPS if learn_relative_role_table(S, kind, prop) is not None]
        for prop in fitting:
            if all(covered(S, n, prop) for n in range(len(S))):
                return prop
        return fitting[0] if fitting else None

    def run(ctx: Context, grid: Grid) -> Grid:
        prop = ctx.need(("obj_rel_role_prop", kind), lambda: choose(ctx.S))
        table = ctx.need(("obj_rel_role_table", kind), lambda: learn_relative_role_table(ctx.loo(), kind, prop))
        return apply_relative_role_table(grid, kind, prop, table)

    return run


# ---------------------------------------------------------------------------------------------
# partial copies of multi-coloured templates completed


def complete_template_parts(grid: Grid, erase: bool = False) -> Grid:
    """Copies of the template objects (those with the most colours, at least two) completed wherever the rest of
    the grid shows exactly the cells of ONE of their colours (rotated or reflected; identity first): every
    copy cell of that colour lands on a free cell of it, every other copy cell on background, and the marks
    are whole (no free cell of that colour touches them from outside)."""
    bg = background(grid)
    h, w = shape(grid)
    objs = objects(grid, False, True)
    most = max((len(o.colours) for o in objs), default=0)
    templates = [o for o in objs if len(o.colours) == most > 1 and o.size >= 3]
    if not templates or len(templates) > MAX_TEMPLATES:
        raise ValueError("no templates or too many")
    in_template = {(r, c) for t in templates for r, c, _ in t.cells}
    free = {(r, c): v for r, row in enumerate(grid) for c, v in enumerate(row) if v != bg and (r, c) not in in_template}
    if not free or len(free) > MAX_MOVERS:
        raise ValueError("no marks or too many")
    by_marks: dict[frozenset[tuple[int, int]], Cells] = {}
    for t in templates:
        for var in _variants(t.cells):
            for part in sorted({v for _, _, v in var}):
                marks = [(r, c) for r, c, v in var if v == part]
                kr, kc = marks[0]
                for (fr, fc), fv in sorted(free.items()):
                    if fv != part:
                        continue
                    dy, dx = fr - kr, fc - kc
                    hit = frozenset((r + dy, c + dx) for r, c in marks)
                    if hit in by_marks:
                        continue
                    placed = tuple((r + dy, c + dx, v) for r, c, v in var)
                    if not all(0 <= r < h and 0 <= c < w for r, c, _ in placed):
                        continue
                    if not all(
                        (free.get((r, c)) == v) if v == part else grid[r][c] == bg and (r, c) not in free
                        for r, c, v in placed
                    ):
                        continue
                    if any(
                        free.get((r + a, c + b)) == part and (r + a, c + b) not in hit
                        for r, c in hit
                        for a, b in NEIGHBOURS_8
                    ):
                        continue
                    by_marks[hit] = placed
    if not by_marks:
        raise ValueError("no placement")
    rows = [list(row) for row in grid]
    if erase:
        for r, c in in_template:
            rows[r][c] = bg
    painted: dict[tuple[int, int], int] = {}
    for cells in sorted(by_marks.values()):
        for r, c, v in cells:
            if painted.setdefault((r, c), v) != v:
                raise ValueError("placements disagree")
            rows[r][c] = v
    return tuple(tuple(row) for row in rows)


def complete_template_parts_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`complete_template_parts`, the templates kept or erased as every train pair agrees."""
    erase = ctx.need(
        "obj_template_parts",
        lambda: learn.fit(ctx.S, (False, True), complete_template_parts) if learn.same_shapes(ctx.S) else None,
    )
    return complete_template_parts(grid, erase)


# ---------------------------------------------------------------------------------------------
# objects recoloured by their nearest other object; markers projected onto an object


def recolour_by_nearest(grid: Grid, params: tuple[int, str, bool]) -> Grid:
    """Every object of colour ``target`` (every cell with ``per_cell``) takes the colour of the nearest cell of
    another non-background colour (``manhattan`` or ``chebyshev`` distance); a tie between colours raises."""
    target, metric, per_cell = params
    bg = background(grid)
    if target == bg:
        raise ValueError("target is the background")
    others = [(r, c, v) for r, row in enumerate(grid) for c, v in enumerate(row) if v not in (bg, target)]
    objs: list[Obj] = [o for o in objects(grid, True, True) if o.colour == target]
    if per_cell:
        objs = [Obj((cell,)) for o in objs for cell in o.cells]
    if not objs or not others or len(objs) * len(others) > 40 * 900:
        raise ValueError("nothing to recolour or too much")
    rows = [list(row) for row in grid]
    for o in objs:
        best: dict[int, int] = {}
        for r, c, _ in o.cells:
            for rr, cc, v in others:
                d = abs(r - rr) + abs(c - cc) if metric == "manhattan" else max(abs(r - rr), abs(c - cc))
                if d < best.get(v, 1000):
                    best[v] = d
        nearest = min(best.values())
        colours = [v for v, d in best.items() if d == nearest]
        if len(colours) != 1:
            raise ValueError("tie")
        for r, c, _ in o.cells:
            rows[r][c] = colours[0]
    return tuple(tuple(row) for row in rows)


def recolour_by_nearest_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`recolour_by_nearest` with the target colour (the one colour every pair changes), metric and
    granularity every train pair agrees on."""

    def options() -> list[tuple[int, str, bool]]:
        if not all(_same_mask(i, o) for i, o in ctx.S):
            return []
        changed = {
            a for i, o in ctx.S for ri, ro in zip(i, o, strict=True) for a, b in zip(ri, ro, strict=True) if a != b
        }
        if len(changed) != 1:
            return []
        return [(t, m, per) for t in sorted(changed) for per in (False, True) for m in ("manhattan", "chebyshev")]

    params = ctx.need("obj_nearest", lambda: learn.fit(ctx.S, options(), recolour_by_nearest))
    return recolour_by_nearest(grid, params)


def project_markers(grid: Grid, target: int) -> Grid:
    """Every lone cell (a one-cell object, not of colour ``target``) looks along its row and column: the first
    non-background cell it sees, when of colour ``target``, takes its colour."""
    bg = background(grid)
    h, w = shape(grid)
    if target == bg:
        raise ValueError("target is the background")
    lone = [o.cells[0] for o in objects(grid, True, True) if o.size == 1 and o.colour != target]
    if not lone or len(lone) > MAX_MOVERS:
        raise ValueError("no markers or too many")
    rows = [list(row) for row in grid]
    painted = 0
    for r, c, v in lone:
        for dy, dx in NEIGHBOURS_4:
            nr, nc = r + dy, c + dx
            while 0 <= nr < h and 0 <= nc < w and grid[nr][nc] == bg:
                nr, nc = nr + dy, nc + dx
            if 0 <= nr < h and 0 <= nc < w and grid[nr][nc] == target:
                if rows[nr][nc] not in (target, v):
                    raise ValueError("two markers on one cell")
                rows[nr][nc] = v
                painted += 1
    if not painted:
        raise ValueError("no marker sees the target")
    return tuple(tuple(row) for row in rows)


def project_markers_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`project_markers` with the target colour every train pair agrees on (the one colour they change)."""

    def options() -> list[int]:
        if not all(_same_mask(i, o) for i, o in ctx.S):
            return []
        return sorted(
            {a for i, o in ctx.S for ri, ro in zip(i, o, strict=True) for a, b in zip(ri, ro, strict=True) if a != b}
        )

    return project_markers(grid, ctx.need("obj_project", lambda: learn.fit(ctx.S, options(), project_markers)))
