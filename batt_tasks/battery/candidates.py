"""The candidate registry: every candidate the battery runs, with its stable id.

A candidate is a function ``(ctx, I) -> Grid`` where ``ctx`` is the :class:`~batt_tasks.battery.learn.Context`
of the sample's train pairs. Ids are stable and meaningful (``rot90``, ``colormap_learned``,
``tile_layout_learned∘crop_content``); ``f∘g`` means ``f`` applied to ``g``'s output, and a learned ``f``
then learns its parameters on the train inputs after ``g``. The registry order fixes each candidate's
number ``t_n``; new candidates go at the end of their family, and ids never change meaning.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from batt_tasks.battery import dsl, features, learn, rules
from batt_tasks.battery.completion import add_completion_families
from batt_tasks.battery.conjugate import add_conjugate_families
from batt_tasks.battery.dsl import Grid, GridFn, background, shape
from batt_tasks.battery.learn import Context, NotLearned
from batt_tasks.battery.objectmaps import add_object_families
from batt_tasks.battery.objects import SELECTORS, Obj, erase, keep_only, objects, paint
from batt_tasks.battery.partition import add_partition_families

CandidateFn = Callable[[Context, Grid], Grid]


@dataclass(frozen=True)
class Candidate:
    """One program of the battery: a stable id and the function computing its output."""

    cid: str
    fn: CandidateFn


class Registry:
    """An ordered set of candidates with unique ids."""

    def __init__(self) -> None:
        self.items: list[Candidate] = []
        self.by_id: dict[str, Candidate] = {}

    def add(self, cid: str, fn: CandidateFn) -> None:
        """Register ``fn`` under ``cid`` (ids must be unique)."""
        if cid in self.by_id:
            raise ValueError(f"duplicate candidate id {cid!r}")
        # the identity candidate itself stays: its cell_diff is the diff pass's reference
        cand = Candidate(cid, fn if cid == "identity" else refuse_identity(fn))
        self.items.append(cand)
        self.by_id[cid] = cand

    def plain(self, cid: str, fn: GridFn) -> None:
        """Register a parameterless grid function."""
        self.add(cid, lambda ctx, grid: fn(grid))


def refuse_identity(fn: CandidateFn) -> CandidateFn:
    """``fn``, except that it has no output when it returns its input unchanged while every train pair changes
    its grid (a no-op cannot be the answer of such a task; it would only take an attempt from the others)."""

    def run(ctx: Context, grid: Grid) -> Grid:
        out = fn(ctx, grid)
        if out == grid and ctx.memo("all_pairs_change", lambda: bool(ctx.S) and all(i != o for i, o in ctx.S)):
            raise NotLearned("the input unchanged, and every train pair changes its grid")
        return out

    return run


def _pre_unexercised(ctx: Context, pre_key: str, pre: CandidateFn, grid: Grid, pre_out: Grid) -> bool:
    """Whether the pre-step ``pre`` left every train input unchanged but changes the sample: the composition
    was then only ever checked as its post-step alone, and nothing supports what the pre-step does here
    (e.g. a crop to the largest object that was the whole grid in every train input)."""
    if pre_out == grid:
        return False

    def idle() -> bool:
        return bool(ctx.S) and all(pre(ctx, i) == i for i, _ in ctx.S)

    return ctx.memo(("pre_idle", pre_key), idle)


def compose(post: CandidateFn, pre: CandidateFn, pre_key: str) -> CandidateFn:
    """``post∘pre``: ``post`` runs on ``pre``'s output and learns from the train inputs mapped through ``pre``.
    No output when ``pre`` is a no-op on every train input but not on the sample (:func:`_pre_unexercised`)."""

    def run(ctx: Context, grid: Grid) -> Grid:
        inner = ctx.through(pre_key, pre)
        pre_out = pre(ctx, grid)
        if pre_out != grid and all(pi == i for (pi, _), (i, _) in zip(inner.S, ctx.S, strict=True)):
            raise NotLearned(f"{pre_key} never changed a train input")
        return post(inner, pre_out)

    return run


def plain_after(post: GridFn, pre: GridFn, pre_key: str) -> CandidateFn:
    """``post∘pre`` for parameterless steps, with the same refusal as :func:`compose`."""

    def run(ctx: Context, grid: Grid) -> Grid:
        pre_out = pre(grid)
        if _pre_unexercised(ctx, pre_key, lambda c, g: pre(g), grid, pre_out):
            raise NotLearned(f"{pre_key} never changed a train input")
        return post(pre_out)

    return run


# ---------------------------------------------------------------------------------------------
# learned families


def colormap_learned(ctx: Context, grid: Grid) -> Grid:
    """Recolour through the cell-wise colour map every train pair agrees on; no output when the sample has a
    colour the train inputs showed in fewer than two cells (one cell is no evidence for a map entry)."""
    mapping = ctx.need("colour_map", lambda: learn.learn_colour_map(ctx.S))
    support = ctx.memo("colour_map_support", lambda: Counter(v for i, _ in ctx.S for row in i for v in row))
    if any(support[v] < 2 for row in grid for v in row):
        raise NotLearned("a colour the colour map has seen in fewer than two cells")
    return dsl.recolour(grid, mapping)


def upscale_learned(ctx: Context, grid: Grid) -> Grid:
    """Scale up by the factors the train pairs agree on."""
    fy, fx = ctx.need("scale", lambda: learn.learn_scale(ctx.S))
    return dsl.upscale(grid, fy, fx)


def downscale_learned(ctx: Context, grid: Grid) -> Grid:
    """Scale down (top-left cell of each block) by the factors the train pairs agree on."""
    fy, fx = ctx.need("downscale", lambda: learn.learn_downscale(ctx.S))
    return dsl.downscale(grid, fy, fx)


def downscale_majority_learned(ctx: Context, grid: Grid) -> Grid:
    """Scale down taking each block's majority non-background colour."""
    fy, fx = ctx.need("downscale", lambda: learn.learn_downscale(ctx.S))
    h, w = shape(grid)
    if h % fy or w % fx:
        raise ValueError("does not divide")
    bg = background(grid)
    rows = []
    for r in range(0, h, fy):
        row = []
        for c in range(0, w, fx):
            counts = Counter(v for rr in grid[r : r + fy] for v in rr[c : c + fx] if v != bg)
            row.append(min(counts, key=lambda k: (-counts[k], k)) if counts else bg)
        rows.append(tuple(row))
    return tuple(rows)


def tile_learned(ctx: Context, grid: Grid) -> Grid:
    """Repeat the grid by the factors the train pairs agree on."""
    fy, fx = ctx.need("scale", lambda: learn.learn_scale(ctx.S))
    return dsl.tile(grid, fy, fx)


def tile_layout_learned(ctx: Context, grid: Grid) -> Grid:
    """Blocks of transformed copies (mirror tilings, rotations...) laid out as the train pairs show."""
    layout = ctx.need("tile_layout", lambda: learn.learn_tile_layout(ctx.S))
    return learn.apply_tile_layout(layout, grid)


