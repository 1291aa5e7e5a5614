"""The refusal rules against false positives: candidates that fit every train pair by chance give no output."""

from __future__ import annotations

import numpy as np
import pytest

from batt_tasks.battery import CANDIDATES, dsl, features, rules
from batt_tasks.battery.candidates import colormap_learned, compose, plain_after, refuse_identity
from batt_tasks.battery.dsl import Grid
from batt_tasks.battery.learn import Context, NotLearned

BY_ID = {c.cid: c for c in CANDIDATES}


def _echo(ctx: Context, grid: Grid) -> Grid:
    return grid


# ---------------------------------------------------------------------------------------------
# no-op outputs


def test_identity_output_refused_when_every_pair_changes() -> None:
    S = ((((1, 0),), ((2, 0),)), (((0, 1),), ((0, 2),)))
    sample: Grid = ((3, 3),)
    with pytest.raises(NotLearned):
        refuse_identity(_echo)(Context("t", S, sample), sample)
    # one unchanged pair: a no-op can be right, so it stays
    kept = (*S, (((5,),), ((5,),)))
    assert refuse_identity(_echo)(Context("t", kept, sample), sample) == sample
    # an output that differs from the input is never touched
    changed = refuse_identity(lambda ctx, g: dsl.flip_h(g))
    assert changed(Context("t", S, ((1, 2),)), ((1, 2),)) == ((2, 1),)


def test_identity_refusal_on_edge_grids() -> None:
    one: Grid = ((4,),)
    S = ((one, ((5,),)),)
    with pytest.raises(NotLearned):
        refuse_identity(_echo)(Context("t", S, one), one)
    big: Grid = tuple(tuple((r + c) % 10 for c in range(30)) for r in range(30))
    S_big = ((big, dsl.flip_h(big)),)
    with pytest.raises(NotLearned):
        refuse_identity(_echo)(Context("t", S_big, big), big)
    # a symmetric 30×30 grid flipped is itself: every train pair still changed, so the answer is refused
    flat: Grid = tuple((7,) * 30 for _ in range(30))
    with pytest.raises(ValueError):
        BY_ID["flip_h"].fn(Context("t", S_big, flat), flat)
    # the registered identity candidate keeps its output (the diff pass's reference)
    assert BY_ID["identity"].fn(Context("t", S_big, flat), flat) == flat


# ---------------------------------------------------------------------------------------------
# compositions whose pre-step never acted on a train input


def test_compose_refuses_a_pre_step_idle_on_every_train_input() -> None:
    crop = lambda ctx, g: dsl.crop_to_content(g, 0)  # noqa: E731
    cand = compose(colormap_learned, crop, "crop_content_test")
    # train inputs have no background border (0 only inside): the crop never changed one
    S = ((((1, 0, 2), (2, 0, 1)), ((3, 0, 2), (2, 0, 3))), (((2, 1),), ((2, 3),)))
    inside: Grid = ((1, 0), (2, 2))
    assert cand(Context("t", S, inside), inside) == ((3, 0), (2, 2))
    bordered: Grid = ((0, 0, 0), (0, 1, 2), (0, 2, 1))
    assert colormap_learned(Context("t", S, bordered), bordered) == ((0, 0, 0), (0, 3, 2), (0, 2, 3))
    with pytest.raises(NotLearned):
        cand(Context("t", S, bordered), bordered)


def test_compose_keeps_a_pre_step_that_acted_on_train() -> None:
    crop = lambda ctx, g: dsl.crop_to_content(g, 0)  # noqa: E731
    cand = compose(colormap_learned, crop, "crop_content_test")
    S = (
        (((0, 0, 0), (0, 1, 2)), ((3, 2),)),
        (((2, 1), (0, 0)), ((2, 3),)),
    )
    sample: Grid = ((0, 0), (1, 0), (0, 0))
    assert cand(Context("t", S, sample), sample) == ((3,),)


def test_plain_after_refuses_idle_pre_step() -> None:
    cand = plain_after(dsl.flip_h, lambda g: dsl.crop_to_content(g, 0), "crop_content_test")
    S = ((((1, 2),), ((2, 1),)),)
    assert cand(Context("t", S, ((3, 4),)), ((3, 4),)) == ((4, 3),)
    with pytest.raises(NotLearned):
        cand(Context("t", S, ((0, 0), (3, 4))), ((0, 0), (3, 4)))


# ---------------------------------------------------------------------------------------------
# colour maps say nothing about colours they never saw


