"""Pattern completion and drawing families (``cmp_*``) of :mod:`batt_tasks.battery.completion`."""

from __future__ import annotations

import pytest
from battery_grids import g

from batt_tasks.battery import CANDIDATES, completion, run_candidates
from batt_tasks.battery.dsl import Grid
from batt_tasks.battery.learn import Context


def outputs(task_id: str, S: tuple[tuple[Grid, Grid], ...], grid: Grid) -> dict[str, Grid]:
    return {cid: out for _, _, cid, out in run_candidates(task_id, S, grid) if cid.startswith("cmp_")}


# ---------------------------------------------------------------------------------------------
# lattices


def diagonal_pattern(h: int, w: int) -> Grid:
    return tuple(tuple((1, 2, 3)[(r + c) % 3] for c in range(w)) for r in range(h))


def test_find_lattice_sees_a_sheared_period_the_mask_hides() -> None:
    full = diagonal_pattern(6, 6)
    masked = tuple(tuple(0 if r >= 2 and c >= 2 else v for c, v in enumerate(row)) for r, row in enumerate(full))
    py, px, s = completion.find_lattice(masked, 0)  # type: ignore[misc]
    assert py * px <= 3
    assert completion.repair_lattice(masked, 0) == full


def test_lattice_classes_follow_the_shear() -> None:
    cls = completion.lattice_classes(3, 3, (1, 3, 2))
    assert cls[0, 0] == cls[1, 2] == cls[2, 1]
    assert cls[0, 0] != cls[0, 1]


def test_repair_lattice_without_a_period_or_mask_raises() -> None:
    with pytest.raises(ValueError):
        completion.repair_lattice(g("12 34"), 0)  # nothing masked
    with pytest.raises(ValueError):
        completion.repair_lattice(g("0"), 0)  # 1×1, all masked


def test_repair_lattice_30x30() -> None:
    full = diagonal_pattern(30, 30)
    masked = tuple(
        tuple(0 if 10 <= r < 15 and 3 <= c < 9 else v for c, v in enumerate(row)) for r, row in enumerate(full)
    )
    assert completion.repair_lattice(masked, 0) == full


# ---------------------------------------------------------------------------------------------
# symmetry about a detected centre


def test_symmetrise_about_an_off_centre_point() -> None:
    grid = g("00000 01100 01000 00000 00000")
    out = completion.symmetrise_about(grid, "rot90", None)
    assert out == g("00000 01100 01100 00000 00000")


def test_symmetrise_with_a_new_colour_and_pivot() -> None:
    # a 2×2 pivot of 3s; the L of 2s mirrored about it in both directions
    grid = g("200000 220000 003300 003300 000000 000000")
    out = completion.symmetrise_about(grid, "hv", 5, pivot=True)
    assert out == g("200005 220055 003300 003300 550055 500005")


def test_symmetry_centre_rejects_conflicts_and_single_colour() -> None:
    # one colour only: no pivot
    assert completion.pivot_centre(g("010 111 010"), "hv") is None
    # a 1×1 grid has no foreground-bearing centre to agree with
    assert completion.symmetry_centre(g("0"), "hv", False) is None


# ---------------------------------------------------------------------------------------------
# rays keyed by neighbourhood


def test_neighbourhood_rays_learn_a_corner_ray() -> None:
    pairs = (
        (g("00000 00000 00110 00110 00000"), g("10000 01000 00110 00110 00000")),
        (g("000000 000000 000000 000110 000110 000000"), g("100000 010000 001000 000110 000110 000000")),
    )
    table = completion.learn_neighbourhood_rays(pairs, (False, False, False, False))
    assert table is not None
    test = g("0000 0110 0110 0000")
    assert completion.apply_neighbourhood_rays(test, table, (False, False, False, False)) == g("1000 0110 0110 0000")