def fractal(grid: Grid, invert: bool = False) -> Grid:
    """Each cell becomes a copy of the whole grid when it is non-background (or background, when ``invert``)."""
    bg = background(grid)
    h, w = shape(grid)
    if h * h > dsl.MAX_SIDE or w * w > dsl.MAX_SIDE:
        raise ValueError("too large")
    empty = tuple((bg,) * w for _ in range(h))
    blocks = [[grid if (v != bg) != invert else empty for v in row] for row in grid]
    return dsl.check(tuple(tuple(v for b in brow for v in b[r]) for brow in blocks for r in range(h)))


def fractal_learned(invert: bool) -> CandidateFn:
    """:func:`fractal` as a candidate."""

    def run(ctx: Context, grid: Grid) -> Grid:
        return fractal(grid, invert)

    return run


def upscale_by_colours(grid: Grid) -> Grid:
    """Scale up by the number of non-background colours."""
    bg = background(grid)
    n = len([c for c in dsl.palette(grid) if c != bg])
    return dsl.upscale(grid, n)


def fill_enclosed_learned(diagonal: bool) -> CandidateFn:
    """Fill enclosed background with the colour the train pairs agree on."""

    def run(ctx: Context, grid: Grid) -> Grid:
        colour = ctx.need(
            ("fill_colour", diagonal),
            lambda: learn.fit(ctx.S, learn.new_colours(ctx.S), lambda i, c: dsl.fill_enclosed(i, c, None, diagonal)),
        )
        return dsl.fill_enclosed(grid, colour, None, diagonal)

    return run


def mask_colour(S: tuple[learn.Pair, ...]) -> int | None:
    """The colour every input has and no output has (a "hole" to repair), or None."""
    in_all = set(range(10))
    for i, _ in S:
        in_all &= set(dsl.palette(i))
    in_out = {v for _, o in S for row in o for v in row}
    options = sorted(in_all - in_out)
    return options[0] if len(options) == 1 else None


def mask_colour_loose(S: tuple[learn.Pair, ...]) -> int | None:
    """The one colour some input has and no output has, or None."""
    in_any = {v for i, _ in S for row in i for v in row}
    in_out = {v for _, o in S for row in o for v in row}
    options = sorted(in_any - in_out)
    return options[0] if len(options) == 1 else None


def _mask(ctx: Context, grid: Grid) -> int:
    """The colour that hides what a repair candidate must restore, learned from the train pairs."""
    m = ctx.memo("mask", lambda: mask_colour(ctx.S))
    if m is None:
        m = ctx.memo("mask_loose", lambda: mask_colour_loose(ctx.S))
    if m is None:
        # same-shape tasks where the output keeps the grid: the colour replaced in every pair
        m = ctx.need("mask_same", lambda: _replaced_colour(ctx.S))
    return m


def _replaced_colour(S: tuple[learn.Pair, ...]) -> int | None:
    gone: set[int] | None = None
    for i, o in S:
        if shape(i) != shape(o):
            return None
        here = {a for ri, ro in zip(i, o, strict=False) for a, b in zip(ri, ro, strict=False) if a != b}
        gone = here if gone is None else gone & here
    return min(gone) if gone and len(gone) == 1 else None


def complete_symmetry_learned(ctx: Context, grid: Grid) -> Grid:
    """Fill the learned mask colour from the grid's own mirror symmetries."""
    return dsl.complete_symmetry(grid, _mask(ctx, grid))


def masked_region_learned(fill: Callable[[Grid, int], Grid]) -> CandidateFn:
    """What was hidden under the mask colour's bounding box, once the grid is repaired by ``fill``."""

    def run(ctx: Context, grid: Grid) -> Grid:
        m = _mask(ctx, grid)
        box = dsl.bbox(tuple(tuple(1 if v == m else 0 for v in row) for row in grid), 0)
        if box is None:
            raise ValueError("no mask")
        return dsl.crop(fill(grid, m), *box)

    return run


def repair_periodic_learned(ctx: Context, grid: Grid) -> Grid:
    """Fill the learned mask colour from the grid's periodic pattern."""
    return dsl.repair_periodic(grid, _mask(ctx, grid))


def extend_periodic_learned(ctx: Context, grid: Grid) -> Grid:
    """Continue the input's periodic pattern to the output shape the train pairs imply."""
    rule = ctx.need("shape_rule", lambda: learn.learn_shape_rule(ctx.S))
    return dsl.extend_periodic(grid, *learn.apply_shape_rule(rule, grid))


def _fit_colour(ctx: Context, key: object, apply: Callable[[Grid, int], Grid]) -> int:
    return ctx.need(("fit_colour", key), lambda: learn.fit(ctx.S, learn.output_colours(ctx.S), apply))


def combine_learned(axis: str, op: str) -> CandidateFn:
    """Split into two halves (by separator or evenly) and combine their masks with ``op``, colour learned."""

    def apply(grid: Grid, colour: int) -> Grid:
        a, b = dsl.split_parts(grid, axis, 2)
        return dsl.combine(a, b, op, colour, 0)

    def run(ctx: Context, grid: Grid) -> Grid:
        return apply(grid, _fit_colour(ctx, ("combine", axis, op), apply))

    return run


def overlay_parts(axis: str, n: int, reverse: bool) -> GridFn:
    """Split into ``n`` parts and stack them, later parts painted over earlier ones."""

    def run(grid: Grid) -> Grid:
        parts = dsl.split_parts(grid, axis, n)
        if reverse:
            parts = parts[::-1]
        parts = list(parts)
        out = parts[0]
        for p in parts[1:]:
            out = dsl.overlay(out, p, 0)
        return out

    return run


def select_cell(how: str) -> GridFn:
    """Split by separator lines and return one cell: the ``most``/``least`` filled, or the ``unique`` one."""

    def run(grid: Grid) -> Grid:
        cells = [c for row in dsl.split_cells(grid) for c in row]
        if len(cells) < 2:
            raise ValueError("one cell")
        bg = background(grid)
        filled = [sum(v != bg for row in c for v in row) for c in cells]
        if how == "most":
            key = filled
        elif how == "least":
            key = [-f for f in filled]
        elif how == "colours":
            key = [len(dsl.palette(c)) for c in cells]
        else:
            counts = Counter(cells)
            lone = [c for c in cells if counts[c] == 1]
            if len(lone) != 1:
                raise ValueError("no unique cell")
            return lone[0]
        best = max(key)
        if key.count(best) != 1:
            raise ValueError("tie")
        return cells[key.index(best)]

    return run


def cells_to_pixels(grid: Grid) -> Grid:
    """Each separator cell becomes one pixel of its majority non-background colour."""
    bg = background(grid)
    rows = []
    for row in dsl.split_cells(grid):
        out = []
        for cell in row:
            counts = Counter(v for r in cell for v in r if v != bg)
            out.append(min(counts, key=lambda k: (-counts[k], k)) if counts else bg)
        rows.append(tuple(out))
    return tuple(rows)


def connect_learned(axes: str) -> CandidateFn:
    """Join same-coloured cells on a row/column with lines of the learned colour."""

    def apply(grid: Grid, colour: int) -> Grid:
        return dsl.connect_pairs(grid, None, colour, axes)

    def run(ctx: Context, grid: Grid) -> Grid:
        return apply(grid, _fit_colour(ctx, ("connect", axes), apply))

    return run


