"""Behaviour of the geometric conjugates of learned families (``conj∘*`` candidates)."""

from __future__ import annotations

import pytest
from battery_grids import g

from batt_tasks.battery import CANDIDATES, conjugate, dsl, run_candidates
from batt_tasks.battery.dsl import Grid
from batt_tasks.battery.learn import Context, NotLearned

BY_ID = {c.cid: c for c in CANDIDATES}


def shift_right_learned(ctx: Context, grid: Grid) -> Grid:
    """A toy orientation-specific learned family: shift everything one cell right, if every pair shows it."""
    if not all(dsl.shift(i, 0, 1) == o for i, o in ctx.S):
        raise NotLearned("not a right shift")
    return dsl.shift(grid, 0, 1)


def identity_learned(ctx: Context, grid: Grid) -> Grid:
    return grid


def loo_size(ctx: Context, grid: Grid) -> Grid:
    """Reports how many pairs leave-one-out keeps, as a 1×1 grid."""
    return ((len(ctx.loo()),),)


def test_conjugates_are_appended_with_unique_ids() -> None:
    ids = [c.cid for c in CANDIDATES]
    conj = [k for k, cid in enumerate(ids) if cid.startswith("conj∘")]
    assert conj and conj == list(range(len(ids) - len(conj), len(ids)))  # one block, at the end
    assert all(cid.split("∘", 1)[1] in BY_ID for cid in ids[conj[0] :])
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("name", conjugate.ORDER)
def test_round_trip_restores_the_grid(name: str) -> None:
    grid = g("1230 4560")  # not square, not symmetric
    ctx = Context("t", ((grid, grid),), grid)
    assert conjugate.conjugated(identity_learned, name, ctx, grid) == grid
    assert dsl.GEOMETRIC[conjugate.INVERSE[name]](dsl.GEOMETRIC[name](grid)) == grid


def test_rule_learned_on_transposed_pairs_reproduces_the_transposed_behaviour() -> None:
    # the pairs show a shift DOWN; the base only knows shifting right
    train = ((g("100 000 020"), g("000 100 000")), (g("030 000 000"), g("000 030 000")))
    sample = g("004 050 000")
    fn = conjugate.conjugate("toy_shift", shift_right_learned, conjugate.ORDER)
    ctx = Context("t_transposed", train, sample)
    with pytest.raises(NotLearned):
        shift_right_learned(ctx, sample)
    assert fn(ctx, sample) == g("000 004 050")
    assert conjugate.learn_symmetry("toy_shift", shift_right_learned, ctx) == "transpose"
    # a left shift needs a mirror, not a transpose
    right = ((g("100 020"), g("010 002")), (g("300 000"), g("030 000")))
    left = tuple((dsl.flip_h(i), dsl.flip_h(o)) for i, o in right)
    ctx_left = Context("t_left", left, g("050 006"))
    assert conjugate.learn_symmetry("toy_shift", shift_right_learned, ctx_left) == "flip_h"
    assert fn(ctx_left, g("050 006")) == g("500 060")


def test_silent_when_the_base_family_learns_itself() -> None:
    train = ((g("100 020"), g("010 002")), (g("300 000"), g("030 000")))
    fn = conjugate.conjugate("toy_shift", shift_right_learned, conjugate.ORDER)
    ctx = Context("t_base", train, g("400 000"))
    assert shift_right_learned(ctx, g("400 000")) == g("040 000")
    with pytest.raises(NotLearned):
        fn(ctx, g("400 000"))


def test_leave_one_out_is_preserved() -> None:
    train = ((g("12 34"), g("11 11")), (g("56 78"), g("22 22")), (g("90 12"), g("33 33")))
    for name in conjugate.ORDER:
        on_train = Context("t", train, train[1][0])
        assert conjugate.conjugated(loo_size, name, on_train, train[1][0]) == ((2,),)
        mapped = conjugate.conjugate_context(on_train, name)
        assert mapped.loo() == tuple((dsl.GEOMETRIC[name](i), dsl.GEOMETRIC[name](o)) for i, o in on_train.loo())
        off_train = Context("t", train, g("99 99"))
        assert conjugate.conjugated(loo_size, name, off_train, g("99 99")) == ((3,),)


def _alternating_from_right(width: int, rows: int = 2) -> tuple[Grid, Grid]:
    grid = tuple((5,) * width for _ in range(rows))
    out = tuple(tuple(3 if (width - 1 - c) % 2 == 0 else 5 for c in range(width)) for _ in range(rows))
    return grid, out


def test_feature_table_counts_from_the_right_edge_through_a_half_turn() -> None:
    # every second cell counted from the RIGHT edge is recoloured; widths of both parities
    train = tuple(_alternating_from_right(w) for w in (5, 6, 7, 8))
    sample, expected = _alternating_from_right(9)
    ctx = Context("t_right", train, sample)
    with pytest.raises(NotLearned):
        BY_ID["feature_table_learned"].fn(ctx, sample)
    assert BY_ID["conj∘feature_table_learned"].fn(ctx, sample) == expected
    # on a train input it predicts the pair from the others (leave-one-out), as the battery scores it
    i, o = train[2]
    assert BY_ID["conj∘feature_table_learned"].fn(Context("t_right", train, i), i) == o


@pytest.mark.parametrize(
    "train, sample",
    [
        (((g("1"), g("2")), (g("3"), g("4"))), g("1")),  # 1×1
        (((g("77 77"), g("77 77")), (g("777 777"), g("777 777"))), g("7777")),  # single colour
        (
            (
                (tuple((1,) * 30 for _ in range(30)), tuple((2,) * 30 for _ in range(30))),
                (tuple(tuple((r * c) % 10 for c in range(30)) for r in range(30)),) * 2,
            ),
            tuple(tuple((r + c) % 10 for c in range(30)) for r in range(30)),
        ),  # 30×30
    ],
)
def test_edge_cases_give_a_valid_grid_or_no_output(train: tuple[tuple[Grid, Grid], ...], sample: Grid) -> None:
    for name in conjugate.ORDER:
        ctx = Context("t_edge", train, sample)
        assert conjugate.conjugated(identity_learned, name, ctx, sample) == sample
    entries = run_candidates("t_edge", train, sample)
    for _, _, cid, grid in entries:
        if cid.startswith("conj∘"):
            assert 1 <= len(grid) <= 30 and 1 <= len(grid[0]) <= 30
    fn = BY_ID["conj∘feature_table_learned"].fn
    try:
        out = fn(Context("t_edge", train, sample), sample)
    except ValueError:
        return
    assert dsl.shape(out) == dsl.shape(sample)