def test_neighbourhood_rays_refuse_a_shape_the_pairs_never_showed() -> None:
    pairs = (
        (g("00000 00000 00110 00110 00000"), g("10000 01000 00110 00110 00000")),
        (g("000000 000000 000000 000110 000110 000000"), g("100000 010000 001000 000110 000110 000000")),
    )
    mode = (False, False, False, False)
    table = completion.learn_neighbourhood_rays(pairs, mode)
    assert table is not None
    assert True in table.values() and False in table.values()  # cast and seen-not-casting keys
    with pytest.raises(ValueError, match="unseen"):  # a lone pixel: its 3×3 mask never occurred
        completion.apply_neighbourhood_rays(g("0000 0000 0010 0000"), table, mode)


def test_symmetry_options_try_the_largest_group_first() -> None:
    ctx = Context("t", ((g("010 000 000"), g("010 000 010")),))
    kinds = [kind for kind, colour, pivot in completion._symmetry_options(ctx) if colour is None and not pivot]
    assert kinds[0] == "all"
    assert max(kinds.index("rot90"), kinds.index("hv")) < min(kinds.index("h"), kinds.index("diag"))


def test_neighbourhood_rays_need_a_drawn_ray() -> None:
    same = ((g("010 000"), g("010 000")),)
    assert completion.learn_neighbourhood_rays(same, (True, False, True, False)) is None


def test_transformed_mask_rotates_with_direction() -> None:
    # direction up (index 0 of NEIGHBOURS_8), mask with only the "down" neighbour set
    down_bit = 1 << (7 - 1)
    d, mask = completion._transformed(0, down_bit, 2)  # half turn
    assert d == 1 and mask == 1 << (7 - 0)


# ---------------------------------------------------------------------------------------------
# fills, lines, tiles


def test_flood_from_seeds_fills_only_touched_regions() -> None:
    grid = g("01050 00050 55555 00000")
    assert completion.flood_from_seeds(grid, (1, False)) == g("11150 11150 55555 00000")
    with pytest.raises(ValueError):
        completion.flood_from_seeds(g("0"), (1, False))


def test_fill_empty_lines() -> None:
    grid = g("101 000 101")
    assert completion.fill_empty_lines(grid, (2, False)) == g("121 222 121")
    with pytest.raises(ValueError):
        completion.fill_empty_lines(g("1"), (2, False))


def test_output_tile_learned_from_the_largest_output() -> None:
    pairs = (
        (g("000 000"), g("120 012")),
        (g("00000 00000"), g("12012 01201")),
    )
    tile = completion.learn_output_tile(pairs)
    assert tile == g("120 012")
    assert completion.apply_output_tile(g("0000000 0000000"), tile) == g("1201201 0120120")


def test_output_tile_needs_two_shapes() -> None:
    pairs = ((g("00 00"), g("12 21")), (g("11 00"), g("12 21")))
    assert completion.learn_output_tile(pairs) is None


def test_fill_empty_squares_and_extend_runs() -> None:
    grid = g("0001 0001 1111")
    assert completion.fill_empty_squares(grid, (2, 3)) == g("3331 3331 1111")
    assert completion.extend_runs(g("00120 00000"), "h") == g("12121 00000")
    with pytest.raises(ValueError):
        completion.extend_runs(g("1"), "hv")


def test_rays_to_largest_stop_at_the_target() -> None:
    grid = g("00000 03000 00000 00000 22000")
    # the 3 sees the 2s straight down
    assert completion.rays_to_target(grid, False) == g("00000 03000 03000 03000 22000")


# ---------------------------------------------------------------------------------------------
# as candidates


def test_candidates_are_registered_in_one_block_with_unique_ids() -> None:
    ids = [c.cid for c in CANDIDATES]
    cmp_ids = [cid for cid in ids if cid.startswith("cmp_")]
    assert len(cmp_ids) >= 10
    assert len(set(ids)) == len(ids)
    start = ids.index(cmp_ids[0])
    assert ids[start : start + len(cmp_ids)] == cmp_ids