def local_rule(window: str) -> CandidateFn:
    """Each output cell from its input neighbourhood, by a table learned leave-one-out."""

    def run(ctx: Context, grid: Grid) -> Grid:
        table = ctx.need(("local", window), lambda: learn.learn_local_rule(ctx.loo(), window))
        return learn.apply_local_rule(table, grid, window)

    return run


def constant_output(ctx: Context, grid: Grid) -> Grid:
    """The output every train pair has."""
    outs = {o for _, o in ctx.S}
    if len(outs) != 1 or len(ctx.S) < 2:
        raise NotLearned("outputs differ")
    return outs.pop()


COLOUR_PICKS: dict[str, Callable[[Grid], int]] = {
    "majority": dsl.most_common_colour,
    "minority": dsl.least_common_colour,
    "majority_fg": lambda g: dsl.most_common_colour(_fg_only(g)),
    "minority_fg": lambda g: dsl.least_common_colour(_fg_only(g)),
    "largest_object": lambda g: SELECTORS["largest"](objects(g, True, True)).colour,
    "smallest_object": lambda g: SELECTORS["smallest"](objects(g, True, True)).colour,
}


def _fg_only(grid: Grid) -> Grid:
    bg = background(grid)
    fg = tuple(v for row in grid for v in row if v != bg)
    if not fg:
        raise ValueError("no foreground")
    return (fg,)


def fill_shape_with(pick: Callable[[Grid], int]) -> CandidateFn:
    """A grid of the learned output shape filled with the picked colour."""

    def run(ctx: Context, grid: Grid) -> Grid:
        rule = ctx.need("shape_rule", lambda: learn.learn_shape_rule(ctx.S))
        h, w = learn.apply_shape_rule(rule, grid)
        return dsl.check(tuple((pick(grid),) * w for _ in range(h)))

    return run


def count_row(what: str, vertical: bool) -> CandidateFn:
    """A 1×N row (or N×1 column) of the learned colour, N = foreground cells or objects."""

    def apply(grid: Grid, colour: int) -> Grid:
        bg = background(grid)
        n = sum(v != bg for row in grid for v in row) if what == "cells" else len(objects(grid, True, True))
        if n < 1:
            raise ValueError("nothing to count")
        return dsl.check(((colour,),) * n if vertical else ((colour,) * n,))

    def run(ctx: Context, grid: Grid) -> Grid:
        colour = ctx.need(
            ("count_colour", what, vertical),
            lambda: learn.fit(ctx.S, learn.output_colours(ctx.S), apply),
        )
        return apply(grid, colour)

    return run


def count_row_own(grid: Grid) -> Grid:
    """A 1×N row of the foreground colour, N = number of foreground cells (single foreground colour)."""
    bg = background(grid)
    fg = [v for row in grid for v in row if v != bg]
    if not fg or len(set(fg)) != 1:
        raise ValueError("not one foreground colour")
    return dsl.check(((fg[0],) * len(fg),))


# object edits


OBJECT_KINDS: dict[str, tuple[bool, bool]] = {  # id suffix -> (univalued, diagonal)
    "c4": (True, False),
    "c8": (True, True),
    "multi_c4": (False, False),
    "multi_c8": (False, True),
}


def crop_object(sel: str, kind: str, solo: bool) -> GridFn:
    """Crop to the object chosen by selector ``sel`` among the ``kind`` objects (``solo``: the object alone)."""
    univalued, diagonal = OBJECT_KINDS[kind]

    def run(grid: Grid) -> Grid:
        obj = SELECTORS[sel](objects(grid, univalued, diagonal))
        return obj.as_grid(background(grid)) if solo else dsl.crop(grid, *obj.box)

    return run


def keep_object(sel: str, kind: str) -> GridFn:
    """Erase every object but the one chosen by ``sel``."""
    univalued, diagonal = OBJECT_KINDS[kind]

    def run(grid: Grid) -> Grid:
        obj = SELECTORS[sel](objects(grid, univalued, diagonal))
        return keep_only(grid, [obj], background(grid))

    return run


def remove_object(sel: str, kind: str) -> GridFn:
    """Erase the object chosen by ``sel``."""
    univalued, diagonal = OBJECT_KINDS[kind]

    def run(grid: Grid) -> Grid:
        obj = SELECTORS[sel](objects(grid, univalued, diagonal))
        return erase(grid, [obj], background(grid))

    return run


def remove_small(max_size: int, kind: str) -> GridFn:
    """Erase every object of at most ``max_size`` cells (noise removal)."""
    univalued, diagonal = OBJECT_KINDS[kind]

    def run(grid: Grid) -> Grid:
        objs = objects(grid, univalued, diagonal)
        small = [o for o in objs if o.size <= max_size]
        if not small or len(small) == len(objs):
            raise ValueError("nothing to remove")
        return erase(grid, small, background(grid))

    return run


def crop_object_learned(ctx: Context, grid: Grid) -> Grid:
    """Crop to the object picked by whichever selector (and object kind, crop mode) explains every train pair."""

    def learn_choice() -> tuple[str, str, bool] | None:
        options = []
        for kind in OBJECT_KINDS:
            for sel in SELECTORS:
                # the selected object's box must have the output's shape in every pair (cheap test first)
                try:
                    picked = [SELECTORS[sel](objects(i, *OBJECT_KINDS[kind])) for i, _ in ctx.S]
                except ValueError:
                    continue
                if all((obj.height, obj.width) == shape(o) for obj, (_, o) in zip(picked, ctx.S, strict=True)):
                    options.extend([(sel, kind, False), (sel, kind, True)])
        fitting = []
        for option in options:
            if learn.fit(ctx.S, [option], lambda i, p: crop_object(*p)(i)) is not None:
                fitting.append(option)
        return tuple(fitting) or None

    choices = ctx.need("crop_selectors", learn_choice)
    # every selector that explains the pairs must pick the same crop here: ambiguity means no answer
    outputs = []
    for choice in choices[:MAX_CROP_CHOICES]:
        try:
            outputs.append(crop_object(*choice)(grid))
        except ValueError:
            continue
    if not outputs or any(out != outputs[0] for out in outputs[1:]):
        raise NotLearned("the fitting selectors disagree on this input")
    return outputs[0]


MAX_CROP_CHOICES = 24  #: fitting crop selectors compared on the sample, at most


def recolour_selected_learned(sel: str, kind: str) -> CandidateFn:
    """Paint the object chosen by ``sel`` in the colour the train pairs agree on."""
    univalued, diagonal = OBJECT_KINDS[kind]

    def apply(grid: Grid, colour: int) -> Grid:
        return paint(grid, [SELECTORS[sel](objects(grid, univalued, diagonal))], colour)

    def run(ctx: Context, grid: Grid) -> Grid:
        return apply(grid, _fit_colour(ctx, ("recolour_sel", sel, kind), apply))

    return run


def _has_hole(obj: Obj) -> bool:
    return bool(dsl.enclosed_cells(obj.as_grid(-1), -1))


def _extreme(obj: Obj, objs: tuple[Obj, ...]) -> str:
    sizes = [o.size for o in objs]
    if obj.size == max(sizes) and sizes.count(obj.size) == 1:
        return "largest"
    if obj.size == min(sizes) and sizes.count(obj.size) == 1:
        return "smallest"
    return "other"


