"""Parameters learned from a task's train pairs ``S``.

A :class:`Context` wraps ``S`` and memoises each learned parameter, so the candidates that need the
same parameter (a colour map, a scale factor, an output size...) compute it once per sample.

Two kinds of learning:

- *low-capacity parameters* (a colour map, scale factors, a fill colour, which object selector...) are
  learned from every train pair and must agree on all of them;
- *tables* (a local 3×3 rule, an object-property → colour table) could memorise a pair outright, so they
  are learned leave-one-out: when the sample input is one of the train inputs, that pair is left out
  (:meth:`Context.loo`), and a table only answers for keys it has seen. A table therefore scores on a
  train sample only when the *other* pairs explain it.

Learners return None when the pairs do not determine the parameter; the candidate then has no output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np

from batt_tasks.battery import dsl
from batt_tasks.battery.dsl import Grid, shape

Pair = tuple[Grid, Grid]
T = TypeVar("T")
P = TypeVar("P")

_MISSING = object()


def _fatal_types() -> tuple[type[BaseException], ...]:
    try:
        from billiard.exceptions import SoftTimeLimitExceeded
    except ImportError:  # pragma: no cover - billiard comes with celery
        return ()
    return (SoftTimeLimitExceeded,)


#: Exceptions that stop the whole batt rather than one candidate: a worker's soft time limit must reach
#: the task, never be mistaken for "this candidate has no output".
FATAL: tuple[type[BaseException], ...] = _fatal_types()


class NotLearned(ValueError):
    """The train pairs do not determine this parameter."""


class Context:
    """The train pairs of one sample and a memo of what has been learned from them."""

    def __init__(self, task_id: str, S: tuple[Pair, ...], sample: Grid | None = None) -> None:
        self.task_id = task_id
        self.S = S
        self.I = sample
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """``compute()``'s value, computed once per context; an exception is memoised and re-raised too."""
        value = self._memo.get(key, _MISSING)
        if value is _MISSING:
            try:
                value = compute()
            except FATAL:
                raise
            except Exception as exc:  # noqa: BLE001 - remembered so a failing learner runs once
                value = exc
            self._memo[key] = value
        if isinstance(value, Exception):
            raise value
        return value

    def need(self, key: Any, compute: Callable[[], T | None]) -> T:
        """Like :meth:`memo`, but a None result raises :class:`NotLearned`."""
        value = self.memo(key, compute)
        if value is None:
            raise NotLearned(str(key))
        return value

    def loo(self) -> tuple[Pair, ...]:
        """The train pairs without the one whose input is this sample's input (leave-one-out)."""
        return self.memo("loo", lambda: tuple(p for p in self.S if p[0] != self.I))

    def through(self, key: str, fn: Callable[[Context, Grid], Grid]) -> Context:
        """A context whose train inputs (and sample input) went through ``fn`` first; for composed learners."""

        def build() -> Context:
            pairs = tuple((fn(self, i), o) for i, o in self.S)
            sample = fn(self, self.I) if self.I is not None else None
            return Context(self.task_id, pairs, sample)

        return self.memo(("through", key), build)


def fit(S: Iterable[Pair], options: Iterable[P], apply: Callable[[Grid, P], Grid]) -> P | None:
    """The first option ``p`` with ``apply(i, p) == o`` for every pair, or None."""
    pairs = list(S)
    if not pairs:
        return None
    for p in options:
        try:
            if all(apply(i, p) == o for i, o in pairs):
                return p
        except FATAL:
            raise
        except Exception:  # noqa: BLE001, S112 - an option that fails does not fit
            continue
    return None


def same_shapes(S: Iterable[Pair]) -> bool:
    """Whether every output has its input's shape."""
    return all(shape(i) == shape(o) for i, o in S)


def output_colours(S: Iterable[Pair]) -> tuple[int, ...]:
    """Colours that appear in some output, ascending."""
    return tuple(sorted({v for _, o in S for row in o for v in row}))


def new_colours(S: Iterable[Pair]) -> tuple[int, ...]:
    """Colours painted where an output differs from its same-shaped input, ascending."""
    found: set[int] = set()
    for i, o in S:
        if shape(i) == shape(o):
            found.update(b for ri, ro in zip(i, o, strict=False) for a, b in zip(ri, ro, strict=False) if a != b)
    return tuple(sorted(found))


def learn_colour_map(S: tuple[Pair, ...]) -> dict[int, int] | None:
    """A cell-wise colour map consistent over every same-shaped train pair, or None."""
    mapping: dict[int, int] = {}
    if not S:
        return None
    for i, o in S:
        if shape(i) != shape(o):
            return None
        for ri, ro in zip(i, o, strict=False):
            for a, b in zip(ri, ro, strict=False):
                if mapping.setdefault(a, b) != b:
                    return None
    if all(a == b for a, b in mapping.items()):
        return None
    return mapping


