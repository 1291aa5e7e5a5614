"""Behaviour of the partition, composition and counting → layout primitives (``part_*`` candidates)."""

from __future__ import annotations

import pytest
from battery_grids import g

from batt_tasks.battery import CANDIDATES, partition
from batt_tasks.battery.dsl import Grid
from batt_tasks.battery.learn import Context, NotLearned

BY_ID = {c.cid: c for c in CANDIDATES}


def run(cid: str, train: list[tuple[Grid, Grid]], grid: Grid) -> Grid:
    return BY_ID[cid].fn(Context("t", tuple(train), grid), grid)


def test_part_candidates_are_appended_with_unique_ids() -> None:
    ids = [c.cid for c in CANDIDATES]
    part = [k for k, cid in enumerate(ids) if cid.startswith("part_")]
    assert part and part == list(range(part[0], part[0] + len(part)))  # one block
    assert len(set(ids)) == len(ids)


def test_sep_layout_prefers_foreground_lines_and_equal_cells() -> None:
    grid = g("10501 01500 55555 10500 00501")
    layout = partition.sep_layout(grid)
    assert layout == (5, ((0, 2), (3, 5)), ((0, 2), (3, 5)))
    assert partition.sep_layout(g("1")) is None
    assert partition.sep_layout(g("11 11")) is None


def test_unequal_cells_need_equal_false() -> None:
    grid = g("105000 015000 555555 100500")
    assert partition.sep_layout(grid) is None
    layout = partition.sep_layout(grid, False)
    assert layout is not None and layout[0] == 5


def test_gap_cells_and_pixels() -> None:
    grid = g("110220 110220 000000 330000")
    cells = partition.gap_cells(grid)
    assert [[c for c in row] for row in cells] == [[g("11 11"), g("22 22")], [g("33"), g("00")]]
    assert partition.gap_pixels(grid) == g("12 30")
    with pytest.raises(ValueError):
        partition.gap_cells(g("11 11"))


def test_key_recolour_up_and_down() -> None:
    key = g("12 34")
    mask = g("5050 0500 5005 0550")
    assert partition.key_recolour(key, mask, 0, "up") == g("1020 0100 3004 0340")
    big = g("550000 550000 000055 000055")
    assert partition.key_recolour(key, big, 0, "down") == g("10 04")
    with pytest.raises(ValueError):
        partition.key_recolour(key, g("555"), 0, "up")


def test_key_recolour_down_majority() -> None:
    key = g("12 34")
    mask = g("5500 5500 0055 0005")
    assert partition.key_recolour(key, mask, 0, "down") == g("10 04")


def test_key_and_mask_corners() -> None:
    grid = g("2000003 1111111 0100010 0105010 0100010 1111111 4000006")
    key, mask, bg = partition.key_and_mask(grid, "corners")
    assert key == g("23 46") and mask == g("000 050 000") and bg == 0


def test_cells_from_selected() -> None:
    # 2×2 layout of 2×2 cells; the cell with fewest pixels tells which cell to fill with which colour
    grid = g("12510 34503 55555 12512 34534")
    out = partition.cells_from_selected(grid, "fewest_fg")
    assert out == g("11500 11500 55555 00533 00533")


def test_move_marked_cell() -> None:
    grid = g("40512 00536 55555 00500 00500")
    assert partition.move_marked_cell(grid, 4) == g("40500 00500 55555 00500 00500")
    grid = g("04512 00536 55555 00500 00500")
    assert partition.move_marked_cell(grid, 4) == g("00504 00500 55555 00500 00500")
    with pytest.raises(ValueError):
        partition.move_marked_cell(grid, 7)


def test_complete_from_template_in_separator_colour() -> None:
    grid = g("11801 01810 88888 00800 00810")
    assert partition.complete_from_template(grid, ("most_fg", -1)) == g("11881 01818 88888 88888 08818")