OBJECT_KEYS: dict[str, Callable[[Obj, tuple[Obj, ...], Grid], object]] = {
    "size": lambda o, objs, g: o.size,
    "size_rank": lambda o, objs, g: sorted({x.size for x in objs}, reverse=True).index(o.size),
    "size_rank_asc": lambda o, objs, g: sorted({x.size for x in objs}).index(o.size),
    "extreme": lambda o, objs, g: _extreme(o, objs),
    "is_single": lambda o, objs, g: o.size == 1,
    "shape": lambda o, objs, g: o.shape_key,
    "height": lambda o, objs, g: o.height,
    "width": lambda o, objs, g: o.width,
    "colour_size": lambda o, objs, g: (o.colour, o.size),
    "is_rectangle": lambda o, objs, g: o.is_rectangle(),
    "touches_border": lambda o, objs, g: (
        o.box[0] == 0 or o.box[1] == 0 or o.box[2] == len(g) - 1 or o.box[3] == len(g[0]) - 1
    ),
    "holes": lambda o, objs, g: len(dsl.enclosed_cells(o.as_grid(-1), -1)),
    "has_hole": lambda o, objs, g: _has_hole(o),
}


def bg_regions(grid: Grid) -> tuple[Obj, ...]:
    """Connected regions (4-wise) of background cells, as objects."""
    bg = background(grid)
    marked = tuple(tuple(1 if v == bg else 0 for v in row) for row in grid)
    regions = objects(marked, True, False, 0)
    return tuple(Obj(tuple((r, c, bg) for r, c, _ in reg.cells)) for reg in regions)


EXTRACTORS: dict[str, Callable[[Grid], tuple[Obj, ...]]] = {
    **{kind: (lambda g, u=u, d=d: objects(g, u, d)) for kind, (u, d) in OBJECT_KINDS.items()},
    "bg_regions": bg_regions,
}


def learn_object_recolour(S: tuple[learn.Pair, ...], name: str, kind: str) -> dict[object, int] | None:
    """A table object-property → output colour, from pairs where only whole objects change colour."""
    extract = EXTRACTORS[kind]
    table: dict[object, int] = {}
    if not S:
        return None
    for i, o in S:
        if shape(i) != shape(o):
            return None
        objs = extract(i)
        covered = paint(i, objs, -1)
        # outside the objects nothing may change
        for ri, ro, rc in zip(i, o, covered, strict=True):
            for a, b, m in zip(ri, ro, rc, strict=True):
                if m != -1 and a != b:
                    return None
        for obj in objs:
            colours = {o[r][c] for r, c, _ in obj.cells}
            if len(colours) != 1:
                return None
            colour = colours.pop()
            key = OBJECT_KEYS[name](obj, objs, i)
            if table.setdefault(key, colour) != colour:
                return None
    if len(set(table.values())) < 2 and all(v == next(iter(table.values())) for v in table.values()):
        # one colour for everything is colormap's job; a table must discriminate
        return None
    return table


def recolour_objects_learned(name: str, kind: str) -> CandidateFn:
    """Recolour each object by a property → colour table learned leave-one-out."""
    extract = EXTRACTORS[kind]

    def run(ctx: Context, grid: Grid) -> Grid:
        table = ctx.need(("obj_recolour", name, kind), lambda: learn_object_recolour(ctx.loo(), name, kind))
        objs = extract(grid)
        rows = [list(r) for r in grid]
        for obj in objs:
            key = OBJECT_KEYS[name](obj, objs, grid)
            if key not in table:
                raise NotLearned("unseen object key")
            for r, c, _ in obj.cells:
                rows[r][c] = table[key]
        return tuple(tuple(r) for r in rows)

    return run


def _fg_count(grid: Grid) -> int:
    bg = background(grid)
    return sum(v != bg for row in grid for v in row)


def _fg_mask(grid: Grid) -> Grid:
    bg = background(grid)
    return tuple(tuple(int(v != bg) for v in row) for row in grid)


GRID_FEATURES: dict[str, Callable[[Grid], object]] = {
    "fg_count": _fg_count,
    "colour_count": lambda g: len(dsl.palette(g)),
    "fg_colours": lambda g: tuple(c for c in dsl.palette(g) if c != background(g)),
    "majority_fg": lambda g: dsl.most_common_colour(_fg_only(g)),
    "mask": _fg_mask,
    "symmetric": lambda g: (g == dsl.flip_h(g), g == dsl.flip_v(g)),
    "object_count": lambda g: len(objects(g, True, True)),
}


def output_by_feature(name: str) -> CandidateFn:
    """The output of the train pairs whose input has the same feature value (a table learned leave-one-out)."""
    feature = GRID_FEATURES[name]

    def learn_table(S: tuple[learn.Pair, ...]) -> dict[object, Grid] | None:
        table: dict[object, Grid] = {}
        for i, o in S:
            if table.setdefault(feature(i), o) != o:
                return None
        return table if len(set(table.values())) > 1 else None

    def run(ctx: Context, grid: Grid) -> Grid:
        table = ctx.need(("out_by", name), lambda: learn_table(ctx.loo()))
        key = feature(grid)
        if key not in table:
            raise NotLearned("unseen feature value")
        return table[key]

    return run


def cells_to_pixels_by_count(ctx: Context, grid: Grid) -> Grid:
    """Each separator cell becomes a pixel whose colour a (foreground count → colour) table gives."""

    def key_grid(g: Grid) -> list[list[int]]:
        bg = background(g)
        return [[sum(v != bg for r in cell for v in r) for cell in row] for row in dsl.split_cells(g)]

    def learn_table(S: tuple[learn.Pair, ...]) -> dict[int, int] | None:
        table: dict[int, int] = {}
        for i, o in S:
            keys = key_grid(i)
            if (len(keys), len(keys[0])) != shape(o):
                return None
            for krow, orow in zip(keys, o, strict=True):
                for k, v in zip(krow, orow, strict=True):
                    if table.setdefault(k, v) != v:
                        return None
        return table

    table = ctx.need("cells_count_table", lambda: learn_table(ctx.loo()))
    try:
        return tuple(tuple(table[k] for k in row) for row in key_grid(grid))
    except KeyError as exc:
        raise NotLearned("unseen count") from exc


def fractal_where(pick: str) -> CandidateFn:
    """Self-similar expansion keeping a copy under the cells of one colour (the majority, or a learned one)."""

    def apply(grid: Grid, colour: int) -> Grid:
        bg = background(grid)
        h, w = shape(grid)
        if h * h > dsl.MAX_SIDE or w * w > dsl.MAX_SIDE:
            raise ValueError("too large")
        empty = tuple((bg,) * w for _ in range(h))
        blocks = [[grid if v == colour else empty for v in row] for row in grid]
        return tuple(tuple(v for b in brow for v in b[r]) for brow in blocks for r in range(h))

    def run(ctx: Context, grid: Grid) -> Grid:
        if pick == "majority":
            return apply(grid, dsl.most_common_colour(grid))
        if pick == "minority":
            return apply(grid, dsl.least_common_colour(grid))
        return apply(grid, _fit_colour(ctx, "fractal_where", apply))

    return run


def denoise_learned(ctx: Context, grid: Grid) -> Grid:
    """Replace the learned noise colour by its neighbours' majority colour."""
    return dsl.denoise_colour(grid, _mask(ctx, grid))