def learn_scale(S: tuple[Pair, ...]) -> tuple[int, int] | None:
    """The integer factors ``(fy, fx)`` with output shape = input shape × factors in every pair, or None."""
    factors = set()
    for i, o in S:
        (hi, wi), (ho, wo) = shape(i), shape(o)
        if ho % hi or wo % wi:
            return None
        factors.add((ho // hi, wo // wi))
    if len(factors) != 1:
        return None
    (fy, fx) = factors.pop()
    return None if (fy, fx) == (1, 1) else (fy, fx)


def learn_downscale(S: tuple[Pair, ...]) -> tuple[int, int] | None:
    """The integer factors with input shape = output shape × factors in every pair, or None."""
    return learn_scale(tuple((o, i) for i, o in S))


def learn_output_shape(S: tuple[Pair, ...]) -> tuple[int, int] | None:
    """The output shape when it is the same in every pair, or None."""
    shapes = {shape(o) for _, o in S}
    return shapes.pop() if len(shapes) == 1 else None


ShapeRule = tuple[str, int, int]


def learn_shape_rule(S: tuple[Pair, ...]) -> ShapeRule | None:
    """How the output shape follows from the input's: ``("const", h, w)``, ``("mul", fy, fx)`` or
    ``("add", dy, dx)``; the first rule every pair agrees on, or None."""
    if not S:
        return None
    const = learn_output_shape(S)
    if const is not None and len(S) > 1 and len({shape(i) for i, _ in S}) > 1:
        return ("const", *const)
    scale = learn_scale(S)
    if scale is not None:
        return ("mul", *scale)
    deltas = {(shape(o)[0] - shape(i)[0], shape(o)[1] - shape(i)[1]) for i, o in S}
    if len(deltas) == 1:
        return ("add", *deltas.pop())
    if const is not None:
        return ("const", *const)
    return None


def apply_shape_rule(rule: ShapeRule, grid: Grid) -> tuple[int, int]:
    """The output shape ``rule`` gives for ``grid``."""
    kind, a, b = rule
    h, w = shape(grid)
    if kind == "const":
        return a, b
    if kind == "mul":
        return h * a, w * b
    return h + a, w + b


def learn_tile_layout(S: tuple[Pair, ...]) -> tuple[int, int, tuple[tuple[str, ...], ...]] | None:
    """For outputs made of ``ny``×``nx`` blocks of the input's shape, which geometric transform fills each block.

    Returns ``(ny, nx, names)`` with ``names[by][bx]`` a key of :data:`dsl.GEOMETRIC`, agreed by every pair.
    """
    scale = learn_scale(S)
    if scale is None:
        return None
    ny, nx = scale
    names: list[tuple[str, ...]] = []
    for by in range(ny):
        row: list[str] = []
        for bx in range(nx):
            found = None
            for name, fn in dsl.GEOMETRIC.items():
                if all(_block(o, by, bx, *shape(i)) == fn(i) for i, o in S):
                    found = name
                    break
            if found is None:
                return None
            row.append(found)
        names.append(tuple(row))
    return ny, nx, tuple(names)


def _block(grid: Grid, by: int, bx: int, h: int, w: int) -> Grid:
    return tuple(row[bx * w : (bx + 1) * w] for row in grid[by * h : (by + 1) * h])


def apply_tile_layout(layout: tuple[int, int, tuple[tuple[str, ...], ...]], grid: Grid) -> Grid:
    """Build the output of a learned tile layout for ``grid``."""
    ny, nx, names = layout
    rows: list[tuple[int, ...]] = []
    for by in range(ny):
        blocks = [dsl.GEOMETRIC[names[by][bx]](grid) for bx in range(nx)]
        if len({shape(b) for b in blocks}) != 1:
            raise ValueError("non-square block transform on a non-square grid")
        for r in range(len(blocks[0])):
            rows.append(tuple(v for b in blocks for v in b[r]))
    return dsl.check(tuple(rows))


# ---------------------------------------------------------------------------------------------
# local rules: output cell = f(input neighbourhood), learned leave-one-out


SENTINEL = 10
WINDOWS: dict[str, tuple[tuple[int, int], ...]] = {
    "3x3": tuple((dr, dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)),
    "cross": ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)),
    "cell_row_col": ((0, 0),),
    "cell_row": ((0, 0),),
    "cell_col": ((0, 0),),
}


def _window_keys(grid: Grid, window: str) -> np.ndarray:
    """One integer key per cell encoding its neighbourhood (cells outside the grid are SENTINEL)."""
    a = dsl.to_array(grid).astype(np.int64)
    h, w = a.shape
    padded = np.full((h + 2, w + 2), SENTINEL, dtype=np.int64)
    padded[1:-1, 1:-1] = a
    keys = np.zeros((h, w), dtype=np.int64)
    for dr, dc in WINDOWS[window]:
        keys = keys * 11 + padded[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
    if window.startswith("cell_"):
        # the cell, the set of colours in its row and/or in its column (as bit masks)
        row_bits = np.zeros(h, dtype=np.int64)
        col_bits = np.zeros(w, dtype=np.int64)
        for colour in range(10):
            row_bits |= (a == colour).any(axis=1).astype(np.int64) << colour
            col_bits |= (a == colour).any(axis=0).astype(np.int64) << colour
        if "row" in window:
            keys = keys * 1024 + row_bits[:, None]
        if "col" in window:
            keys = keys * 1024 + col_bits[None, :]
    return keys


def learn_local_rule(S: tuple[Pair, ...], window: str) -> dict[int, int] | None:
    """A table neighbourhood-key → output colour consistent over every (same-shaped) pair, or None."""
    if not S or not same_shapes(S):
        return None
    table: dict[int, int] = {}
    for i, o in S:
        for k, v in zip(_window_keys(i, window).ravel().tolist(), dsl.to_array(o).ravel().tolist(), strict=False):
            if table.setdefault(k, v) != v:
                return None
    return table


def apply_local_rule(table: dict[int, int], grid: Grid, window: str) -> Grid:
    """Apply a learned local rule; raises :class:`NotLearned` when some neighbourhood was never seen."""
    keys = _window_keys(grid, window)
    h, w = keys.shape
    flat = keys.ravel().tolist()
    try:
        values = [table[k] for k in flat]
    except KeyError as exc:
        raise NotLearned("unseen neighbourhood") from exc
    return tuple(tuple(values[r * w : (r + 1) * w]) for r in range(h))