def test_role_fill_learned_leave_one_out() -> None:
    a = g("00500500 00500500 55555555 00500500")
    a_out = g("11500500 11500500 55555555 00500533")
    b = g("0505050 5555555 0505050")
    b_out = g("1505050 5555555 0505053")
    table = partition.learn_role_fill(((a, a_out), (b, b_out)))
    assert table is not None and table[(0, 0)] == 1 and table[(1, 1)] == 3
    c = g("0505050505")
    assert partition.apply_role_fill(g("0500 5555 0500"), table) == g("1500 5555 0533")
    assert partition.learn_role_fill(((c, c),)) is None


def test_cell_transforms() -> None:
    i = g("12500 34500")
    o = g("12521 34543")
    names = partition.learn_cell_transforms(((i, o),))
    assert names == (("identity", "flip_h"),)
    assert partition.apply_cell_transforms(g("78500 90500"), names) == g("78587 90509")


def test_overlay_corner_windows() -> None:
    grid = g("1000002 0000000 0000000 3000004")
    assert partition.overlay_corner_windows(grid, (2, 3)) == ((1, 0, 2), (3, 0, 4))
    with pytest.raises(ValueError):
        partition.overlay_corner_windows(grid, (1, 1))


def test_stripes_lines_histogram() -> None:
    assert partition.stripe_sequence(g("1122333 1112233 1122233")) == g("123")
    assert partition.stripe_sequence(g("111 222 233")) == ((1,), (2,), (3,))
    grid = g("0000 2222 0000 3330")
    assert partition.line_colours_square(grid) == g("22 33")
    hist = partition.largest_objects_histogram(g("1003 1003 0200"))
    assert hist == g("13 13")


def test_pixels_in_order_snake() -> None:
    grid = g("0100 3000 0002 0040")
    assert partition.pixels_in_order(grid, ("col", True, 2, 2)) == g("31 24")
    with pytest.raises(ValueError):
        partition.pixels_in_order(grid, ("col", False, 1, 1))


def test_counting_layouts() -> None:
    assert partition.copies_by_count(g("10 00")) == g("100000 000000 000000 000000 000000 000000")
    with pytest.raises(ValueError):
        partition.copies_by_count(g("11 10"))
    assert partition.staircase_rows(g("110000")) == g("110000 111000 111100")
    assert partition.staircase_around(g("000 100 000"), (3, 1)) == g("330 100 000")
    assert partition.diagonals_by_colours(g("10")) == g("01 10")
    assert partition.noisiest_region_colour(g("1111 1911 2222 2292 2922")) == ((2,),)


def test_scale_into_frame() -> None:
    grid = g("0000000 0222200 0200200 0200200 0222200 0000000 3000000")
    assert partition.scale_into_frame(grid) == g("2222 2332 2332 2222")


def test_rescale_majority() -> None:
    assert partition.rescale_majority(g("0000 0102 0000 0304"), (2, 2)) == g("1122 1122 3344 3344")


@pytest.mark.parametrize(
    "grid", [g("5"), g("55 55"), tuple(tuple((r * 30 + c) % 10 for c in range(30)) for r in range(30))]
)
def test_edge_grids_give_no_output_or_a_valid_grid(grid: Grid) -> None:
    pairs = ((g("12 34"), g("1")), (g("21 43"), g("2")))
    for cand in CANDIDATES:
        if not cand.cid.startswith("part_"):
            continue
        try:
            out = cand.fn(Context("t", pairs, grid), grid)
        except (ValueError, NotLearned):
            continue
        assert 1 <= len(out) <= 30 and all(1 <= len(row) <= 30 for row in out)


def test_middle_line_and_padded_crop() -> None:
    assert partition.keep_middle_line(g("102 050 370"), "v") == g("000 050 070")
    assert partition.keep_middle_line(g("102 050 370"), "h") == g("000 050 000")
    with pytest.raises(ValueError):
        partition.keep_middle_line(g("12 34"), "v")
    grid = g("00000 08080 05050 05050 08080 00000")
    assert partition.crop_colour_padded(grid, (5, 1, 0)) == g("808 505 505 808")
    with pytest.raises(ValueError):
        partition.crop_colour_padded(grid, (5, 3, 0))