def crop_colour_pick(pick: str) -> CandidateFn:
    """Crop to the bounding box of one colour: the least/most common foreground colour or a learned one."""

    def run(ctx: Context, grid: Grid) -> Grid:
        if pick == "learned":
            colour = ctx.need(
                "crop_colour",
                lambda: learn.fit(ctx.S, range(10), dsl.crop_colour),
            )
        else:
            colour = COLOUR_PICKS[pick](grid)
        return dsl.crop_colour(grid, colour)

    return run


def crop_inside_frame(grid: Grid) -> Grid:
    """The inside of the largest one-colour rectangular frame (an object that is exactly a box outline)."""
    frames = []
    for obj in objects(grid, True, False):
        if obj.height < 3 or obj.width < 3:
            continue
        if obj.size == 2 * (obj.height + obj.width) - 4:
            top, left, bottom, right = obj.box
            frames.append((obj.area, obj.box))
    if not frames:
        raise ValueError("no frame")
    frames.sort(reverse=True)
    if len(frames) > 1 and frames[0][0] == frames[1][0]:
        raise ValueError("tie")
    top, left, bottom, right = frames[0][1]
    return dsl.crop(grid, top + 1, left + 1, bottom - 1, right - 1)


@lru_cache(maxsize=64)
def local_iso_keys(grid: Grid, counts: bool) -> tuple[tuple[object, ...], ...]:
    """Rotation-invariant neighbourhood keys: the cell, its 4 side neighbours' and 4 corner neighbours' colours
    (as sorted sets, or as sorted (colour, count) pairs), cells outside the grid counting as SENTINEL."""
    h, w = shape(grid)
    out = []
    for r in range(h):
        row = []
        for c in range(w):
            side = [
                grid[r + dr][c + dc] if 0 <= r + dr < h and 0 <= c + dc < w else learn.SENTINEL
                for dr, dc in dsl.NEIGHBOURS_4
            ]
            corner = [
                grid[r + dr][c + dc] if 0 <= r + dr < h and 0 <= c + dc < w else learn.SENTINEL
                for dr, dc in dsl.NEIGHBOURS_8[4:]
            ]
            if counts:
                row.append((grid[r][c], tuple(sorted(Counter(side).items())), tuple(sorted(Counter(corner).items()))))
            else:
                row.append((grid[r][c], tuple(sorted(set(side))), tuple(sorted(set(corner)))))
        out.append(tuple(row))
    return tuple(out)


def local_iso_rule(counts: bool) -> CandidateFn:
    """Each output cell from a rotation-invariant description of its neighbourhood, learned leave-one-out."""

    def learn_table(S: tuple[learn.Pair, ...]) -> dict[object, int] | None:
        if not S or not learn.same_shapes(S):
            return None
        table: dict[object, int] = {}
        for i, o in S:
            for krow, orow in zip(local_iso_keys(i, counts), o, strict=True):
                for k, v in zip(krow, orow, strict=True):
                    if table.setdefault(k, v) != v:
                        return None
        return table

    def run(ctx: Context, grid: Grid) -> Grid:
        table = ctx.need(("local_iso", counts), lambda: learn_table(ctx.loo()))
        try:
            return tuple(tuple(table[k] for k in row) for row in local_iso_keys(grid, counts))
        except KeyError as exc:
            raise NotLearned("unseen neighbourhood") from exc

    return run


def local_rule_augmented(ctx: Context, grid: Grid) -> Grid:
    """The 3×3 local rule learned leave-one-out from the train pairs and their 8 rotations/reflections."""

    def pairs() -> tuple[learn.Pair, ...]:
        return tuple((fn(i), fn(o)) for i, o in ctx.loo() for fn in dsl.GEOMETRIC.values())

    table = ctx.need("local_aug", lambda: learn.learn_local_rule(pairs(), "3x3"))
    return learn.apply_local_rule(table, grid, "3x3")


def crop_window_learned(ctx: Context, grid: Grid) -> Grid:
    """The fixed-size window at the position (from a corner) that explains every train pair."""
    out_shape = ctx.need("out_shape", lambda: learn.learn_output_shape(ctx.S))
    oh, ow = out_shape

    def window(i: Grid, p: tuple[int, int, int]) -> Grid:
        corner, dr, dc = p
        h, w = shape(i)
        top = dr if corner in (0, 1) else h - oh - dr
        left = dc if corner in (0, 2) else w - ow - dc
        if top < 0 or left < 0 or top + oh > h or left + ow > w:
            raise ValueError("outside")
        return dsl.crop(i, top, left, top + oh - 1, left + ow - 1)

    def options() -> list[tuple[int, int, int]]:
        h = min(shape(i)[0] for i, _ in ctx.S)
        w = min(shape(i)[1] for i, _ in ctx.S)
        return [(k, dr, dc) for k in range(4) for dr in range(max(0, h - oh) + 1) for dc in range(max(0, w - ow) + 1)]

    pos = ctx.need("window_pos", lambda: learn.fit(ctx.S, options(), window))
    return window(grid, pos)


def mirror_quad(grid: Grid) -> Grid:
    """The grid and its mirror images as a 2×2 block (top-left is the grid)."""
    top = dsl.hconcat(grid, dsl.flip_h(grid))
    return dsl.vconcat(top, dsl.flip_v(top))


# ---------------------------------------------------------------------------------------------
# the registry


