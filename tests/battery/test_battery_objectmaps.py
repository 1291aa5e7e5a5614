"""Unit tests for the battery's object-level families (batt_tasks.battery.objectmaps).

Each primitive has a behaviour test on a small hand-made grid; every candidate of the module runs on the
edge cases (1×1, a single colour, a random 30×30) and either gives a valid grid or raises ValueError.
"""

from __future__ import annotations

import pytest
from battery_grids import edge_cases, g

from batt_tasks.battery import objectmaps as om
from batt_tasks.battery.candidates import CANDIDATES
from batt_tasks.battery.dsl import Grid
from batt_tasks.battery.learn import Context, NotLearned

EDGE_CASES = edge_cases(4321)
BIG: Grid = EDGE_CASES["30x30"]


# --------------------------------------------------------------------------- sliding to anchors


def test_slide_to_big_anchor_stacks_nearest_first() -> None:
    grid = g("0050000 0000000 0000000 0000000 0000220 0000220 0000000")
    # the lone 5 is on no row/column/diagonal of the block: nothing slides, no output
    with pytest.raises(ValueError):
        om.slide_to_anchors(grid, ("big", 8, "any", "keep", False, False))
    two = g("5005000 0000000 0000000 0000000 0000220 0000220 0000000")
    out = om.slide_to_anchors(two, ("big", 8, "any", "drop", False, False))
    # (0,0) slides diagonally to (3,3); (0,3) is on no ray (column 3 misses the block) and is dropped
    assert out == g("0000000 0000000 0000000 0005000 0000220 0000220 0000000")


def test_slide_same_colour_passes_other_anchors_and_recolour() -> None:
    grid = g("20102 20100")
    # the 2 at (0,4) passes the 1-line to reach the 2-line
    assert om.slide_to_anchors(grid, ("big", 4, "same", "drop", False, False)) == g("22100 20100")
    assert om.slide_to_anchors(grid, ("big", 4, "any", "drop", False, False)) == g("20120 20100")
    band = g("000 030 000 555")
    assert om.slide_to_anchors(band, ("big", 4, "any", "keep", True, False)) == g("000 000 050 555")


def test_slide_one_step() -> None:
    grid = g("30000 00000 00000 00040")
    params = ("static", 8, "any", "keep", False, True)
    assert om.slide_to_anchors(grid, params, (4,)) == g("00000 03000 00000 00040")


def test_slide_learned_from_pairs() -> None:
    S = (
        (g("0000 3000 0000 5555"), g("0000 0000 3000 5555")),
        (g("0030 0000 0000 5555"), g("0000 0000 0030 5555")),
    )
    sample = g("0300 0000 0000 5555")
    assert om.slide_learned(Context("t", S, sample), sample) == g("0000 0000 0300 5555")


def test_static_colours() -> None:
    S = ((g("120 000"), g("100 020")),)
    assert om.static_colours(S) == (1,)
    assert om.static_colours(((g("012"), g("012")),)) == (1, 2)
    assert om.static_colours(((g("12"), g("123")),)) is None


# --------------------------------------------------------------------------- templates


def test_stamp_template_same_shape() -> None:
    grid = g("120000 340000 000055 000055")
    assert om.stamp_template(grid, False) == g("120000 340000 000012 000034")
    assert om.stamp_template(grid, True) == g("000000 000000 000012 000034")
    with pytest.raises(ValueError):
        om.stamp_template(g("1200 0000 0050"), False)  # no object of the template's shape


def test_stamp_bbox_template_replaces_solid_boxes() -> None:
    grid = g("1200000 2200000 0000550 0000550")
    assert om.stamp_bbox_template(grid, False) == g("1200000 2200000 0000120 0000220")


# --------------------------------------------------------------------------- role tables


def test_cell_roles() -> None:
    grid = g("00000 01110 01010 01110 00000")
    objs, roles = om.cell_roles(grid, "c8")
    assert len(objs) == 1
    assert roles[(2, 2)] == (("hole", 0),)
    assert roles[(1, 1)] == (("edge", 0),)
    assert roles[(0, 0)] == (("halo_d", 0),)
    assert roles[(0, 1)] == (("halo4", 0),)
    assert (4, 4) not in roles or roles[(4, 4)] == (("halo_d", 0),)


