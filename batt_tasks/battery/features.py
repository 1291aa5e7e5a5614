"""Cell features and the feature-table learner: each output cell from a few features of its input cell.

For same-shaped tasks, every input cell gets a vector of small integer features (its colour, its
neighbours' colours, the first colour seen along each ray, its object's size and rank, whether its
background region is enclosed, the colours at the row's and column's ends, its mirror images...).
:func:`learn_feature_table` looks for the smallest subset of features (one, two, or the cell's colour
and two more) whose values determine the output colour on every train pair, and whose values on the
sample input were all seen: a table ``feature values -> colour``. Tables are learned leave-one-out by
the candidates, like every table learner of the battery.

Costs are bounded: features are numpy arrays over at most 30×30 cells, subsets are checked with one
``bincount`` each, and the number of subsets tried is capped (:data:`MAX_TRIES`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

import numpy as np

from batt_tasks.battery import dsl, learn
from batt_tasks.battery.dsl import Grid, background, shape
from batt_tasks.battery.objects import objects

Pair = tuple[Grid, Grid]
NONE = 10  #: feature value for "no colour" (outside the grid, no cell along a ray...)
CLIP = 12  #: counts and sizes are clipped to 0..CLIP-1
MAX_TRIES = 1500  #: subsets checked per learning, at most
MAX_BINS = 1 << 20  #: a subset whose key space is larger than this is skipped
MAX_RIVALS = 24  #: agreeing subsets of the smallest size compared with the first fit, at most

_RAYS = {
    "up": (-1, 0),
    "down": (1, 0),
    "left": (0, -1),
    "right": (0, 1),
    "up_left": (-1, -1),
    "up_right": (-1, 1),
    "down_left": (1, -1),
    "down_right": (1, 1),
}


def _shifted(a: np.ndarray, dr: int, dc: int, fill: int) -> np.ndarray:
    """``out[r, c] = a[r + dr, c + dc]`` (``fill`` outside the grid)."""
    h, w = a.shape
    padded = np.full((h + 2, w + 2), fill, dtype=np.int64)
    padded[1:-1, 1:-1] = a
    return padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]


def _ray_colour(a: np.ndarray, fg: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """The colour of the first foreground cell strictly beyond each cell in direction ``(dr, dc)``, else NONE."""
    h, w = a.shape
    out = np.full((h, w), NONE, dtype=np.int64)
    rows = range(h - 1, -1, -1) if dr > 0 else range(h)
    cols = range(w - 1, -1, -1) if dc > 0 else range(w)
    # sweep so the neighbour in the ray's direction is final before the cell itself
    if dr != 0 and dc == 0:
        for r in rows:
            nr = r + dr
            if 0 <= nr < h:
                out[r] = np.where(fg[nr], a[nr], out[nr])
        return out
    if dc != 0 and dr == 0:
        for c in cols:
            nc = c + dc
            if 0 <= nc < w:
                out[:, c] = np.where(fg[:, nc], a[:, nc], out[:, nc])
        return out
    for r in rows:
        nr = r + dr
        if not 0 <= nr < h:
            continue
        # the diagonal neighbour of (r, c) is (nr, c + dc)
        src = np.full(w, NONE, dtype=np.int64)
        src_fg = np.zeros(w, dtype=bool)
        src_out = np.full(w, NONE, dtype=np.int64)
        if dc > 0:
            src[:-1], src_fg[:-1], src_out[:-1] = a[nr, 1:], fg[nr, 1:], out[nr, 1:]
        else:
            src[1:], src_fg[1:], src_out[1:] = a[nr, :-1], fg[nr, :-1], out[nr, :-1]
        out[r] = np.where(src_fg, src, src_out)
    return out


def _object_maps(grid: Grid, univalued: bool, diagonal: bool) -> dict[str, np.ndarray]:
    h, w = shape(grid)
    size = np.zeros((h, w), dtype=np.int64)
    rank = np.full((h, w), CLIP - 1, dtype=np.int64)
    extreme = np.zeros((h, w), dtype=np.int64)
    edge = np.zeros((h, w), dtype=np.int64)
    border = np.zeros((h, w), dtype=np.int64)
    ncol = np.zeros((h, w), dtype=np.int64)
    height = np.zeros((h, w), dtype=np.int64)
    width = np.zeros((h, w), dtype=np.int64)
    rect = np.zeros((h, w), dtype=np.int64)
    in_box = np.zeros((h, w), dtype=np.int64)
    try:
        objs = objects(grid, univalued, diagonal)
    except ValueError:  # too many objects: the object features say nothing
        objs = ()
    sizes = sorted({o.size for o in objs}, reverse=True)
    for o in objs:
        top, left, bottom, right = o.box
        k = sizes.index(o.size)
        ext = 1 if k == 0 else (2 if k == len(sizes) - 1 else 3)
        touches = int(top == 0 or left == 0 or bottom == h - 1 or right == w - 1)
        for r, c, _ in o.cells:
            size[r, c] = min(o.size, CLIP - 1)
            rank[r, c] = min(k, CLIP - 1)
            extreme[r, c] = ext
            edge[r, c] = int(r in (top, bottom) or c in (left, right))
            border[r, c] = touches
            ncol[r, c] = len(o.colours)
            height[r, c] = min(o.height, CLIP - 1)
            width[r, c] = min(o.width, CLIP - 1)
            rect[r, c] = 1 + o.is_rectangle()
        in_box[top : bottom + 1, left : right + 1] += 1
    return {
        "size": size,
        "rank": rank,
        "extreme": extreme,
        "box_edge": edge,
        "touches_border": border,
        "ncol": ncol,
        "height": height,
        "width": width,
        "rect": rect,
        "in_box": np.minimum(in_box, CLIP - 1),
    }


def _bg_regions(grid: Grid, bg: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per background cell: its 4-connected background region's size (clipped), whether it touches the border,
    and the colour most of the region's neighbours have (NONE for cells outside the background)."""
    h, w = shape(grid)
    marked = tuple(tuple(1 if v == bg else 0 for v in row) for row in grid)
    size = np.zeros((h, w), dtype=np.int64)
    border = np.zeros((h, w), dtype=np.int64)
    around = np.full((h, w), NONE, dtype=np.int64)
    try:
        regions = objects(marked, True, False, 0)
    except ValueError:
        regions = ()
    for reg in regions:
        top, left, bottom, right = reg.box
        touches = int(top == 0 or left == 0 or bottom == h - 1 or right == w - 1)
        counts: dict[int, int] = {}
        for r, c, _ in reg.cells:
            size[r, c] = min(reg.size, CLIP - 1)
            border[r, c] = 1 + touches
            for dr, dc in dsl.NEIGHBOURS_4:
                nr, nc = r + dr, c + dc
                if 0 <= nr < h and 0 <= nc < w and grid[nr][nc] != bg:
                    counts[grid[nr][nc]] = counts.get(grid[nr][nc], 0) + 1
        if counts:
            colour = min(counts, key=lambda k: (-counts[k], k))
            for r, c, _ in reg.cells:
                around[r, c] = colour
    return size, border, around