def build() -> tuple[Candidate, ...]:
    """All candidates, in their fixed order."""
    reg = Registry()
    geo = dsl.GEOMETRIC
    for name, fn in geo.items():
        reg.plain(name, fn)

    # colours
    reg.add("colormap_learned", colormap_learned)
    for name in geo:
        if name != "identity":
            reg.add(f"colormap_learned∘{name}", compose(colormap_learned, _plain(geo[name]), name))
    reg.plain("fill_majority", lambda g: dsl.fill_all(g, dsl.most_common_colour(g)))
    for pname, pick in COLOUR_PICKS.items():
        reg.add(f"fill_output_shape_{pname}", fill_shape_with(pick))

    # crops
    reg.plain("crop_content", dsl.crop_to_content)
    reg.plain("crop_nonzero", lambda g: dsl.crop_to_content(g, 0))
    for name in geo:
        if name != "identity":
            reg.plain(f"crop_content∘{name}", lambda g, fn=geo[name]: dsl.crop_to_content(fn(g)))
    for kind in OBJECT_KINDS:
        for sel in SELECTORS:
            reg.plain(f"crop_{sel}_object_{kind}", crop_object(sel, kind, False))
            reg.plain(f"crop_{sel}_object_{kind}_solo", crop_object(sel, kind, True))
    reg.add("crop_object_learned", crop_object_learned)
    reg.add("crop_window_learned", crop_window_learned)

    # scaling and tiling
    reg.add("upscale_learned", upscale_learned)
    reg.add("downscale_learned", downscale_learned)
    reg.add("downscale_majority_learned", downscale_majority_learned)
    reg.add("tile_learned", tile_learned)
    reg.add("tile_layout_learned", tile_layout_learned)
    reg.add("fractal", fractal_learned(False))
    reg.add("fractal_inverse", fractal_learned(True))
    reg.plain("upscale_by_colour_count", upscale_by_colours)
    for n in (2, 3, 4):
        reg.plain(f"upscale_{n}x", lambda g, n=n: dsl.upscale(g, n))
        reg.plain(f"tile_{n}x{n}", lambda g, n=n: dsl.tile(g, n, n))
    for n in (2, 3):
        reg.plain(f"downscale_{n}x", lambda g, n=n: dsl.downscale(g, n))

    # mirroring and concatenation
    reg.plain("mirror_h", lambda g: dsl.hconcat(g, dsl.flip_h(g)))
    reg.plain("mirror_h_left", lambda g: dsl.hconcat(dsl.flip_h(g), g))
    reg.plain("mirror_v", lambda g: dsl.vconcat(g, dsl.flip_v(g)))
    reg.plain("mirror_v_top", lambda g: dsl.vconcat(dsl.flip_v(g), g))
    reg.plain("mirror_4", mirror_quad)
    reg.plain("concat_h_self", lambda g: dsl.hconcat(g, g))
    reg.plain("concat_v_self", lambda g: dsl.vconcat(g, g))

    # shifting and gravity
    for direction in ("down", "up", "left", "right"):
        reg.plain(f"gravity_{direction}", lambda g, d=direction: dsl.gravity(g, d))
    for name, (dy, dx) in {"down": (1, 0), "up": (-1, 0), "left": (0, -1), "right": (0, 1)}.items():
        reg.plain(f"shift_{name}", lambda g, dy=dy, dx=dx: dsl.shift(g, dy, dx))
        reg.plain(f"roll_{name}", lambda g, dy=dy, dx=dx: dsl.shift(g, dy, dx, wrap=True))

    # regions, symmetry, periodic patterns
    reg.add("fill_enclosed_learned", fill_enclosed_learned(False))
    reg.add("fill_enclosed_diag_learned", fill_enclosed_learned(True))
    for kind in dsl.SYMMETRIES:
        reg.plain(f"symmetrise_{kind}", lambda g, k=kind: dsl.symmetrise(g, k))
    reg.add("complete_symmetry_learned", complete_symmetry_learned)
    reg.add("masked_region_symmetry_learned", masked_region_learned(dsl.complete_symmetry))
    reg.add("repair_periodic_learned", repair_periodic_learned)
    reg.add("masked_region_periodic_learned", masked_region_learned(dsl.repair_periodic))
    reg.add("extend_periodic_learned", extend_periodic_learned)

    # splitting and combining
    for axis in ("h", "v"):
        for op in dsl.CELL_OPS:
            reg.add(f"combine_{axis}_{op}_learned", combine_learned(axis, op))
        for n in (2, 3):
            reg.plain(f"overlay_{axis}{n}", overlay_parts(axis, n, False))
            reg.plain(f"overlay_{axis}{n}_reversed", overlay_parts(axis, n, True))
        for n, names in ((2, ("first", "second")), (3, ("first", "middle", "last"))):
            for k, part in enumerate(names):
                reg.plain(f"half_{axis}{n}_{part}", lambda g, a=axis, n=n, k=k: dsl.split_parts(g, a, n)[k])
    for how in ("most", "least", "colours", "unique"):
        reg.plain(f"select_cell_{how}", select_cell(how))
    reg.plain("cells_to_pixels", cells_to_pixels)

    # lines
    for dirs in dsl.DIRECTIONS:
        reg.plain(f"rays_{dirs}", lambda g, d=dirs: dsl.draw_rays(g, d))
        reg.plain(f"rays_{dirs}_stop", lambda g, d=dirs: dsl.draw_rays(g, d, stop=True))
    for axes in ("h", "v", "hv"):
        reg.plain(f"connect_{axes}", lambda g, a=axes: dsl.connect_pairs(g, None, None, a))
        reg.add(f"connect_{axes}_learned", connect_learned(axes))

    # local rules and constants
    for window in learn.WINDOWS:
        reg.add(f"local_rule_{window}", local_rule(window))
    reg.add("constant_output_learned", constant_output)

    # counting
    for what in ("cells", "objects"):
        reg.add(f"count_{what}_row_learned", count_row(what, False))
        reg.add(f"count_{what}_column_learned", count_row(what, True))
    reg.plain("count_cells_row_own", count_row_own)

    # object edits
    for kind in ("c8", "multi_c8"):
        for sel in SELECTORS:
            reg.plain(f"keep_{sel}_object_{kind}", keep_object(sel, kind))
            reg.plain(f"remove_{sel}_object_{kind}", remove_object(sel, kind))
    for kind in ("c4", "c8"):
        for size in (1, 2):
            reg.plain(f"remove_objects_upto_{size}_{kind}", remove_small(size, kind))
        for sel in ("largest", "smallest", "unique_shape", "unique_colour"):
            reg.add(f"recolour_{sel}_object_{kind}_learned", recolour_selected_learned(sel, kind))
        for name in OBJECT_KEYS:
            reg.add(f"recolour_objects_by_{name}_{kind}_learned", recolour_objects_learned(name, kind))
    for name in ("size", "size_rank", "size_rank_asc", "extreme", "touches_border", "is_rectangle"):
        reg.add(f"recolour_bg_regions_by_{name}_learned", recolour_objects_learned(name, "bg_regions"))
    for kind in ("multi_c4", "multi_c8"):
        for name in ("shape", "size", "has_hole", "extreme"):
            reg.add(f"recolour_objects_by_{name}_{kind}_learned", recolour_objects_learned(name, kind))

    # tables from a whole-grid feature to the output, and cell-wise tables
    for name in GRID_FEATURES:
        reg.add(f"output_by_{name}_learned", output_by_feature(name))
    reg.add("cells_to_pixels_by_count_learned", cells_to_pixels_by_count)
    reg.add("local_rule_iso_sets", local_iso_rule(False))
    reg.add("local_rule_iso_counts", local_iso_rule(True))
    reg.add("local_rule_3x3_augmented", local_rule_augmented)

    # more crops, compression, sequences
    reg.plain("compress", dsl.compress)
    reg.plain("compress∘crop_content", lambda g: dsl.compress(dsl.crop_to_content(g)))
    reg.plain("period_tile", dsl.period_tile)
    reg.plain("period_tile∘crop_content", lambda g: dsl.period_tile(dsl.crop_to_content(g)))
    reg.plain("colour_sequence_h", lambda g: dsl.colour_sequence(g, "h"))
    reg.plain("colour_sequence_v", lambda g: dsl.colour_sequence(g, "v"))
    reg.plain("bbox_fill_per_colour", dsl.bbox_fill_per_colour)
    for pick in ("minority_fg", "majority_fg", "learned"):
        reg.add(f"crop_colour_{pick}", crop_colour_pick(pick))
    reg.plain("crop_inside_frame", crop_inside_frame)
    reg.plain("swap_colours∘crop_content", lambda g: dsl.swap_two_colours(dsl.crop_to_content(g)))
    for sel in ("largest", "most_colours", "most_secondary", "unique_colour"):
        reg.plain(
            f"monochrome∘crop_{sel}_object_multi_c8_solo",
            lambda g, s=sel: dsl.monochrome(crop_object(s, "multi_c8", True)(g)),
        )
    for pick in ("majority", "minority", "learned"):
        reg.add(f"fractal_where_{pick}", fractal_where(pick))
    reg.add("denoise_learned", denoise_learned)
    reg.plain("connect_vh", lambda g: dsl.transpose(dsl.connect_pairs(dsl.transpose(g), None, None, "hv")))
    reg.plain("connect_diagonal", lambda g: dsl.connect_diagonal(g))
    for name in ("rot90", "rot180", "rot270", "flip_h", "flip_v", "transpose"):
        reg.plain(f"{name}∘cells_to_pixels", lambda g, fn=geo[name]: fn(cells_to_pixels(g)))
    ext = extend_periodic_learned
    reg.add("colormap_learned∘extend_periodic_learned", compose(colormap_learned, ext, "extend_periodic_learned"))

    # depth-2 compositions of cheap transforms with learned ones
    pre: dict[str, CandidateFn] = {
        "crop_content": _plain(dsl.crop_to_content),
        "crop_largest_object_c8": _plain(crop_object("largest", "c8", False)),
        "crop_largest_object_multi_c8": _plain(crop_object("largest", "multi_c8", False)),
        "half_h2_first": _plain(lambda g: dsl.split_parts(g, "h", 2)[0]),
        "half_v2_first": _plain(lambda g: dsl.split_parts(g, "v", 2)[0]),
    }
    post: dict[str, CandidateFn] = {
        "colormap_learned": colormap_learned,
        "upscale_learned": upscale_learned,
        "tile_layout_learned": tile_layout_learned,
        "downscale_learned": downscale_learned,
        "fractal": fractal_learned(False),
    }
    for pname, pfn in pre.items():
        for qname, qfn in post.items():
            reg.add(f"{qname}∘{pname}", compose(qfn, pfn, pname))
    for name in ("rot90", "rot180", "rot270", "flip_h", "flip_v", "transpose"):
        fn = geo[name]
        for sel in ("largest", "smallest", "unique_colour", "unique_shape"):
            reg.add(
                f"{name}∘crop_{sel}_object_multi_c8",
                plain_after(fn, crop_object(sel, "multi_c8", False), f"crop_{sel}_object_multi_c8"),
            )
        reg.plain(f"mirror_4∘{name}", lambda g, fn=fn: mirror_quad(fn(g)))
        reg.plain(f"upscale_2x∘{name}", lambda g, fn=fn: dsl.upscale(fn(g), 2))
        reg.plain(f"tile_2x2∘{name}", lambda g, fn=fn: dsl.tile(fn(g), 2, 2))
    for direction in ("down", "up", "left", "right"):
        reg.add(
            f"colormap_learned∘gravity_{direction}",
            compose(colormap_learned, _plain(lambda g, d=direction: dsl.gravity(g, d)), f"gravity_{direction}"),
        )
    add_rule_families(reg)
    add_feature_families(reg)
    add_layout_families(reg)
    add_partition_families(reg)
    add_completion_families(reg)
    add_object_families(reg)
    add_conjugate_families(reg)
    return tuple(reg.items)


