"""The cell-feature table learners and the layout rules of the battery's second round."""

from __future__ import annotations

import numpy as np
import pytest

from batt_tasks.battery import CANDIDATES, batt, features, rules
from batt_tasks.battery.dsl import Grid
from batt_tasks.battery.learn import Context


def _feature(grid: Grid, name: str) -> list[list[int]]:
    names, arr = features.cell_features(grid)
    return arr[names.index(name)].reshape(len(grid), len(grid[0])).tolist()


def test_cell_features_rays_neighbours_and_regions() -> None:
    grid: Grid = ((0, 0, 0, 0), (0, 1, 0, 2), (0, 0, 0, 0), (3, 0, 0, 0))
    none = features.NONE
    assert _feature(grid, "ray_right")[1] == [1, 2, 2, none]
    assert _feature(grid, "ray_up")[3] == [none, 1, none, 2]
    assert _feature(grid, "ray_down_right")[0][0] == 1
    assert _feature(grid, "between_h")[1][2] == none  # 1 on the left, 2 on the right
    assert _feature(grid, "n_left")[1][2] == 1
    assert _feature(grid, "n4_fg")[1][2] == 2
    assert _feature(grid, "nearest_colour")[2][0] == 3
    assert _feature(grid, "nearest_colour")[0][2] == none  # 1 and 2 are equally near
    assert _feature(grid, "row_major")[3] == [3, 3, 3, 3]
    assert _feature(grid, "obj_c8_size")[1][1] == 1


def test_cell_features_are_small_integers_and_cached() -> None:
    grid: Grid = tuple(tuple((r * 3 + c) % 4 for c in range(7)) for r in range(5))
    names, arr = features.cell_features(grid)
    assert arr.shape == (len(names), 35)
    assert arr.min() >= 0 and arr.max() <= 31
    assert features.cell_features(grid)[1] is arr


def test_separator_cell_features() -> None:
    grid: Grid = ((1, 0, 5, 0, 0), (1, 1, 5, 0, 0), (5, 5, 5, 5, 5), (0, 0, 5, 0, 0), (0, 0, 5, 0, 0))
    assert _feature(grid, "cell_col")[0] == [0, 0, features.NONE, 1, 1]
    assert _feature(grid, "cell_template")[4][3:] == [1, 1]  # the fullest cell's pattern, everywhere


# one rule: a foreground cell with no foreground neighbour (4-wise) becomes 5, others keep their colour
RULE_S: tuple[tuple[Grid, Grid], ...] = (
    (((1, 0, 0), (0, 0, 1), (0, 0, 1)), ((5, 0, 0), (0, 0, 1), (0, 0, 1))),
    (((0, 1, 0), (0, 0, 0), (1, 1, 0)), ((0, 5, 0), (0, 0, 0), (1, 1, 0))),
    (((1, 0, 1), (0, 0, 0), (0, 1, 1)), ((5, 0, 5), (0, 0, 0), (0, 1, 1))),
)

#: RULE_S with a pair that tells "isolated" from "one cell wide" (a vertical bar keeps its colour)
RULE_S4 = (*RULE_S, (((0, 1, 0), (0, 1, 0), (0, 0, 1)), ((0, 1, 0), (0, 1, 0), (0, 0, 5))))


def test_feature_table_learns_the_fewest_features_and_applies() -> None:
    sample: Grid = ((0, 0, 1), (1, 0, 0), (1, 0, 1))
    table = features.learn_feature_table(RULE_S, sample)
    assert table is not None
    subset, mapping = table
    assert len(subset) <= 2 and all(0 <= v <= 9 for v in mapping.values())
    assert features.apply_feature_table(table, sample) == ((0, 0, 5), (1, 0, 0), (1, 0, 5))


def test_search_refuses_unseen_values_and_conflicts() -> None:
    train = {"a": np.array([0, 1, 2, 0]), "b": np.array([0, 0, 1, 1])}
    out = np.array([3, 4, 5, 3])
    found = features.search(train, out, {"a": np.array([2, 0]), "b": np.array([0, 0])}, np.arange(0))
    assert found == (("a",), {(0,): 3, (1,): 4, (2,): 5})
    assert features.search(train, out, {"a": np.array([7]), "b": np.array([0])}, np.arange(0)) is None
    conflicting = np.array([3, 4, 5, 6])  # a=0 gives 3 and 6; (a, b) separates them
    found = features.search(train, conflicting, {"a": np.array([0]), "b": np.array([1])}, np.arange(0))
    assert found is not None and found[0] == ("a", "b")


def test_feature_table_needs_same_shapes() -> None:
    grown = ((((1,),), ((1,), (1,))),)
    assert features.learn_feature_table(grown, ((1,),)) is None


def test_role_table_carries_a_rule_to_new_colours() -> None:
    # the least frequent colour becomes the most frequent one; colours differ between pairs
    S = (
        (((1, 1, 2), (1, 1, 1)), ((1, 1, 1), (1, 1, 1))),
        (((3, 4, 3), (3, 3, 3)), ((3, 3, 3), (3, 3, 3))),
    )
    sample: Grid = ((6, 6, 6), (8, 6, 6))
    table = features.learn_role_table(S, sample)
    assert table is not None
    assert features.apply_role_table(table, sample) == ((6, 6, 6), (6, 6, 6))
    assert features.learn_feature_table(S, sample) is None  # the plain table has not seen 6 and 8