def _nearest(a: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the colour of the nearest foreground cell (4-wise steps; NONE on ties between colours or when
    there is none) and the distance to it (clipped)."""
    h, w = a.shape
    colour = np.where(fg, a, -1)
    dist = np.where(fg, 0, CLIP - 1)
    step = 0
    while (colour == -1).any() and step < h + w:
        step += 1
        grown = np.full((h, w), -1, dtype=np.int64)
        for dr, dc in dsl.NEIGHBOURS_4:
            near = _shifted(colour, dr, dc, -1)
            grown = np.where(
                (grown == -1) | (grown == near), np.maximum(grown, near), np.where(near == -1, grown, NONE)
            )
        new = (colour == -1) & (grown != -1)
        if not new.any():
            break
        colour = np.where(new, grown, colour)
        dist = np.where(new, min(step, CLIP - 1), dist)
    return np.where(colour == -1, NONE, colour), dist


def _cell_grid(grid: Grid, a: np.ndarray, bg: int) -> dict[str, np.ndarray]:
    """For grids divided by separator lines into equal cells: each cell's row and column in the cell layout,
    and the colour at the same position in the fullest cell (the "template"); no features otherwise."""
    sep = dsl.separator_lines(grid)
    if sep is None:
        return {}
    colour, rows, cols = sep
    h, w = a.shape
    rspans, cspans = dsl._spans(rows, h), dsl._spans(cols, w)
    if len({r1 - r0 for r0, r1 in rspans}) != 1 or len({c1 - c0 for c0, c1 in cspans}) != 1:
        return {}
    cell_row = np.full((h, w), NONE, dtype=np.int64)
    cell_col = np.full((h, w), NONE, dtype=np.int64)
    for k, (r0, r1) in enumerate(rspans):
        cell_row[r0:r1] = min(k, CLIP - 1)
    for k, (c0, c1) in enumerate(cspans):
        cell_col[:, c0:c1] = min(k, CLIP - 1)
    on_line = np.zeros((h, w), dtype=bool)
    on_line[rows, :] = True
    on_line[:, cols] = True
    cell_row[on_line] = NONE
    cell_col[on_line] = NONE
    blocks = [(r0, c0, a[r0:r1, c0:c1]) for r0, r1 in rspans for c0, c1 in cspans]
    fill = [int(((b != bg) & (b != colour)).sum()) for _, _, b in blocks]
    best = max(fill)
    template = np.full((h, w), NONE, dtype=np.int64)
    if fill.count(best) == 1:
        pattern = blocks[fill.index(best)][2]
        ch, cw = pattern.shape
        for r0, c0, _ in blocks:
            template[r0 : r0 + ch, c0 : c0 + cw] = pattern
    return {"cell_row": cell_row, "cell_col": cell_col, "cell_template": template}


def _row_colours(a: np.ndarray, bg: int, least: bool) -> np.ndarray:
    """Per row: its most (or least) common non-background colour, NONE when it has none."""
    out = np.full(a.shape[0], NONE, dtype=np.int64)
    for r, row in enumerate(a.tolist()):
        counts: dict[int, int] = {}
        for v in row:
            if v != bg:
                counts[v] = counts.get(v, 0) + 1
        if counts:
            out[r] = min(counts, key=lambda k: (counts[k] if least else -counts[k], k))
    return out


@lru_cache(maxsize=64)
def cell_features(grid: Grid) -> tuple[tuple[str, ...], np.ndarray]:
    """The feature names and a ``(features, cells)`` array of small non-negative ints for ``grid``."""
    a = dsl.to_array(grid).astype(np.int64)
    h, w = a.shape
    bg = background(grid)
    fg = a != bg
    rr, cc = np.indices((h, w))
    feats: dict[str, np.ndarray] = {"colour": a, "is_fg": fg.astype(np.int64)}
    for name, (dr, dc) in _RAYS.items():
        feats[f"n_{name}"] = _shifted(a, dr, dc, NONE)
    fgp = fg.astype(np.int64)
    feats["n4_fg"] = sum(_shifted(fgp, dr, dc, 0) for dr, dc in dsl.NEIGHBOURS_4)
    feats["n8_fg"] = sum(_shifted(fgp, dr, dc, 0) for dr, dc in dsl.NEIGHBOURS_8)
    same = [(_shifted(a, dr, dc, NONE) == a).astype(np.int64) for dr, dc in dsl.NEIGHBOURS_8]
    feats["n4_same"] = sum(same[:4])
    feats["n8_same"] = sum(same)
    rays = {name: _ray_colour(a, fg, dr, dc) for name, (dr, dc) in _RAYS.items()}
    for name, ray in rays.items():
        feats[f"ray_{name}"] = ray
    feats["between_h"] = np.where(rays["left"] == rays["right"], rays["left"], NONE)
    feats["between_v"] = np.where(rays["up"] == rays["down"], rays["up"], NONE)
    feats["between_d"] = np.where(rays["up_left"] == rays["down_right"], rays["up_left"], NONE)
    feats["between_a"] = np.where(rays["up_right"] == rays["down_left"], rays["up_right"], NONE)
    feats["row_fg"] = fg.any(axis=1)[:, None].repeat(w, axis=1).astype(np.int64)
    feats["col_fg"] = fg.any(axis=0)[None, :].repeat(h, axis=0).astype(np.int64)
    feats["row_start"] = a[:, :1].repeat(w, axis=1)
    feats["row_end"] = a[:, -1:].repeat(w, axis=1)
    feats["col_start"] = a[:1, :].repeat(h, axis=0)
    feats["col_end"] = a[-1:, :].repeat(h, axis=0)
    for name, objs in (("c4", (True, False)), ("c8", (True, True)), ("multi_c8", (False, True))):
        for key, value in _object_maps(grid, *objs).items():
            feats[f"obj_{name}_{key}"] = value
    region_size, region_border, region_around = _bg_regions(grid, bg)
    feats["bg_region_size"] = region_size
    feats["bg_region_border"] = region_border
    feats["bg_region_around"] = region_around
    feats["nearest_colour"], feats["nearest_dist"] = _nearest(a, fg)
    for least, tag in ((False, "major"), (True, "minor")):
        feats[f"row_{tag}"] = _row_colours(a, bg, least)[:, None].repeat(w, axis=1)
        feats[f"col_{tag}"] = _row_colours(a.T, bg, least)[None, :].repeat(h, axis=0)
    same_row = np.zeros((h, w), dtype=np.int64)
    same_col = np.zeros((h, w), dtype=np.int64)
    for colour in np.unique(a).tolist():
        here = a == colour
        same_row += here * here.sum(axis=1, keepdims=True)
        same_col += here * here.sum(axis=0, keepdims=True)
    feats["row_same_count"] = np.minimum(same_row, CLIP - 1)
    feats["col_same_count"] = np.minimum(same_col, CLIP - 1)
    feats["bg_region_parity"] = np.where(region_size > 0, 1 + region_size % 2, 0)
    feats["row_uniform"] = (a == a[:, :1]).all(axis=1)[:, None].repeat(w, axis=1).astype(np.int64)
    feats["col_uniform"] = (a == a[:1, :]).all(axis=0)[None, :].repeat(h, axis=0).astype(np.int64)
    feats.update(_cell_grid(grid, a, bg))
    box = dsl.bbox(grid, bg)
    if box is not None:
        top, left, bottom, right = box
        for name, mr, mc in (("h", False, True), ("v", True, False), ("hv", True, True)):
            src_r = top + bottom - rr if mr else rr
            src_c = left + right - cc if mc else cc
            inside = (src_r >= 0) & (src_r < h) & (src_c >= 0) & (src_c < w)
            feats[f"content_mirror_{name}"] = np.where(
                inside, a[np.clip(src_r, 0, h - 1), np.clip(src_c, 0, w - 1)], NONE
            )
    counts = dsl.colour_counts(grid)
    order = sorted(counts, key=lambda k: (-counts[k], k))
    rank = np.zeros(11, dtype=np.int64)
    for k, colour in enumerate(order):
        rank[colour] = k
    feats["colour_rank"] = rank[a]
    feats["mirror_h"] = a[:, ::-1]
    feats["mirror_v"] = a[::-1, :]
    feats["mirror_hv"] = a[::-1, ::-1]
    if h == w:
        feats["mirror_t"] = a.T
    feats["border_cell"] = ((rr == 0) | (cc == 0) | (rr == h - 1) | (cc == w - 1)).astype(np.int64)
    feats["row_mod2"] = rr % 2
    feats["col_mod2"] = cc % 2
    feats["row_mod3"] = rr % 3
    feats["col_mod3"] = cc % 3
    feats["row"] = np.minimum(rr, CLIP - 1)
    feats["col"] = np.minimum(cc, CLIP - 1)
    names = tuple(feats)
    return names, np.clip(np.stack([feats[n].ravel() for n in names]), 0, 31)


#: feature names in order of preference (earlier features are tried first)
PRIORITY = (
    "colour",
    "is_fg",
    "obj_c4_size",
    "obj_c8_size",
    "obj_c8_rank",
    "obj_c8_extreme",
    "obj_multi_c8_size",
    "obj_multi_c8_ncol",
    "bg_region_border",
    "bg_region_size",
    "bg_region_around",
    "nearest_colour",
    "n4_fg",
    "n8_fg",
    "n4_same",
    "n8_same",
    "between_h",
    "between_v",
    "between_d",
    "between_a",
    "ray_up",
    "ray_down",
    "ray_left",
    "ray_right",
    "ray_up_left",
    "ray_up_right",
    "ray_down_left",
    "ray_down_right",
    "n_up",
    "n_down",
    "n_left",
    "n_right",
    "n_up_left",
    "n_up_right",
    "n_down_left",
    "n_down_right",
    "obj_c4_rank",
    "obj_c4_extreme",
    "obj_c8_box_edge",
    "obj_c8_touches_border",
    "obj_multi_c8_box_edge",
    "obj_multi_c8_touches_border",
    "obj_c4_touches_border",
    "obj_c8_height",
    "obj_c8_width",
    "obj_c8_rect",
    "obj_multi_c8_in_box",
    "nearest_dist",
    "row_major",
    "col_major",
    "row_minor",
    "col_minor",
    "row_same_count",
    "col_same_count",
    "content_mirror_h",
    "content_mirror_v",
    "content_mirror_hv",
    "cell_template",
    "cell_row",
    "cell_col",
    "bg_region_parity",
    "row_uniform",
    "col_uniform",
    "row_fg",
    "col_fg",
    "row_start",
    "row_end",
    "col_start",
    "col_end",
    "colour_rank",
    "mirror_h",
    "mirror_v",
    "mirror_hv",
    "mirror_t",
    "border_cell",
    "row_mod2",
    "col_mod2",
    "row_mod3",
    "col_mod3",
    "row",
    "col",
)

FeatureTable = tuple[tuple[str, ...], dict[tuple[int, ...], int]]


def _stack(grids: list[Grid]) -> dict[str, np.ndarray]:
    """Each feature's values over the cells of all ``grids`` (features some grid lacks are dropped)."""
    per = [cell_features(g) for g in grids]
    common = [n for n in PRIORITY if all(n in names for names, _ in per)]
    return {n: np.concatenate([arr[names.index(n)] for names, arr in per]) for n in common}


def learn_feature_table(S: tuple[Pair, ...], sample: Grid, cover: bool = True) -> FeatureTable | None:
    """The first feature subset (by size, then :data:`PRIORITY`) that determines the output colour on every pair
    of ``S`` and whose value combinations on ``sample`` all occur in ``S``; with its table. None if there is none."""
    if not S or any(shape(i) != shape(o) for i, o in S):
        return None
    train = _stack([i for i, _ in S])
    test = _stack([sample])
    out = np.concatenate([np.array(o, dtype=np.int64).ravel() for _, o in S])
    changed = np.flatnonzero(np.concatenate([(np.array(i) != np.array(o)).ravel() for i, o in S]))
    return search(train, out, test, changed, cover)


def search(
    train: dict[str, np.ndarray],
    out: np.ndarray,
    test: dict[str, np.ndarray],
    changed: np.ndarray,
    cover: bool = True,
) -> FeatureTable | None:
    """The first feature subset (features in ``train``'s order) whose values determine ``out`` and (with
    ``cover``) whose value combinations in ``test`` all occur in ``train``; ``changed`` are the cells tried
    first (where the output differs from the input), which rejects most subsets cheaply.

    Ambiguity means no answer: every single feature or pair of the smallest fitting size is found (up to
    :data:`MAX_RIVALS`; triples are only searched partially, so the first by priority is kept), and when
    another one at least as simple as the first (:func:`pick_unambiguous`) predicts other colours on
    ``test`` the result is None — a table keyed on features that merely happen to
    separate the few train cells is not trusted."""
    names = [n for n in train if n in test]
    nout = int(out.max()) + 1
    # drop features that repeat an earlier one on every grid (same partition of the cells)
    kept: list[str] = []
    seen: set[bytes] = set()
    for n in names:
        both = np.concatenate([train[n], test[n]])
        relabel = np.cumsum(np.bincount(both, minlength=32) > 0) - 1
        sig = relabel[both].astype(np.int8).tobytes()
        if sig in seen:
            continue
        seen.add(sig)
        kept.append(n)
    size = {n: int(max(train[n].max(), test[n].max())) + 1 for n in kept}
    few = np.union1d(changed, np.arange(0, len(out), 7))
    out_few = out[few]
    few_values = {n: train[n][few] for n in kept}
    tries = 0
    fits: list[tuple[FeatureTable, np.ndarray]] = []
    for prefix, lasts in _subset_groups(kept):
        if fits and len(prefix) + 1 > len(fits[0][0][0]):
            break  # every subset as small as the first fit has been looked at
        tries += len(lasts)
        if tries > MAX_TRIES:
            break
        # the cheap check for the whole group at once: keys of the prefix, then each last feature
        key = np.zeros(len(few), dtype=np.int64)
        for n in prefix:
            key = key * 32 + few_values[n]
        keys = key[None, :] * 32 + np.stack([few_values[n] for n in lasts])
        passed = _consistent_rows(keys, out_few)
        for last in [n for n, ok in zip(lasts, passed.tolist(), strict=True) if ok]:
            fitted = _full_check((*prefix, last), train, test, out, size, nout, cover)
            if fitted is not None and len(prefix) >= 2:
                return fitted[0]  # triples are searched partially (pools, tries): the first by priority
            if fitted is not None and len(fits) < MAX_RIVALS:
                fits.append(fitted)
    return pick_unambiguous(fits)


def _simplicity(fit: tuple[FeatureTable, np.ndarray]) -> tuple[int, int, int]:
    """Lower is simpler: table entries, then sample cells the table has not seen, then whether the cell's own
    colour is not among the features."""
    (subset, mapping), predicted = fit
    return len(mapping), int((predicted < 0).sum()), int("colour" not in subset)


def pick_unambiguous(fits: list[tuple[FeatureTable, np.ndarray]]) -> FeatureTable | None:
    """The first of several fitting tables (by feature priority), or None when another table at least as
    simple (:func:`_simplicity`) predicts different colours on the sample: ambiguity means no answer."""
    if not fits:
        return None
    first = fits[0]
    bound = _simplicity(first)
    if any(_simplicity(f) <= bound and not np.array_equal(first[1], f[1]) for f in fits[1:]):
        return None
    return first[0]


def _full_check(
    subset: tuple[str, ...],
    train: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    out: np.ndarray,
    size: dict[str, int],
    nout: int,
    cover: bool = True,
) -> tuple[FeatureTable, np.ndarray] | None:
    """The table of ``subset`` and its prediction on the test cells (-1: an unseen value combination) when
    ``subset`` determines ``out`` on every cell and (with ``cover``) covers the test cells, else None."""
    bins = 1
    for n in subset:
        bins *= size[n]
    if bins * nout > MAX_BINS:
        return None
    key = train[subset[0]]
    tkey = test[subset[0]]
    for n in subset[1:]:
        key = key * size[n] + train[n]
        tkey = tkey * size[n] + test[n]
    counts = np.bincount(key * nout + out, minlength=bins * nout).reshape(bins, nout)
    per_key = (counts > 0).sum(axis=1)
    if per_key.max() > 1 or (cover and not per_key[tkey].all()):
        return None
    outs = counts.argmax(axis=1)
    used = np.flatnonzero(per_key)
    predicted = np.where(per_key[tkey] > 0, outs[tkey], -1)
    return (subset, {_unkey(int(k), subset, size): int(outs[k]) for k in used.tolist()}), predicted


def _consistent_rows(keys: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Per row of ``keys`` (subsets × cells): whether equal keys always come with equal outputs."""
    combined = np.sort(keys * 64 + out[None, :], axis=1)
    same_key = (combined[:, 1:] >> 6) == (combined[:, :-1] >> 6)
    differ = combined[:, 1:] != combined[:, :-1]
    return ~(same_key & differ).any(axis=1)


#: subsets are drawn from the first features of :data:`PRIORITY` (pairs and triples) to bound the search
PAIR_POOL = 30
TRIPLE_POOL = 26


def _subset_groups(kept: list[str]) -> list[tuple[tuple[str, ...], list[str]]]:
    """Feature subsets in the order they are tried, grouped by all but their last feature: singles, pairs
    from the first :data:`PAIR_POOL` features, the cell's colour with any other, then the cell's colour with
    two more from the first :data:`TRIPLE_POOL`."""
    groups: list[tuple[tuple[str, ...], list[str]]] = [((), list(kept))]
    pool = kept[:PAIR_POOL]
    groups += [((f,), pool[k + 1 :]) for k, f in enumerate(pool[:-1])]
    if "colour" in kept:
        groups.append((("colour",), [n for n in kept[PAIR_POOL:] if n != "colour"]))
        rest = [n for n in kept[:TRIPLE_POOL] if n != "colour"]
        groups += [(("colour", f), rest[k + 1 :]) for k, f in enumerate(rest[:-1])]
    return [(prefix, lasts) for prefix, lasts in groups if lasts]


def _unkey(key: int, subset: tuple[str, ...], size: dict[str, int]) -> tuple[int, ...]:
    values = []
    for n in reversed(subset):
        key, v = divmod(key, size[n])
        values.append(v)
    return tuple(reversed(values))


def apply_feature_table(table: FeatureTable, grid: Grid, keep_unseen: bool = False) -> Grid:
    """Each cell's output colour from the table, by the cell's values of the table's features; a value
    combination the table has not seen is an error, or (``keep_unseen``) keeps the cell's colour."""
    subset, mapping = table
    names, arr = cell_features(grid)
    h, w = shape(grid)
    cols = [arr[names.index(n)].tolist() for n in subset]
    if keep_unseen:
        flat = [v for row in grid for v in row]
        values = [mapping.get(key, flat[k]) for k, key in enumerate(zip(*cols, strict=True))]
    else:
        values = [mapping[key] for key in zip(*cols, strict=True)]
    return tuple(tuple(values[r * w : (r + 1) * w]) for r in range(h))


# ---------------------------------------------------------------------------------------------
# colour roles: the same learner on grids whose colours are renamed by frequency


def colour_roles(grid: Grid) -> tuple[int, ...]:
    """The grid's colours, most frequent first (ties: smaller colour); a colour's role is its index here."""
    counts = dsl.colour_counts(grid)
    return tuple(sorted(counts, key=lambda k: (-counts[k], k)))


def to_roles(grid: Grid, roles: tuple[int, ...]) -> Grid:
    """``grid`` with each colour replaced by its role in ``roles``; colours without a role become ``10 + colour``."""
    index = {c: k for k, c in enumerate(roles)}
    return tuple(tuple(index.get(v, 10 + v) for v in row) for row in grid)


def from_roles(grid: Grid, roles: tuple[int, ...]) -> Grid:
    """Undo :func:`to_roles` (ValueError for a role ``roles`` does not have)."""
    out = []
    for row in grid:
        new = []
        for v in row:
            if v >= 10:
                new.append(v - 10)
            elif v < len(roles):
                new.append(roles[v])
            else:
                raise ValueError("role missing from the sample")
        out.append(tuple(new))
    return tuple(out)


def colour_order(grid: Grid) -> tuple[int, ...]:
    """The grid's background, then its other colours in the order they first appear (row by row)."""
    bg = background(grid)
    seen = [bg]
    for row in grid:
        for v in row:
            if v not in seen:
                seen.append(v)
    return tuple(seen)


Namer = Callable[[Grid], tuple[int, ...]]
T = TypeVar("T")


def learn_renamed(
    learner: Callable[[tuple[Pair, ...], Grid], T | None], S: tuple[Pair, ...], sample: Grid, namer: Namer
) -> T | None:
    """``learner`` on the pairs and sample with colours renamed by ``namer`` of each input (see :func:`to_roles`)."""
    pairs = []
    for i, o in S:
        roles = namer(i)
        pairs.append((to_roles(i, roles), to_roles(o, roles)))
    return learner(tuple(pairs), to_roles(sample, namer(sample)))


def apply_renamed(applier: Callable[[T, Grid], Grid], table: T, grid: Grid, namer: Namer) -> Grid:
    """Apply a table :func:`learn_renamed` learned, and give the colours their names back."""
    roles = namer(grid)
    return from_roles(applier(table, to_roles(grid, roles)), roles)


def learn_role_table(S: tuple[Pair, ...], sample: Grid) -> FeatureTable | None:
    """:func:`learn_feature_table` on the pairs with colours renamed by their role in each input."""
    return learn_renamed(learn_feature_table, S, sample, colour_roles)


def apply_role_table(table: FeatureTable, grid: Grid) -> Grid:
    """Apply a table learned by :func:`learn_role_table` to ``grid``."""
    return apply_renamed(apply_feature_table, table, grid, colour_roles)


# ---------------------------------------------------------------------------------------------
# scaled outputs: each output cell from the input cell it is a copy of under upscaling and under tiling

#: features of the two source cells the scaled learner looks at
SCALED_SOURCE = ("colour", "is_fg", "colour_rank", "n4_fg", "row_fg", "col_fg", "obj_c8_size", "bg_region_border")


def _scaled_features(grid: Grid, fy: int, fx: int) -> dict[str, np.ndarray]:
    """Per cell of the ``fy``×``fx`` scaled-up output: features of its upscale source ``(R // fy, C // fx)`` (``up_``)
    and of its tiling source ``(R % h, C % w)`` (``tile_``), and its offsets in both layouts."""
    h, w = shape(grid)
    names, arr = cell_features(grid)
    rr, cc = np.indices((h * fy, w * fx))
    up = ((rr // fy) * w + cc // fx).ravel()
    tile = ((rr % h) * w + cc % w).ravel()
    feats: dict[str, np.ndarray] = {}
    for n in SCALED_SOURCE:
        if n in names:
            row = arr[names.index(n)]
            feats[f"up_{n}"] = row[up]
            feats[f"tile_{n}"] = row[tile]
    feats["sub_row"] = np.minimum(rr % fy, CLIP - 1).ravel()
    feats["sub_col"] = np.minimum(cc % fx, CLIP - 1).ravel()
    feats["block_row"] = np.minimum(rr // h, CLIP - 1).ravel()
    feats["block_col"] = np.minimum(cc // w, CLIP - 1).ravel()
    return feats


def _scale(S: tuple[Pair, ...]) -> tuple[int, int] | None:
    """The scale factors of the pairs (see :func:`learn.learn_scale`), when they are small enough to learn from."""
    scale = learn.learn_scale(S)
    return None if scale is None or scale[0] * scale[1] > 30 else scale


def learn_scaled_table(S: tuple[Pair, ...], sample: Grid) -> tuple[int, int, FeatureTable] | None:
    """For outputs ``fy``×``fx`` times the input's size: a feature table over :func:`_scaled_features`."""
    scale = _scale(S) if S else None
    if scale is None:
        return None
    fy, fx = scale
    per = [_scaled_features(i, fy, fx) for i, _ in S]
    names = [n for n in per[0] if all(n in p for p in per)]
    train = {n: np.concatenate([p[n] for p in per]) for n in names}
    test = _scaled_features(sample, fy, fx)
    out = np.concatenate([np.array(o, dtype=np.int64).ravel() for _, o in S])
    changed = np.flatnonzero(out != train["up_colour"]) if "up_colour" in train else np.arange(0)
    table = search(train, out, test, changed)
    return None if table is None else (fy, fx, table)


def apply_scaled_table(learned: tuple[int, int, FeatureTable], grid: Grid) -> Grid:
    """The scaled output of ``grid`` by a table :func:`learn_scaled_table` learned."""
    fy, fx, (subset, mapping) = learned
    h, w = shape(grid)
    feats = _scaled_features(grid, fy, fx)
    cols = [feats[n].tolist() for n in subset]
    values = [mapping[key] for key in zip(*cols, strict=True)]
    width = w * fx
    return dsl.check(tuple(tuple(values[r * width : (r + 1) * width]) for r in range(h * fy)))


def learn_scaled_role_table(S: tuple[Pair, ...], sample: Grid) -> tuple[int, int, FeatureTable] | None:
    """:func:`learn_scaled_table` on the pairs with colours renamed by their role in each input."""
    return learn_renamed(learn_scaled_table, S, sample, colour_roles)


def apply_scaled_role_table(learned: tuple[int, int, FeatureTable], grid: Grid) -> Grid:
    """Apply a table learned by :func:`learn_scaled_role_table` to ``grid``."""
    return apply_renamed(apply_scaled_table, learned, grid, colour_roles)


# ---------------------------------------------------------------------------------------------
# separator cells: the same learner on the grid of cells (each cell one pixel of its main colour)

Layout = tuple[int, tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]


def cell_layout(grid: Grid) -> Layout:
    """The separator colour and the row and column spans of the cells between separator lines."""
    sep = dsl.separator_lines(grid)
    if sep is None:
        raise ValueError("no separator lines")
    colour, rows, cols = sep
    h, w = shape(grid)
    return colour, tuple(dsl._spans(rows, h)), tuple(dsl._spans(cols, w))


def cells_abstract(grid: Grid, layout: Layout) -> Grid:
    """One pixel per cell: the cell's most common colour other than the background and the separators."""
    line, rspans, cspans = layout
    bg = background(grid)
    out = []
    for r0, r1 in rspans:
        row = []
        for c0, c1 in cspans:
            counts: dict[int, int] = {}
            for cells in grid[r0:r1]:
                for v in cells[c0:c1]:
                    if v not in (bg, line):
                        counts[v] = counts.get(v, 0) + 1
            row.append(min(counts, key=lambda k: (-counts[k], k)) if counts else bg)
        out.append(tuple(row))
    return tuple(out)


def learn_cells_table(S: tuple[Pair, ...], sample: Grid) -> FeatureTable | None:
    """:func:`learn_feature_table` on the cell grids of same-shaped pairs (each pair read in its input's layout)."""
    if not S or any(shape(i) != shape(o) for i, o in S):
        return None
    pairs = []
    for i, o in S:
        layout = cell_layout(i)
        pairs.append((cells_abstract(i, layout), cells_abstract(o, layout)))
    return learn_feature_table(tuple(pairs), cells_abstract(sample, cell_layout(sample)))


def apply_cells_table(table: FeatureTable, grid: Grid) -> Grid:
    """Apply a cell-grid table: every cell whose pixel changes becomes solid in the new colour."""
    layout = cell_layout(grid)
    before = cells_abstract(grid, layout)
    after = apply_feature_table(table, before)
    _, rspans, cspans = layout
    rows = [list(row) for row in grid]
    for (r0, r1), old_row, new_row in zip(rspans, before, after, strict=True):
        for (c0, c1), old, new in zip(cspans, old_row, new_row, strict=True):
            if old != new:
                for r in range(r0, r1):
                    rows[r][c0:c1] = [new] * (c1 - c0)
    return tuple(tuple(row) for row in rows)