def seen_colours_only(fn: CandidateFn) -> CandidateFn:
    """``fn``, with no output on a sample that has a colour no train input has: a per-colour table learned
    from the pairs says nothing about it."""

    def run(ctx: Context, grid: Grid) -> Grid:
        seen = ctx.memo("input_colours", lambda: frozenset(v for i, _ in ctx.S for row in i for v in row))
        if any(v not in seen for row in grid for v in row):
            raise NotLearned("a colour no train input has")
        return fn(ctx, grid)

    return run


def _learned(
    key: str, learner: Callable[[tuple[learn.Pair, ...]], object], apply: Callable[[Grid, Any], Grid]
) -> CandidateFn:
    """A candidate applying the parameter ``learner`` finds on every train pair."""

    def run(ctx: Context, grid: Grid) -> Grid:
        return apply(grid, ctx.need(key, lambda: learner(ctx.S)))

    return run


def add_rule_families(reg: Registry) -> None:
    """The families of :mod:`batt_tasks.battery.rules` and a few more compositions."""
    reg.add("rays_learned", seen_colours_only(_learned("rays", rules.learn_rays, rules.apply_rays)))
    reg.add("stamps_learned", _learned("stamps", rules.learn_stamps, rules.apply_stamps))
    reg.add("colormap_by_role_learned", _learned("role_map", rules.learn_role_map, rules.apply_role_map))
    for axis in ("h", "v"):
        for first in (True, False):
            reg.plain(
                f"fold_{axis}_{'keep_first' if first else 'keep_second'}",
                lambda g, a=axis, f=first: rules.fold(g, a, f),
            )
        for op in dsl.CELL_OPS:
            reg.add(f"combine_{axis}_{op}_mirrored_learned", combine_mirrored_learned(axis, op))
    reg.add("overlay_quadrants_learned", overlay_quadrants_learned)
    for sel in ("smallest", "largest"):
        reg.plain(f"move_{sel}_to_contact", lambda g, s=sel: rules.move_to_contact(g, s))
        reg.plain(f"move_{sel}_one_step", lambda g, s=sel: rules.move_to_contact(g, s, one_step=True))
    reg.plain("crop_inside_corners", rules.crop_inside_corners)
    reg.plain("tile_by_colour_count", lambda g: dsl.tile(g, *(2 * (len(dsl.palette(g)),))))
    reg.plain("object_colours_by_size_row", lambda g: rules.object_colours_by_size(g, False))
    reg.plain("object_colours_by_size_column", lambda g: rules.object_colours_by_size(g, True))
    reg.plain("colours_by_count_column", lambda g: rules.colours_by_count(g, False))
    reg.plain("colours_by_count_column_drop_top", lambda g: rules.colours_by_count(g, True))
    reg.add("recolour_minor_colours_learned", recolour_minor_learned)
    reg.add("fill_output_shape_holey_object", fill_shape_with(_holey_colour))
    for name, (a, b) in {
        "top_left": (0, 0),
        "top_right": (0, 1),
        "bottom_left": (1, 0),
        "bottom_right": (1, 1),
    }.items():
        reg.plain(
            f"quarter_{name}∘crop_content", lambda g, a=a, b=b: rules.quadrants(dsl.crop_to_content(g))[2 * a + b]
        )
        reg.plain(f"quarter_{name}", lambda g, a=a, b=b: rules.quadrants(g)[2 * a + b])


def combine_mirrored_learned(axis: str, op: str) -> CandidateFn:
    """Like :func:`combine_learned`, with the second half mirrored first (folding)."""

    def apply(grid: Grid, colour: int) -> Grid:
        a, b = dsl.split_parts(grid, axis, 2)
        b = dsl.flip_h(b) if axis == "h" else dsl.flip_v(b)
        return dsl.combine(a, b, op, colour, 0)

    def run(ctx: Context, grid: Grid) -> Grid:
        return apply(grid, _fit_colour(ctx, ("combine_mirrored", axis, op), apply))

    return run


def overlay_quadrants_learned(ctx: Context, grid: Grid) -> Grid:
    """Overlay the four quadrants in the stacking order every train pair agrees on."""
    order = ctx.need("quad_order", lambda: learn.fit(ctx.S, rules.ORDERS, rules.overlay_quadrants))
    return rules.overlay_quadrants(grid, order)