def test_masked_region_candidate_picks_the_mask_that_repairs() -> None:
    def sym(seed: int) -> Grid:
        half = [[(seed + r * 3 + c) % 7 + 1 for c in range(4)] for r in range(4)]
        rows = [row + row[::-1] for row in half]
        return tuple(tuple(row) for row in rows + rows[::-1])

    def masked(grid: Grid, top: int, left: int) -> tuple[Grid, Grid]:
        rows = [list(r) for r in grid]
        hidden = tuple(tuple(grid[r][left : left + 2]) for r in range(top, top + 2))
        for r in range(top, top + 2):
            for c in range(left, left + 2):
                rows[r][c] = 0
        return tuple(tuple(r) for r in rows), hidden

    S = (masked(sym(0), 1, 1), masked(sym(2), 2, 5), masked(sym(4), 5, 2))
    test_in, test_out = masked(sym(1), 0, 4)
    out = outputs("cmp_masked", S, test_in)
    assert out.get("cmp_masked_region_symmetry") == test_out


def test_candidates_give_no_output_on_unrelated_tasks() -> None:
    S = ((g("12 34"), g("4")), (g("56 78"), g("8")))
    out = outputs("cmp_none", S, g("11 11"))
    assert not out


def test_context_memo_makes_candidates_deterministic() -> None:
    S = ((g("0100 0000 0000"), g("1111 0000 0000")), (g("0000 0010 0000"), g("0000 1111 0000")))
    ctx = Context("cmp_det", S, g("0000 0000 0100"))
    fn = next(c.fn for c in CANDIDATES if c.cid == "cmp_fill_empty_lines")
    with pytest.raises(ValueError):
        fn(ctx, g("0000 0000 0100"))


# ---------------------------------------------------------------------------------------------
# pattern continuation and line drawing


def test_continue_pattern_in_each_direction() -> None:
    grid = g("12120000 00000000")
    assert completion.continue_pattern(grid, "right") == g("12121212 00000000")
    assert completion.continue_pattern(completion.dsl.flip_h(grid), "left") == g("21212121 00000000")
    column = completion.dsl.transpose(grid)
    assert completion.continue_pattern(column, "down") == completion.dsl.transpose(g("12121212 00000000"))
    with pytest.raises(ValueError):
        completion.continue_pattern(g("1"), "right")


def test_tile_content_band() -> None:
    grid = g("000 000 121 000")
    assert completion.tile_content_band(grid, "v") == g("121 121 121 121")
    with pytest.raises(ValueError):
        completion.tile_content_band(g("0"), "v")


def test_bounce_line_reflects_off_the_walls() -> None:
    grid = g("000 000 000 000 100")
    assert completion.bounce(grid, ("away", None)) == g("100 010 001 010 100")
    assert completion.bounce(grid, ("away", 8)) == g("188 818 881 818 188")
    with pytest.raises(ValueError):
        completion.bounce(g("0"), ("away", None))


def test_complete_by_analogy() -> None:
    grid = g("12112 00000 34000")
    assert completion.complete_by_analogy(grid, "h") == g("12112 00000 34334")
    with pytest.raises(ValueError):
        completion.complete_by_analogy(g("10 00"), "h")  # no full template line


def test_stripes_from_two_and_reflect_extend() -> None:
    grid = g("0100000 0000000 0002000")
    assert completion.stripes_from_two(grid) == g("0102010 0102010 0102010")
    assert completion.reflect_extend(g("12 34 56"), ("v", 2)) == g("12 34 56 34 12")
    with pytest.raises(ValueError):
        completion.reflect_extend(g("12"), ("v", 2))


def test_pad_to_a_learned_shape() -> None:
    assert completion.pad_to(g("10 00"), (("mul", 2, 2), "br")) == g("0000 0000 0010 0000")
    with pytest.raises(ValueError):
        completion.pad_to(g("12"), (("add", 0, 0), "tl"))


