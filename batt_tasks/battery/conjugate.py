"""Geometric conjugates of learned families: a rule learned in one orientation, shown in another.

For a candidate ``f`` and a symmetry ``g`` of the square (:data:`dsl.GEOMETRIC` without the identity), the
conjugate ``g⁻¹∘f∘g`` maps every train pair and the sample input through ``g``, runs ``f`` on a
:class:`~batt_tasks.battery.learn.Context` of the mapped pairs, and maps the output back through ``g⁻¹``.
Leave-one-out survives the mapping: ``g`` is a bijection, so the mapped sample equals a mapped train input
exactly when the sample is that train input, and :meth:`Context.loo` drops the same pair.

``g`` is a low-capacity parameter learned per task: the first symmetry (of a short list per base) under
which the conjugated ``f`` reproduces every train pair, each pair predicted from a context whose sample is
that pair's input (so table families predict it leave-one-out, as the battery scores them). The conjugate
is silent when ``f`` itself reproduces every train pair (it would be redundant, or a likely false positive
where it differs) and when its output on the sample is ``f``'s own. The search result is cached per task,
so every sample of a task shares one search.

Conjugating a family whose rule is already symmetric is waste; the bases (:data:`BASES`) are the
orientation-specific learned families that measurably gain from it on the training split.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from batt_tasks.battery import dsl
from batt_tasks.battery.dsl import Grid
from batt_tasks.battery.learn import FATAL, Context, NotLearned

CandidateFn = Callable[[Context, Grid], Grid]

#: The symmetries tried, in order (self-inverse ones first), and each one's inverse.
ORDER: tuple[str, ...] = ("transpose", "flip_h", "flip_v", "rot180", "antitranspose", "rot90", "rot270")
INVERSE: dict[str, str] = {name: name for name in ORDER} | {"rot90": "rot270", "rot270": "rot90"}

#: The half turn: it turns features anchored at the top/left edge (row and column indices and their
#: parities) into ones anchored at the bottom/right edge. A transpose only swaps rows and columns, which the
#: cell features already treat alike; the two single mirrors gain no more on training and cost twice as much.
END_ANCHORED: tuple[str, ...] = ("rot180",)

#: The base families conjugated (by candidate id) and the symmetries tried for each, in registry order.
#: Chosen by measurement on the training split: every learned (non-plain) family was tried with all seven
#: symmetries; only the cell-feature tables gain a task no candidate solves (rules counted from the right or
#: bottom edge), the four variants the same one, so only the first is conjugated. No train-perfect
#: conjugate of it is wrong on a test input.
BASES: tuple[tuple[str, tuple[str, ...]], ...] = (("feature_table_learned", END_ANCHORED),)

_CACHE_SIZE = 64
_learned_g: OrderedDict[tuple[Any, ...], str | None] = OrderedDict()


def conjugate_context(ctx: Context, g: str) -> Context:
    """``ctx`` with every train pair and the sample mapped through ``g`` (memoised on ``ctx``)."""
    fn = dsl.GEOMETRIC[g]

    def build() -> Context:
        pairs = tuple((fn(i), fn(o)) for i, o in ctx.S)
        return Context(ctx.task_id, pairs, fn(ctx.I) if ctx.I is not None else None)

    return ctx.memo(("conjugate", g), build)


def conjugated(base: CandidateFn, g: str, ctx: Context, grid: Grid) -> Grid:
    """``g⁻¹(base(g(ctx), g(grid)))``."""
    out = base(conjugate_context(ctx, g), dsl.GEOMETRIC[g](grid))
    return dsl.GEOMETRIC[INVERSE[g]](out)


def _reproduces(base: CandidateFn, ctx: Context, g: str | None) -> bool:
    """Whether ``base`` (conjugated by ``g``, unless None) gives every train output from its input, each pair
    being the sample in turn (so table families predict it leave-one-out)."""
    for i, o in ctx.S:
        pair_ctx = Context(ctx.task_id, ctx.S, i)
        try:
            if (base(pair_ctx, i) if g is None else conjugated(base, g, pair_ctx, i)) != o:
                return False
        except FATAL:
            raise
        except Exception:  # noqa: BLE001 - no output on a train pair: this symmetry does not fit
            return False
    return True


def learn_symmetry(key: str, base: CandidateFn, ctx: Context, options: tuple[str, ...] = ORDER) -> str | None:
    """The first symmetry of ``options`` under which ``base`` reproduces every train pair, or None (also when
    ``base`` reproduces them unconjugated: the conjugate would be redundant or a false positive).

    Cached per process by (base, options, task, train pairs): the value depends on nothing else, so every
    sample of a task shares one search. The unconjugated check runs only once a symmetry fits (rarely).
    """
    ck = (key, options, ctx.task_id, ctx.S)
    if ck in _learned_g:
        _learned_g.move_to_end(ck)
        return _learned_g[ck]
    found = None
    if len(ctx.S) >= 2:
        for g in options:
            if _reproduces(base, ctx, g):
                found = g
                break
        if found is not None and _reproduces(base, ctx, None):
            found = None
    _learned_g[ck] = found
    if len(_learned_g) > _CACHE_SIZE:
        _learned_g.popitem(last=False)
    return found


def conjugate(key: str, base: CandidateFn, options: tuple[str, ...] = ORDER) -> CandidateFn:
    """The candidate ``conj∘base``: ``base`` under the learned symmetry.

    Silent when ``base`` reproduces the train pairs itself, and when its own output on the sample is the
    conjugate's (redundant).
    """

    def run(ctx: Context, grid: Grid) -> Grid:
        g = ctx.need(("conj_g", key, options), lambda: learn_symmetry(key, base, ctx, options))
        out = conjugated(base, g, ctx, grid)
        try:
            same = base(ctx, grid) == out
        except FATAL:
            raise
        except Exception:  # noqa: BLE001 - the base has no output on the sample
            same = False
        if same:
            raise NotLearned("the base family gives the same output")
        return out

    return run


def add_conjugate_families(reg: Any) -> None:
    """Register ``conj∘<base>`` for every base family of :data:`BASES` present in ``reg``."""
    for cid, options in BASES:
        cand = reg.by_id.get(cid)
        if cand is not None:
            reg.add(f"conj∘{cid}", conjugate(cid, cand.fn, options))