def test_scaled_table_learns_a_fractal() -> None:
    def fractal(g: Grid) -> Grid:
        h, w = len(g), len(g[0])
        return tuple(tuple(g[r % h][c % w] if g[r // h][c // w] else 0 for c in range(w * w)) for r in range(h * h))

    inputs = [((1, 0), (1, 1)), ((0, 1), (1, 0)), ((1, 1), (0, 1))]
    S = tuple((g, fractal(g)) for g in inputs)
    sample: Grid = ((0, 1), (1, 1))
    learned = features.learn_scaled_table(S, sample)
    assert learned is not None
    assert learned[:2] == (2, 2)
    assert features.apply_scaled_table(learned, sample) == fractal(sample)


def test_feature_candidates_learn_leave_one_out() -> None:
    """On a train input, a table candidate learns from the other pairs only, so it cannot memorise the pair."""
    by_id = {c.cid: c for c in CANDIDATES}
    cand = by_id["feature_table_learned"]
    first_in, first_out = RULE_S[0]
    # a fourth pair rules out "objects one cell wide become 5", which the other two pairs alone allow
    assert cand.fn(Context("t", RULE_S4, first_in), first_in) == first_out
    with pytest.raises(ValueError):  # from the two other pairs alone the rule is ambiguous on this input
        cand.fn(Context("t", RULE_S, first_in), first_in)
    lonely = RULE_S[:1]
    with pytest.raises(ValueError):
        cand.fn(Context("t", lonely, first_in), first_in)  # nothing left to learn from


def test_layout_rules() -> None:
    assert rules.count_diagonal(((1, 0, 2), (0, 0, 0), (3, 0, 0)), 4) == ((4, 0, 0), (0, 4, 0), (0, 0, 4))
    assert rules.count_bar(((1, 1, 0, 1), (1, 1, 0, 0)), (1, 2, 1, 4, 0)) == ((1, 0, 0, 0),)
    assert rules.pad_replicate(((1, 2), (3, 4)), 0) == (
        (0, 1, 2, 0),
        (1, 1, 2, 2),
        (3, 3, 4, 4),
        (0, 3, 4, 0),
    )
    assert rules.colour_histogram(((2, 2, 1), (1, 3, 1))) == ((1, 2, 3), (1, 2, 0), (1, 0, 0))
    with pytest.raises(ValueError):
        rules.colour_histogram(((0, 1),))
    # mask half (one colour) × pattern half
    grid: Grid = ((1, 0, 2, 0), (0, 1, 0, 3))
    assert rules.kronecker_halves(grid, "h") == ((2, 0, 0, 0), (0, 2, 0, 0), (0, 0, 3, 0), (0, 0, 0, 3))


def test_symmetrise_in_content_box_and_fullest_cells() -> None:
    grid: Grid = ((0, 0, 0, 0, 0), (0, 3, 0, 0, 0), (0, 0, 2, 0, 0), (0, 0, 0, 3, 0), (0, 0, 0, 0, 0))
    assert rules.symmetrise_in_box(grid, "h")[1][3] == 3
    cells: Grid = ((1, 0, 5, 2, 2), (0, 0, 5, 2, 0))
    assert rules.fill_fullest_cells(cells) == ((0, 0, 5, 2, 2), (0, 0, 5, 2, 2))


def test_every_candidate_with_an_output_gets_a_differ_score() -> None:
    S = RULE_S4
    sample, expected = RULE_S[1]
    o, s = batt("features_diff", S, sample, expected, None)
    scored = {cid for _, cid, did, _ in s if did == "cell_diff"}
    assert scored == {cid for _, _, cid, _ in o}
    scores = {cid: score for _, cid, _, (score,) in s}
    assert scores["feature_table_learned"] == 0
    assert scores["identity"] == int(np.sum(np.array(sample) != np.array(expected)))


def test_object_stamps_learned_per_look_and_refused_for_unseen_objects() -> None:
    # a 2×2 block of 5 gets four coloured corners outside it
    def pair(top: int, left: int) -> tuple[Grid, Grid]:
        grid = [[0] * 6 for _ in range(6)]
        out = [[0] * 6 for _ in range(6)]
        for r in (top, top + 1):
            for c in (left, left + 1):
                grid[r][c] = out[r][c] = 5
        out[top - 1][left - 1], out[top - 1][left + 2] = 1, 2
        out[top + 2][left - 1], out[top + 2][left + 2] = 3, 4
        return tuple(map(tuple, grid)), tuple(map(tuple, out))

    S = (pair(1, 1), pair(2, 3))
    stamps = rules.learn_object_stamps(S)
    assert stamps is not None
    sample, expected = pair(3, 2)
    assert rules.apply_object_stamps(sample, stamps) == expected
    with pytest.raises(ValueError):
        rules.apply_object_stamps(((0, 0, 0), (0, 7, 0), (0, 0, 0)), stamps)


def test_stamp_template_on_markers() -> None:
    grid: Grid = ((1, 2, 0, 0, 0), (0, 3, 0, 0, 0), (0, 0, 0, 0, 0), (0, 0, 0, 2, 0), (0, 0, 0, 0, 0))
    # the template's cell of the marker's colour (2) goes onto the marker; the template stays
    assert rules.stamp_template(grid, ("colour", True)) == (
        (1, 2, 0, 0, 0),
        (0, 3, 0, 0, 0),
        (0, 0, 0, 0, 0),
        (0, 0, 1, 2, 0),
        (0, 0, 0, 3, 0),
    )
    with pytest.raises(ValueError):
        rules.stamp_template(grid, ("centre", True))  # a 2×2 template has no centre cell


def test_crop_object_with_most_of_a_colour() -> None:
    grid: Grid = ((8, 1, 0, 8, 8), (8, 8, 0, 1, 1), (0, 0, 0, 0, 0), (8, 8, 8, 0, 0))
    assert rules.crop_most_of_colour(grid, (1, False)) == ((8, 8), (1, 1))
    with pytest.raises(ValueError):
        rules.crop_most_of_colour(grid, (2, False))