def test_alternating_flood_and_spiral() -> None:
    grid = g("5555 0320 5505")
    assert completion.alternating_flood(grid, 5) == g("5555 2323 5535")
    assert completion.spiral(g("000000 000000 000000 000000 000000 000000"), 3) == g(
        "333333 000003 333303 303303 300003 333333"
    )
    with pytest.raises(ValueError):
        completion.alternating_flood(g("1"), 5)


def test_periodic_rays_and_centre_lines() -> None:
    right = completion.dsl.NEIGHBOURS_8.index((0, 1))
    assert completion.periodic_rays(g("20000 00000"), (right, 5)) == g("25252 00000")
    grid = g("00000 01110 01010 01110 00000")
    assert completion.lines_through_centres(grid, (6, "hv")) == g("00600 01110 61616 01110 00600")


def test_large_grid_stays_bounded() -> None:
    big = tuple(tuple((r * 7 + c * 3) % 10 for c in range(30)) for r in range(30))
    with pytest.raises(ValueError):
        completion.symmetrise_about(big, "all", None)
    with pytest.raises(ValueError):
        completion.fill_empty_lines(big, (5, False))
    assert completion.tile_content_band(big, "hv") == big


def test_l_path_turns_once() -> None:
    grid = g("0800 0000 0002")
    assert completion.l_path(grid, (8, "v", 4)) == g("0800 0400 0442")
    assert completion.l_path(grid, (8, "h", 4)) == g("0844 0004 0002")
    with pytest.raises(ValueError):
        completion.l_path(g("8"), (8, "v", 4))


def test_tip_rays_follow_the_body() -> None:
    grid = g("00000 02000 01000 00000 00000")
    # the tip (1) is below the body (2): towards the body is up, away is down
    assert completion.tip_rays(grid, False) == g("00000 02000 01000 01000 01000")
    assert completion.tip_rays(grid, True) == g("01000 02000 01000 00000 00000")
    with pytest.raises(ValueError):
        completion.tip_rays(g("1"), True)


def test_split_connect_and_midpoint_stamp() -> None:
    assert completion.split_connect(g("10002 00000"), 5) == g("11522 00000")
    assert completion.midpoint_stamp(g("00000 10001 00000"), (3, "plus")) == g("00300 13331 00300")
    with pytest.raises(ValueError):
        completion.midpoint_stamp(g("1"), (3, "dot"))


def test_cycle_header() -> None:
    assert completion.cycle_header(g("12 55 00 00 00"), "v") == g("12 55 11 22 11")
    with pytest.raises(ValueError):
        completion.cycle_header(g("10 55 00"), "v")


def test_repair_rotation_off_centre() -> None:
    # a 4×4 pattern with quarter-turn symmetry, two 7-columns on its right: the centre is off the grid's
    def rep(r: int, c: int) -> tuple[int, int]:
        orbit = [(r, c), (c, 3 - r), (3 - r, 3 - c), (3 - c, r)]
        return min(orbit)

    full = tuple(tuple((rep(r, c)[0] * 4 + rep(r, c)[1]) % 9 + 1 for c in range(4)) + (7, 7) for r in range(4))
    hidden = {(0, 1), (1, 1), (2, 0)}
    masked = tuple(tuple(0 if (r, c) in hidden else v for c, v in enumerate(row)) for r, row in enumerate(full))
    assert completion.repair_rotation(masked, 0) == full
    with pytest.raises(ValueError):
        completion.repair_rotation(g("12 34"), 0)


def test_symmetrise_objects_each_about_its_own_centre() -> None:
    grid = g("0000000 0110000 0100000 0000000 0000220 0000020 0000000")
    out = completion.symmetrise_objects(grid, ("h", None, 0))
    assert out == g("0000000 0110000 0110000 0000000 0000220 0000220 0000000")
    with pytest.raises(ValueError):
        completion.symmetrise_objects(g("0"), ("h", None, 0))