def test_role_table_hollows_and_outlines() -> None:
    S = (
        (g("000000 011100 011100 011100 000000"), g("000000 011100 010100 011100 000000")),
        (g("0000000 0222220 0222220 0222220 0000000"), g("0000000 0222220 0200020 0222220 0000000")),
    )
    table = om.learn_role_table(S, "c8", "none")
    assert table is not None
    grid = g("00000 03330 03330 03330 03330")
    assert om.apply_role_table(grid, "c8", "none", table) == g("00000 03330 03030 03030 03330")
    cand = om.role_table_learned("c8")
    assert cand(Context("t", S, grid), grid) == g("00000 03330 03030 03030 03330")


def test_role_table_needs_unseen_key_guard() -> None:
    S = ((g("000 010 000"), g("222 212 222")),)
    table = om.learn_role_table(S, "c8", "colour")
    assert table is not None
    with pytest.raises(NotLearned):
        om.apply_role_table(g("000 030 000"), "c8", "colour", table)


def test_role_table_rejects_changes_far_from_objects() -> None:
    S = ((g("0000 0100 0000 0000"), g("0000 0100 0000 0002")),)
    assert om.learn_role_table(S, "c8", "none") is None


# --------------------------------------------------------------------------- references, regions, extractions


def test_recolour_like_reference() -> None:
    grid = g("55555000 52225011 55555000 00000000 03330000")
    # the 222 inside the frame is the reference: 333 (same shape) takes colour 2; 11 differs and stays
    assert om.recolour_like_reference(grid, (5, "ref", "enclosed")) == g("55555000 52225011 55555000 00000000 02220000")
    assert om.recolour_like_reference(grid, (5, "frame", "box"))[4] == (0, 5, 5, 5, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        om.recolour_like_reference(grid, (7, "ref", "box"))


def test_region_table_extremes() -> None:
    S = (
        (g("0010 0010 1111 0010"), g("2210 2210 1111 0013")),
        (g("0001 1111 0010"), g("2221 1111 0013")),
    )
    assert om.learn_region_table(S, "extreme") == {"largest": 2, "smallest": 3, "other": om.KEEP}
    sample = g("000010 111111 010000")
    assert om.region_table_learned(Context("t", S, sample), sample) == g("222213 111111 312222")


def test_region_next_to_colour() -> None:
    grid = g("0020 2220 0000")
    keys = om._region_keys(grid, "next_to_2")
    assert keys == [True, True] or all(keys)
    assert om._region_keys(grid, "next_to_4") == [False] * len(keys)


def test_keep_rarest_colour() -> None:
    grid = g("1100 0233 0110")
    assert om.keep_selected("rarest_colour")(grid) == g("0000 0200 0000")
    with pytest.raises(ValueError):
        om.keep_selected("rarest_colour")(g("0120"))


# --------------------------------------------------------------------------- moves, frames, templates


def test_align_rows_and_centre() -> None:
    grid = g("220000 220011 000011 000000 000000")
    # the 2-block lines up with the top row of the 1-block (reference colour 1)
    assert om.align_to_reference(grid, (1, "row_top")) == g("000000 220011 220011 000000 000000")
    with pytest.raises(ValueError):
        om.align_to_reference(g("220011 220011"), (1, "row_top"))  # nothing moves
    corners = g("3000003 0000000 2220000 0000000 0000000 0000000 3000003")
    out = om.align_to_reference(corners, (3, "centre"))
    assert out[3] == (0, 0, 2, 2, 2, 0, 0) and out[2] == (0,) * 7


def test_largest_object_pattern() -> None:
    grid = g("110000 110030 001100 301100 000000 000000")
    assert om.largest_object_pattern(grid, (2, 2)) == g("30 03")
    with pytest.raises(ValueError):
        om.largest_object_pattern(grid, (4, 4))


def test_gather_on_marker() -> None:
    grid = g("0000000 0150000 0000000 0000560 0000000")
    assert om.gather_on_marker(grid, (5, 3, 3)) == g("000 156 000")
    with pytest.raises(ValueError):
        om.gather_on_marker(grid, (5, 2, 3))  # no centre


def test_fill_holes_with_matching() -> None:
    grid = g("5555 5005 5555 0000 0770")
    assert om.fill_holes_with_matching(grid) == g("5555 5775 5555 0000 0000")
    with pytest.raises(ValueError):
        om.fill_holes_with_matching(g("555 505 555 000 770"))


def test_mirror_across_anchor() -> None:
    grid = g("00500 00000 22222 20002 00000")
    # the 5 reflects across the bracket's base row (row 2): row 0 -> row 4
    assert om.mirror_across_anchor(grid, 2) == g("00000 00000 22222 20002 00500")
    with pytest.raises(ValueError):
        om.mirror_across_anchor(grid, 7)


def test_stamp_on_markers_keys_and_subset() -> None:
    grid = g("0800000 3810000 0000000 0000003 0000000 0000001")
    # template 8/381 (key cells 3 and 1): the marks 3 over 1 ask for a copy turned a quarter
    out = om.stamp_on_markers(grid, ("keys", True))
    assert (out[3][6], out[4][6], out[5][6], out[4][5]) == (3, 8, 1, 8) and out[0] == (0,) * 7
    part = g("12300 44400 00000 00444 00003")
    assert om.stamp_on_markers(part, ("subset", False))[4] == (0, 0, 1, 2, 3)
    with pytest.raises(ValueError):  # a bare 444 fits the template four ways
        om.stamp_on_markers(g("12300 44400 00000 00444 00000"), ("subset", False))
    with pytest.raises(ValueError):
        om.stamp_on_markers(g("100 000 002"), ("keys", False))


def test_mirror_around_centre_object() -> None:
    grid = g("000000000 002000000 000200000 000404000 000040000 000404000 000000000 000000000 000000000")
    out = om.mirror_around_centre_object(grid)
    # the 4-cross is the pivot (centre (4,4)); the 2s are mirrored into the other quadrants
    assert (out[7][2], out[1][6], out[7][6], out[6][3], out[2][5], out[6][5]) == (2,) * 6
    assert sum(v == 2 for row in out for v in row) == 8
    with pytest.raises(ValueError):
        om.mirror_around_centre_object(g("000 040 000"))  # already symmetric


def test_stretch_box_to_marker() -> None:
    grid = g("000000 222000 212000 222000 000000 000008")
    assert om.stretch_box_to_marker(grid) == g("000000 222222 211112 211112 211112 222222")
    with pytest.raises(ValueError):
        om.stretch_box_to_marker(g("000 010 000"))


def test_mirror_at_marker_side() -> None:
    grid = g("000000 044200 000000")
    # the 2 marks the right side: the 4s are mirrored there, the background becomes 3
    assert om.mirror_at_marker_side(grid, 3) == g("333333 344443 333333")
    with pytest.raises(ValueError):
        om.mirror_at_marker_side(g("000 040 000"), 3)


def test_mark_centres_on_border() -> None:
    grid = g("0000000 0111000 0101000 0000000")
    assert om.mark_centres_on_border(grid, (4, "bottom")) == g("0000000 0111000 0101000 0040000")
    with pytest.raises(ValueError):
        om.mark_centres_on_border(g("0110 0000"), (4, "bottom"))  # even width: no middle column


def test_pixels_into_block() -> None:
    grid = g("100002 000000 003300 003300 000000 400005")
    assert om.pixels_into_block(grid) == g("000000 000000 001200 004500 000000 000000")
    with pytest.raises(ValueError):
        om.pixels_into_block(g("100 000 000"))


def test_slide_to_wall_with_bar() -> None:
    grid = g("0000020 0300020 0330020 0000020")
    assert om.slide_to_wall_with_bar(grid, 8) == g("0080020 0083020 0083320 0080020")
    with pytest.raises(ValueError):
        om.slide_to_wall_with_bar(g("030 000"), 8)


def test_shift_by_marker_count() -> None:
    grid = g("00105 00100 11111 00100")
    # one marker (5): the cross moves one down and one left, its lines still reaching the edges
    assert om.shift_by_marker_count(grid, (5, 1, -1)) == g("01000 01000 01000 11111")
    with pytest.raises(ValueError):
        om.shift_by_marker_count(grid, (7, 1, -1))


def test_bars_below_by_colours() -> None:
    grid = g("0000 0120 0340 0000 0000 0000 0000")
    # four colours: a bar four tall below the object
    assert om.bars_below_by_colours(grid, 3) == g("0000 0120 0340 0330 0330 0330 0330")
    with pytest.raises(ValueError):
        om.bars_below_by_colours(g("0110 0000"), 3)


def test_move_along_dots() -> None:
    grid = g("2220000 2323030 2220000")
    assert om.move_along_dots(grid, 2) == g("0022200 0323230 0022200")
    with pytest.raises(ValueError):
        om.move_along_dots(g("2220 2320 2220"), 2)  # one dot only


def test_overlay_colours_centred() -> None:
    grid = g("1010000 0000000 1010200 0000020 0000200")
    # the 1-corners have a 3×3 box, the 2s a 3×2 one: no whole-cell centring
    with pytest.raises(ValueError):
        om.overlay_colours_centred(grid)
    assert om.overlay_colours_centred(g("10100 00000 10100 00020")) == g("101 020 101")
    with pytest.raises(ValueError):
        om.overlay_colours_centred(g("111 111"))  # one colour


def test_invert_and_grow_boxes() -> None:
    grid = g("00000 00000 04440 04640 04440 00000 00000")
    assert om.invert_and_grow_boxes(grid) == g("00000 04440 46664 46464 46664 04440 00000")
    with pytest.raises(ValueError):
        om.invert_and_grow_boxes(g("444 464 444"))  # no room to grow


def test_stamp_on_markers_scaled_and_whole_marks() -> None:
    grid = g("2110000 0100000 0000000 0000220 0000220 0000000 0000000")
    out = om.stamp_on_markers(grid, ("keys_scaled", False))
    # the 2×2 mark takes the template scaled twice, running off the grid on the right
    assert out[3] == (0, 0, 0, 0, 2, 2, 1) and out[5] == (0, 0, 0, 0, 0, 0, 1)
    # at scale 1 the single 2 of the template could sit on one cell of the mark, but marks must be whole
    with pytest.raises(ValueError):
        om.stamp_on_markers(grid, ("keys", False))


def test_recolour_by_predicate() -> None:
    S = (
        (g("550000 550055 000005 500000"), g("220000 220011 000001 100000")),
        (g("555005 000005 550000 550000"), g("111001 000001 220000 220000")),
    )
    params = om.learn_predicate_recolour(S)
    assert params is not None and params[3:] == (2, 1)
    sample = g("5500 5500 0000 0555")
    assert om.recolour_by_predicate_learned(Context("t", S, sample), sample) == g("2200 2200 0000 0111")
    assert om.learn_predicate_recolour(((g("50 00"), g("55 00")),)) is None  # the mask changes


def test_bends() -> None:
    ell = om.objects(g("100 100 111"), True, True, 0)[0]
    you = om.objects(g("101 101 111"), True, True, 0)[0]
    tee = om.objects(g("111 010 010"), True, True, 0)[0]
    assert om._bends(ell) == (2, 1)
    assert om._bends(you) == (2, 2)
    assert om._bends(tee)[0] == 3
    ring = om.objects(g("00000 01110 01010 01110 00000"), True, True)[0]
    assert om._square_hole(ring) is True
    long_ring = om.objects(g("000000 011110 010010 011110 000000"), True, True)[0]
    assert om._square_hole(long_ring) is False and om._square_hole(ell) is False


def test_recolour_by_sighted_marker() -> None:
    grid = g("0200600 0000000 5500555 5500555")
    # looking up from each grey object: the 2 above the left block, the 6 above the right one
    assert om.recolour_by_sighted_marker(grid, (5, -1, 0, False)) == g("0200600 0000000 2200666 2200666")
    with pytest.raises(ValueError):
        om.recolour_by_sighted_marker(grid, (5, 1, 0, False))  # nothing below
    rows = g("1055 2050 3005")
    assert om.recolour_by_sighted_marker(rows, (5, 0, -1, True)) == g("1011 2020 3003")


def test_recolour_half() -> None:
    grid = g("200 202 202 202 202")
    # bars of 5 and 4 cells: their lowest 2 cells each (the middle cell of the odd bar stays)
    assert om.recolour_half(grid, ("lower", 8)) == g("200 202 202 808 808")
    assert om.recolour_half(g("0000 1111"), ("right", 3)) == g("0000 1133")
    with pytest.raises(ValueError):
        om.recolour_half(g("000"), ("lower", 8))


# --------------------------------------------------------------------------- every candidate on the edge cases

OBJ_CANDIDATES = [c for c in CANDIDATES if c.cid.startswith("obj_")]


def test_candidates_registered_at_the_end() -> None:
    ids = [c.cid for c in CANDIDATES]
    first = ids.index(OBJ_CANDIDATES[0].cid)
    # one block after the earlier families (later rounds append their own blocks after it)
    assert all(cid.startswith("obj_") for cid in ids[first : first + len(OBJ_CANDIDATES)])
    assert len(OBJ_CANDIDATES) >= 10


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_candidates_on_edge_cases(name: str) -> None:
    grid = EDGE_CASES[name]
    S = ((grid, grid), (BIG, BIG))
    for cand in OBJ_CANDIDATES:
        ctx = Context("t", S, grid)
        try:
            out = cand.fn(ctx, grid)
        except ValueError:
            continue
        assert isinstance(out, tuple) and out and all(len(row) == len(out[0]) for row in out), cand.cid
        assert len(out) <= 30 and len(out[0]) <= 30


# --------------------------------------------------------------------------- round 2


def test_role_table_c8_defers_to_c4_when_the_pairs_cannot_tell() -> None:
    # train objects are all 4-connected: c4 and c8 tables both fit (halo of 2-cell bars painted 3)
    S = (
        (g("000000 022000 000000 000000"), g("333300 322300 333300 000000")),
        (g("000000 000000 000220 000000"), g("000000 003333 003223 003333")),
        (g("0000000 0000000 0022000 0000000 0000000"), g("0000000 0333300 0322300 0333300 0000000")),
    )
    diagonal = g("000000 020000 002000 000000 000000")  # c8 sees one 2-cell object, c4 two lone cells
    assert om.choose_role_prop(S, "c4") is not None
    with pytest.raises(NotLearned):
        om.role_table_learned("c8")(Context("t", S, diagonal), diagonal)
    plain = g("000000 000000 000220 000000 000000")  # no diagonal contact: both agree and c8 answers
    out = om.role_table_learned("c8")(Context("t", S, plain), plain)
    assert out == g("000000 003333 003223 003333 000000")


def test_relative_role_table_paints_holes_with_the_object_colour() -> None:
    S = (
        (g("00000 01110 01010 01110 00000"), g("00000 01110 01110 01110 00000")),
        (g("00000 02220 02020 02220 00000"), g("00000 02220 02220 02220 00000")),
    )
    table = om.learn_relative_role_table(S, "c8", "none")
    assert table is not None and table[("hole", 0)] == om.OWN
    grid = g("000000 044440 040040 044440 000000")
    assert om.apply_relative_role_table(grid, "c8", "none", table) == g("000000 044440 044440 044440 000000")
    # an absolute table says it all: the relative learner declines
    same = ((S[0][0], S[0][1]), (S[0][0], S[0][1]))
    assert om.learn_relative_role_table(same, "c8", "none") is None


def test_complete_template_parts() -> None:
    grid = g("0000000000 0121000000 0000000000 0000000000 0000101000 0000000000 1000000200")
    out = om.complete_template_parts(grid)
    # the 1.1 part gets its 2, the lone 2 gets its 1s (identity first); a lone 1 is not a whole part
    assert out[4][4:7] == (1, 2, 1)
    assert out[6][6:9] == (1, 2, 1) and out[5][7] == 0
    assert out[6][0] == 1 and out[5][0] == 0 and out[6][1] == 0
    assert om.complete_template_parts(grid, erase=True)[1] == (0,) * 10
    with pytest.raises(ValueError):
        om.complete_template_parts(g("000 010 000"))  # no multi-coloured template


def test_recolour_by_nearest() -> None:
    grid = g("1000002 1050002 1000502 1000002")
    assert om.recolour_by_nearest(grid, (5, "manhattan", False)) == g("1000002 1010002 1000202 1000002")
    with pytest.raises(ValueError):  # equidistant from both colours
        om.recolour_by_nearest(g("10502"), (5, "manhattan", True))
    assert om.recolour_by_nearest(g("1050002"), (5, "manhattan", True)) == g("1010002")
    with pytest.raises(ValueError):
        om.recolour_by_nearest(g("10502"), (5, "chebyshev", False))


def test_project_markers() -> None:
    grid = g("0030000 0000000 0088800 4088800 0000000 0000060")
    out = om.project_markers(grid, 8)
    assert out[2][2] == 3 and out[3][2] == 4
    assert out[3][4] == 8 and out[5][5] == 6  # the 6 sees nothing in its row or column
    with pytest.raises(ValueError):
        om.project_markers(g("000 080 000"), 8)  # no marker