def recolour_minor_learned(ctx: Context, grid: Grid) -> Grid:
    """Every cell not of the majority colour becomes the learned colour."""
    return rules.recolour_minor_colours(grid, _fit_colour(ctx, "minor", rules.recolour_minor_colours))


def _holey_colour(grid: Grid) -> int:
    holey = [o for o in objects(grid, True, True) if _has_hole(o)]
    if len({o.colour for o in holey}) != 1:
        raise ValueError("no single holey colour")
    return holey[0].colour


def feature_table_learned(ctx: Context, grid: Grid) -> Grid:
    """Each output cell from the fewest cell features that explain the other train pairs (leave-one-out)."""
    table = ctx.need("feature_table", lambda: features.learn_feature_table(ctx.loo(), grid))
    return features.apply_feature_table(table, grid)


def feature_table_two_pairs(ctx: Context, grid: Grid) -> Grid:
    """For tasks with only two train pairs (leave-one-out would learn from one): the feature table learned from
    both pairs. It must still see every value combination of the sample; the subset is the fewest features."""
    if len(ctx.S) != 2:
        raise NotLearned("only for two train pairs")
    table = ctx.need("feature_table_both", lambda: features.learn_feature_table(ctx.S, grid))
    return features.apply_feature_table(table, grid)


def feature_table_keep_unseen(ctx: Context, grid: Grid) -> Grid:
    """:func:`feature_table_learned` without the demand that the sample's cells look like seen ones: cells
    whose feature values the table has not seen keep their colour."""
    table = ctx.need("feature_table_any", lambda: features.learn_feature_table(ctx.loo(), grid, cover=False))
    return features.apply_feature_table(table, grid, keep_unseen=True)


def cells_feature_table_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`feature_table_learned` on the grid of separator cells; changed cells become solid."""
    table = ctx.need("cells_table", lambda: features.learn_cells_table(ctx.loo(), grid))
    return features.apply_cells_table(table, grid)


def renamed_table(key: str, learner: Any, applier: Any, namer: features.Namer) -> CandidateFn:
    """A table learner run on grids whose colours ``namer`` renamed (leave-one-out)."""

    def run(ctx: Context, grid: Grid) -> Grid:
        table = ctx.need(key, lambda: features.learn_renamed(learner, ctx.loo(), grid, namer))
        return features.apply_renamed(applier, table, grid, namer)

    return run


def feature_role_table_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`feature_table_learned` with each grid's colours renamed by frequency (colour-blind rules)."""
    table = ctx.need("feature_role_table", lambda: features.learn_role_table(ctx.loo(), grid))
    return features.apply_role_table(table, grid)


def scaled_feature_table_learned(ctx: Context, grid: Grid) -> Grid:
    """Outputs a whole number of times the input's size, each cell from features of its upscale and tiling
    sources (fractals, upscaled patterns, tilings with marks), learned leave-one-out."""
    table = ctx.need("scaled_table", lambda: features.learn_scaled_table(ctx.loo(), grid))
    return features.apply_scaled_table(table, grid)


def scaled_role_table_learned(ctx: Context, grid: Grid) -> Grid:
    """:func:`scaled_feature_table_learned` with each grid's colours renamed by frequency."""
    table = ctx.need("scaled_role_table", lambda: features.learn_scaled_role_table(ctx.loo(), grid))
    return features.apply_scaled_role_table(table, grid)


def add_feature_families(reg: Registry) -> None:
    """The cell-feature table learners of :mod:`batt_tasks.battery.features`."""
    reg.add("feature_table_learned", feature_table_learned)
    reg.add("feature_table_learned∘colour_roles", feature_role_table_learned)
    reg.add("scaled_feature_table_learned", scaled_feature_table_learned)
    reg.add("scaled_feature_table_learned∘colour_roles", scaled_role_table_learned)
    reg.add("feature_table_two_pairs", feature_table_two_pairs)
    reg.add("feature_table_learned_keep_unseen", feature_table_keep_unseen)
    reg.add("feature_table_learned∘separator_cells", cells_feature_table_learned)
    plain = (features.learn_feature_table, features.apply_feature_table)
    cells = (features.learn_cells_table, features.apply_cells_table)
    order, roles = features.colour_order, features.colour_roles
    reg.add("feature_table_learned∘colour_order", renamed_table("order_table", *plain, order))
    reg.add("feature_table_learned∘separator_cells∘colour_roles", renamed_table("cells_roles", *cells, roles))
    reg.add("feature_table_learned∘separator_cells∘colour_order", renamed_table("cells_order", *cells, order))


def add_layout_families(reg: Registry) -> None:
    """Counting into layouts, padding, separator-cell selection."""
    reg.add("count_objects_diagonal_learned", _fitted("count_diagonal", range(10), rules.count_diagonal))
    reg.add("count_objects_bar_learned", count_bar_learned)
    reg.add("pad_replicate_learned", _fitted("pad_corner", range(10), rules.pad_replicate))
    reg.plain("fill_fullest_cells", rules.fill_fullest_cells)
    for kind in dsl.SYMMETRIES:
        reg.plain(f"symmetrise_{kind}_in_content_box", lambda g, k=kind: rules.symmetrise_in_box(g, k))
    reg.plain("colour_histogram_columns", rules.colour_histogram)
    reg.add("object_stamps_learned", object_stamps_learned)
    template_options = [(anchor, keep) for anchor in ("centre", "colour") for keep in (True, False)]
    reg.add("stamp_template_on_markers_learned", _fitted("template", template_options, rules.stamp_template))
    most_options = [(colour, diagonal) for colour in range(10) for diagonal in (False, True)]
    reg.add("crop_object_most_of_colour_learned", _fitted("most_of", most_options, rules.crop_most_of_colour))
    for axis in ("h", "v"):
        reg.plain(f"kronecker_halves_{axis}", lambda g, a=axis: rules.kronecker_halves(g, a))


def _fitted(key: str, options: Any, apply: Callable[[Grid, Any], Grid]) -> CandidateFn:
    """A candidate applying the first of ``options`` that maps every train input to its output."""

    def run(ctx: Context, grid: Grid) -> Grid:
        return apply(grid, ctx.need(key, lambda: learn.fit(ctx.S, options, apply)))

    return run


def object_stamps_learned(ctx: Context, grid: Grid) -> Grid:
    """Each object painted with the stamp (its grown bounding box) the other train pairs show for its look."""
    stamps = ctx.need("object_stamps", lambda: rules.learn_object_stamps(ctx.loo()))
    return rules.apply_object_stamps(grid, stamps)


def count_bar_learned(ctx: Context, grid: Grid) -> Grid:
    """A fixed-width row filled from the left, one cell per object of a learned colour and size."""

    def options() -> list[tuple[int, int, int, int, int]]:
        shape_ = learn.learn_output_shape(ctx.S)
        if shape_ is None or shape_[0] != 1:
            return []
        colours = learn.output_colours(ctx.S)
        return [(of, m, c, shape_[1], 0) for of in range(10) for m in (1, 2, 4) for c in colours if c != 0]

    params = ctx.need("count_bar", lambda: learn.fit(ctx.S, options(), rules.count_bar))
    return rules.count_bar(grid, params)


def _plain(fn: GridFn) -> CandidateFn:
    return lambda ctx, grid: fn(grid)


CANDIDATES: tuple[Candidate, ...] = build()