def test_fractal_of_shrunk_content_and_noise_shrink() -> None:
    grid = g("000000 110000 110000 001100 001100 000000")
    assert partition.fractal_of_shrunk_content(grid, 2) == g("1000 0100 0010 0001")
    noisy = g("0000002 0660000 0660000 0006600 2006600 0000000")
    assert partition.shrink_object_in_noise_colour(noisy) == g("20 02")


def test_overlay_on_anchor() -> None:
    grid = g("00000000 01500000 00000000 00000530 00000000")
    out = partition.overlay_on_anchor(grid, (5, 3, 3))
    assert out == g("000 153 000")


def test_assemble_bounce_nested() -> None:
    grid = g("000000 011000 010000 000000 000330 000030")
    pieces = g("0000000 0110000 0100022 0000002 0400000 0440003 0000033")
    assert partition.assemble_corners(pieces) == g("1122 1002 4003 4433")
    with pytest.raises(ValueError):
        partition.assemble_corners(grid)
    assert partition.bounce(g("1 2 3"), ("v", 2)) == g("1 2 3 2 1")
    assert partition.bounce(g("12"), ("h", 3)) == g("1212")
    assert partition.nested_corners_extend(g("12 22"), (3, 3)) == g("121 221 111")


def test_parts_of_splits() -> None:
    grid = g("10501 01500 55555 10500 00501")
    assert partition.parts_of(grid, "sep") == [g("10 01"), g("01 00"), g("10 00"), g("00 01")]
    assert partition.parts_of(g("1234"), "h2") == [g("12"), g("34")]
    with pytest.raises(ValueError):
        partition.parts_of(g("123"), "h2")


def test_combine_parts_counts_set_parts() -> None:
    grid = g("100 110 011 000")  # four 1×3 slices stacked (v4)
    assert partition.combine_parts(grid, ("v4", "or", 7)) == g("777")
    assert partition.combine_parts(grid, ("v4", "and", 7)) == g("000")
    assert partition.combine_parts(grid, ("v4", "odd", 7)) == g("007")
    assert partition.combine_parts(grid, ("v4", "not_all", 7)) == g("777")
    assert partition.combine_parts(g("10 01"), ("v2", "none", 3)) == g("00")


def test_overlay_by_learned_priority() -> None:
    # three stacked 1×3 parts; 2 beats 1 beats 3
    pairs = (
        (g("120 013 300"), g("123")),
        (g("103 210 030"), g("213")),
    )
    order = partition.learn_priority(pairs, "v3")
    assert order is not None and order.index(2) < order.index(1) < order.index(3)
    assert partition.overlay_by_priority(g("300 100 200"), "v3", order) == g("200")
    with pytest.raises(NotLearned):
        partition.overlay_by_priority(g("400 100 200"), "v3", order)
    assert partition.learn_priority(((g("12 21"), g("1")),), "v2") is None  # 1 and 2 both win


def test_select_part() -> None:
    grid = g("110220330 110200330")
    assert partition.select_part(grid, ("gaps", "fewest_fg")) == g("22 20")
    assert partition.select_part(grid, ("gaps", "unique_mask")) == g("22 20")


def test_cell_rule_fills_cells_by_colour_set() -> None:
    i1, o1 = g("10502 00500"), g("11522 11522")
    i2, o2 = g("00520 00500"), g("00522 00522")
    table = partition.learn_cell_rule(((i1, o1), (i2, o2)), "colours")
    assert table is not None and table[()] == ("keep",)
    assert partition.apply_cell_rule(g("20501 00500"), "colours", table) == g("22511 22511")
    with pytest.raises(NotLearned):
        partition.apply_cell_rule(g("40500 00500"), "colours", table)


def test_select_then_transform_and_recolour() -> None:
    pairs = (
        (g("120330 100330"), g("21 01")),  # the part that is not solid, flipped left-right
        (g("210330 020330"), g("12 20")),
    )
    learned = partition.learn_select_then(pairs)
    assert learned is not None and learned[2] == "flip_h"
    assert partition.apply_select_then(g("340550 030550"), learned) == g("43 30")
    assert partition.learn_select_then(((g("1200 1200"), g("12 12")),)) is None  # plain selection: not this one