def test_outline_and_diagonal_connection() -> None:
    grid = g("00000 00200 00000")
    assert completion.outline(grid, (2, False, 1)) == g("00100 01210 00100")
    assert completion.outline(grid, (-1, True, 1)) == g("01110 01210 01110")
    with pytest.raises(ValueError):
        completion.outline(g("0"), (3, False, 1))
    assert completion.connect_diagonal_in(g("3000 0000 0030 0000"), 5) == g("3000 0500 0030 0000")


def test_continue_both_ways_and_rays_to_any_shape() -> None:
    assert completion.continue_both_ways(g("0001210000"), "h") == g("2121212121")
    with pytest.raises(ValueError):
        completion.continue_both_ways(g("1"), "v")
    grid = g("30000 00000 00000 02200 00000 00004 00000 00000 00033")
    out = completion.rays_to_target(grid, False, True)
    assert out[1][0] == 0  # 3 at the corner sees no shape in its row or column
    assert completion.rays_to_target(g("00000 20044 00000"), False, True) == g("00000 22244 00000")


# ---------------------------------------------------------------------------------------------
# round 2: occluded symmetry, empty squares of a learned colour


def test_symmetrise_unoccluded_restores_a_mirror_shape_under_a_box() -> None:
    grid = g("0000000 0223300 0203300 0223300 0000000")
    # the 3-box hides the right half of 2222/2..2/2222; of the axes that send every visible cell onto its own
    # colour or under the box (columns 2 and 2.5), the one nearest the middle of shape and box is taken
    assert completion.symmetrise_unoccluded(grid, (3, "h")) == g("0000000 0222200 0200200 0222200 0000000")
    assert completion.symmetrise_unoccluded(grid, ("box", "h")) == g("0000000 0222200 0200200 0222200 0000000")


def test_symmetrise_unoccluded_refuses_uncovered_background_and_missing_occluder() -> None:
    # the shape's mirror would fall on uncovered background: no centre explains it
    with pytest.raises(ValueError):
        completion.symmetrise_unoccluded(g("00000 02000 02200 00003"), (3, "h"))
    with pytest.raises(ValueError, match="occluded"):
        completion.symmetrise_unoccluded(g("0220 0000"), (3, "h"))
    with pytest.raises(ValueError):
        completion.symmetrise_unoccluded(g("5"), (5, "all"))


def test_occluder_box_needs_one_solid_box_colour() -> None:
    assert completion.occluder(g("0000 0110 0110 2020"), "box") == 1
    with pytest.raises(ValueError):
        completion.occluder(g("1100 1100 0022 0022"), "box")  # two boxes
    assert completion.occluder(g("12"), 4) == 4


def test_fill_empty_squares_of_a_learned_colour_and_disjoint_windows() -> None:
    grid = g("55555 50005 50005 50005 55555")
    assert completion.fill_empty_squares(grid, (2, 1, 0)) == g("55555 51115 51115 51115 55555")
    # greedy disjoint 2×2 windows in reading order: only the top-left one fits
    assert completion.fill_empty_squares(grid, (2, 1, 0, 1)) == g("55555 51105 51105 50005 55555")
    with pytest.raises(ValueError):
        completion.fill_empty_squares(grid, (4, 1, 0))
    big = tuple(tuple(0 for _ in range(30)) for _ in range(30))
    assert completion.fill_empty_squares(big, (5, 3, 0, 1)) == tuple(tuple(3 for _ in range(30)) for _ in range(30))


def test_painted_over_is_the_one_colour_under_every_change() -> None:
    assert completion.painted_over(((g("05 00"), g("15 10")), (g("50"), g("51")))) == 0
    assert completion.painted_over(((g("05"), g("11")),)) is None
    assert completion.painted_over(((g("05"), g("05 00")),)) is None