def test_colour_map_refuses_unseen_colours() -> None:
    S = ((((1, 2),), ((2, 1),)), (((2, 1),), ((1, 2),)))
    assert colormap_learned(Context("t", S, ((2, 1),)), ((2, 1),)) == ((1, 2),)
    with pytest.raises(NotLearned):
        colormap_learned(Context("t", S, ((1, 7),)), ((1, 7),))
    with pytest.raises(NotLearned):  # single-colour 1×1 of a new colour
        colormap_learned(Context("t", S, ((9,),)), ((9,),))


# ---------------------------------------------------------------------------------------------
# rays: a direction that never crossed a background cell is not learned


def test_rays_need_painted_background() -> None:
    # colour 3 casts a ray to the right; its left side is always the border (trivially "satisfied")
    S = (
        (((3, 0, 0), (0, 0, 0)), ((3, 3, 3), (0, 0, 0))),
        (((0, 0, 0), (3, 0, 0)), ((0, 0, 0), (3, 3, 3))),
    )
    table = rules.learn_rays(S)
    assert table == {3: ((0, 1),)}
    # on a sample where 3 is in the middle, nothing is cast to the left
    assert rules.apply_rays(((0, 3, 0),), table) == ((0, 3, 3),)
    # nothing painted anywhere: no rays at all
    assert rules.learn_rays(((((3, 1),), ((3, 1),)),)) is None


# ---------------------------------------------------------------------------------------------
# feature tables: ambiguity means no answer


def test_search_refuses_when_equally_simple_subsets_disagree() -> None:
    train = {"a": np.array([0, 1, 0, 1]), "b": np.array([0, 1, 0, 1])}
    out = np.array([3, 4, 3, 4])
    # a and b split the train cells alike, but not the sample's
    assert features.search(train, out, {"a": np.array([0, 1]), "b": np.array([1, 1])}, np.arange(0)) is None
    # where they agree on the sample, the first is kept
    found = features.search(train, out, {"a": np.array([0, 1]), "b": np.array([0, 1])}, np.arange(0))
    assert found == (("a",), {(0,): 3, (1,): 4})


def test_search_keeps_the_first_against_a_less_simple_rival() -> None:
    # b needs three entries for what a says with two: a's answer stands though they disagree on the sample
    train = {"a": np.array([0, 1, 0, 1]), "b": np.array([0, 1, 2, 1])}
    out = np.array([3, 4, 3, 4])
    found = features.search(train, out, {"a": np.array([0, 1]), "b": np.array([1, 0])}, np.arange(0))
    assert found == (("a",), {(0,): 3, (1,): 4})
    # and a simpler rival that disagrees makes it refuse
    train2 = {"a": np.array([0, 1, 2, 1]), "b": np.array([0, 1, 0, 1])}
    assert features.search(train2, out, {"a": np.array([0, 1]), "b": np.array([1, 0])}, np.arange(0)) is None


def test_pick_unambiguous_prefers_the_cells_own_colour_on_ties() -> None:
    first = ((("colour", "x"), {(0, 0): 1, (1, 0): 2}), np.array([1, 2]))
    rival = ((("y", "x"), {(0, 0): 1, (1, 0): 2}), np.array([2, 2]))
    assert features.pick_unambiguous([first, rival]) == first[0]
    assert features.pick_unambiguous([rival, first]) is None  # the rival first: colour is simpler and disagrees
    assert features.pick_unambiguous([]) is None


def test_rays_candidate_refuses_unseen_colours() -> None:
    S = (
        (((3, 0, 0), (0, 0, 0)), ((3, 3, 3), (0, 0, 0))),
        (((0, 0, 0), (3, 0, 0)), ((0, 0, 0), (3, 3, 3))),
    )
    cand = BY_ID["rays_learned"].fn
    assert cand(Context("t", S, ((3, 0, 0),)), ((3, 0, 0),)) == ((3, 3, 3),)
    with pytest.raises(NotLearned):  # colour 8 never appeared in a train input
        cand(Context("t", S, ((3, 0, 8),)), ((3, 0, 8),))


def test_colour_map_needs_two_cells_of_evidence() -> None:
    # 1×1 pairs: each map entry rests on one cell, so the map answers for no colour seen only once
    S = ((((2,),), ((5,),)), (((3,),), ((3,),)), (((2,),), ((5,),)))
    assert colormap_learned(Context("t", S, ((2,),)), ((2,),)) == ((5,),)
    with pytest.raises(NotLearned):
        colormap_learned(Context("t", S, ((3,),)), ((3,),))