def test_verified_rule_needs_every_pair() -> None:
    good = (g("102 050 370"), g("000 050 070"))
    bad = (g("102 050 370"), g("102 050 370"))
    cand = BY_ID["part_keep_middle_column"]
    grid = g("12345 67890 12345")
    assert cand.fn(Context("t", (good,), grid), grid) == g("00300 00800 00300")
    with pytest.raises(NotLearned):
        cand.fn(Context("t", (good, bad), grid), grid)


def test_stripes_rings_bars() -> None:
    assert partition.clean_stripes(g("1122 1322 1122")) == g("1122 1122 1122")
    assert partition.reverse_rings(g("111 121 111")) == g("222 212 222")
    with pytest.raises(ValueError):
        partition.reverse_rings(g("12 34"))
    bars = g("0110 0000 2220 0000")
    assert partition.stack_bars(bars, "right") == g("0000 0000 0011 0222")
    # bars standing in columns, stacked against the right edge, longest rightmost
    assert partition.stack_bars_turned(g("010 012 002 002"), ("right", "rot90")) == g("012 012 002 000")
    with pytest.raises(ValueError):
        partition.stack_bars_turned(g("010 012 002 002"), ("right", "identity"))


def test_shift_lines_swap_and_frame_crop() -> None:
    # one marker cell (5): the cross moves one down and one left
    assert partition.shift_lines_by_count(g("0200 2222 0200 0205"), (5, 1, -1)) == g("2000 2000 2222 2000")
    with pytest.raises(ValueError):
        partition.shift_lines_by_count(g("2000 2222 2000 2005"), (5, 0, -1))  # the column would leave the grid
    assert partition.swap_content_colours(g("0000 0440 0460 0000")) == g("66 64")
    frames = g("11110000 13310000 11110000 00000000 22222000 23002000 22222000")
    assert partition.crop_frame_with_most_dots(frames) == g("3333 3333 3333")
    with pytest.raises(ValueError):
        partition.crop_frame_with_most_dots(g("11110000 13310000 11110000 00000000 22222000 23032000 22222000"))


def test_fit_two_pieces() -> None:
    assert partition.fit_two_pieces(g("000000 330000 300000 000000 000400 000000"), (2, 2)) == g("33 34")
    assert partition.fit_two_pieces(g("000000 330000 000000 000000 000440 000000"), (2, 2)) == g("33 44")
    with pytest.raises(ValueError):
        partition.fit_two_pieces(g("000000 330000 000000 000000 000440 000000"), (3, 3))


def test_pixel_stamp_learned_for_any_colour() -> None:
    stamp = partition.learn_pixel_stamp(((g("00000 00000 00100 00000"), g("00000 08080 00100 08080")),))
    assert stamp == (((-1, -1), 8), ((-1, 1), 8), ((1, -1), 8), ((1, 1), 8))
    assert partition.apply_pixel_stamp(g("000 020 000"), stamp) == g("808 020 808")
    assert partition.apply_pixel_stamp(g("000 020 000"), (((-1, -1), 8), ((1, 1), -1))) == g("800 020 002")
    assert partition.learn_pixel_stamp(((g("000 010 000"), g("000 010 000")),)) is None


def test_cell_table_by_filled_cells() -> None:
    # blocks between empty columns; a filled block becomes 1, whatever its colour
    pairs = ((g("30020 30020"), g("11")), (g("40300 40300"), g("11")), (g("50607 50607"), g("111")))
    learned = partition.learn_cell_table(pairs, "gaps", "filled")
    assert learned == ("grid", {True: 1})
    assert partition.learn_cell_table(pairs, "gaps", "colours") is not None
    cand = BY_ID["part_cell_table_gaps_by_filled_learned"]
    grid = g("70809 70809")
    assert cand.fn(Context("t", pairs, grid), grid) == g("111")
