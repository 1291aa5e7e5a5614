"""Unit tests for the battery's grid DSL (batt_tasks.battery.dsl) and object extraction (objects).

Each primitive has a behaviour test on a small hand-made grid, and every primitive is run on the edge
cases (1×1, a single colour, a random 30×30): it returns a valid grid (or value) or raises ValueError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from battery_grids import FLAT, ONE, edge_cases, g

from batt_tasks.battery import dsl
from batt_tasks.battery.dsl import Grid
from batt_tasks.battery.objects import SELECTORS, keep_only, objects
from batt_tasks.grids import as_grid

G = ((1, 2, 3), (4, 5, 6))
EDGE_CASES = edge_cases(1234)
BIG: Grid = EDGE_CASES["30x30"]


# --------------------------------------------------------------------------- geometry


def test_rotations_and_flips() -> None:
    assert dsl.rot90(G) == ((4, 1), (5, 2), (6, 3))
    assert dsl.rot180(G) == ((6, 5, 4), (3, 2, 1))
    assert dsl.rot270(G) == ((3, 6), (2, 5), (1, 4))
    assert dsl.flip_h(G) == ((3, 2, 1), (6, 5, 4))
    assert dsl.flip_v(G) == ((4, 5, 6), (1, 2, 3))
    assert dsl.transpose(G) == ((1, 4), (2, 5), (3, 6))
    assert dsl.antitranspose(G) == ((6, 3), (5, 2), (4, 1))
    assert dsl.identity(G) is G


def test_geometric_group_laws() -> None:
    for grid in (G, BIG, ONE):
        assert dsl.rot90(dsl.rot270(grid)) == grid
        assert dsl.rot90(dsl.rot90(grid)) == dsl.rot180(grid)
        assert dsl.transpose(dsl.transpose(grid)) == grid
        assert len(set(map(lambda fn: fn(grid), dsl.GEOMETRIC.values()))) == (1 if grid == ONE else 8)


def test_results_are_tuples_of_tuples_of_int() -> None:
    for fn in dsl.GEOMETRIC.values():
        out = fn(G)
        assert isinstance(out, tuple) and all(isinstance(row, tuple) for row in out)
        assert as_grid(out) == out


# --------------------------------------------------------------------------- colours and background


def test_colour_facts() -> None:
    grid = g("0011 0122")
    assert dsl.palette(grid) == (0, 1, 2)
    assert dsl.colour_counts(grid) == {0: 3, 1: 3, 2: 2}
    assert dsl.most_common_colour(grid) == 0  # tie 0/1 goes to the smaller colour
    assert dsl.least_common_colour(grid) == 2
    assert dsl.colour_count_grid(grid) == 3


def test_background_prefers_black_with_a_fair_share() -> None:
    assert dsl.background(g("440 404 004")) == 0  # 4 zeros vs 5 fours: black is still the background
    assert dsl.background(g("5555 5505 5555")) == 5
    assert dsl.background(ONE) == 7
    assert dsl.background(FLAT) == 3


def test_recolour_replace_fill() -> None:
    assert dsl.recolour(g("12 21"), {1: 3}) == g("32 23")
    assert dsl.replace_colour(g("12 21"), 2, 0) == g("10 01")
    assert dsl.fill_all(g("12 21"), 9) == g("99 99")
    assert dsl.swap_two_colours(g("012 210")) == g("021 120")
    assert dsl.monochrome(g("0112 0000")) == g("0111 0000")
    with pytest.raises(ValueError):
        dsl.swap_two_colours(g("0123"))


# --------------------------------------------------------------------------- cropping, scaling, tiling


def test_bbox_and_crop() -> None:
    grid = g("0000 0120 0030 0000")
    assert dsl.bbox(grid, 0) == (1, 1, 2, 2)
    assert dsl.crop_to_content(grid) == g("12 03")
    assert dsl.crop(grid, 0, 0, 0, 1) == g("00")
    assert dsl.bbox(FLAT, 3) is None
    with pytest.raises(ValueError):
        dsl.crop_to_content(FLAT)
    assert dsl.crop_colour(grid, 3) == ((3,),)


def test_scale_and_tile() -> None:
    assert dsl.upscale(g("12"), 2) == g("1122 1122")
    assert dsl.upscale(g("12"), 1, 3) == g("111222")
    assert dsl.downscale(g("1122 1122"), 2) == g("12")
    assert dsl.tile(g("12"), 2, 2) == g("1212 1212")
    with pytest.raises(ValueError):
        dsl.downscale(g("123"), 2)
    with pytest.raises(ValueError):
        dsl.upscale(BIG, 2)  # 60×60 is not a grid
    with pytest.raises(ValueError):
        dsl.tile(BIG, 1, 2)


def test_concat() -> None:
    assert dsl.hconcat(g("1 2"), g("3 4")) == g("13 24")
    assert dsl.vconcat(g("12"), g("34")) == g("12 34")
    with pytest.raises(ValueError):
        dsl.hconcat(g("1 2"), g("3"))
    with pytest.raises(ValueError):
        dsl.vconcat(g("12"), g("3"))


def test_compress_period_sequence() -> None:
    assert dsl.dedupe_rows(g("11 11 22 11")) == g("11 22 11")
    assert dsl.compress(g("1122 1122 3344")) == g("12 34")
    assert dsl.period_tile(g("1212 3434 1212 3434")) == g("12 34")
    assert dsl.period_tile(g("1212 1212")) == g("12")
    with pytest.raises(ValueError):
        dsl.period_tile(g("123 456"))
    assert dsl.colour_sequence(g("0120 0120"), "h") == ((1, 2),)
    assert dsl.colour_sequence(g("33 00 44"), "v") == ((3,), (4,))


# --------------------------------------------------------------------------- shifting, gravity, regions


def test_shift_and_roll() -> None:
    assert dsl.shift(g("10 00"), 1, 1) == g("00 01")
    assert dsl.shift(g("12 34"), 0, 1, wrap=True) == g("21 43")
    assert dsl.shift(ONE, 1, 0) == ((7,),)  # only background shifts in; 1×1 stays itself


def test_gravity() -> None:
    grid = g("100 020 003 000")
    assert dsl.gravity(grid, "down") == g("000 000 000 123")
    assert dsl.gravity(grid, "up") == g("123 000 000 000")
    assert dsl.gravity(g("102"), "right") == g("012")
    assert dsl.gravity(g("102"), "left") == g("120")
    with pytest.raises(ValueError):
        dsl.gravity(grid, "sideways")


def test_fill_enclosed() -> None:
    ring = g("00000 01110 01010 01110 00000")
    assert dsl.fill_enclosed(ring, 4) == g("00000 01110 01410 01110 00000")
    assert dsl.enclosed_cells(ring, 0) == [(2, 2)]
    leaky = g("0000 0110 0100 0000")
    assert dsl.fill_enclosed(leaky, 4) == leaky
    diag_gap = g("01100 10010 10010 01100")
    assert dsl.fill_enclosed(diag_gap, 4, 0, diagonal=False)[1][2] == 4
    assert dsl.fill_enclosed(diag_gap, 4, 0, diagonal=True)[1][2] == 0


def test_border_reachable() -> None:
    assert dsl.border_reachable(g("000 010 000"), 0) == {(r, c) for r in range(3) for c in range(3)} - {(1, 1)}


# --------------------------------------------------------------------------- overlay and symmetry


def test_overlay_and_symmetrise() -> None:
    assert dsl.overlay(g("11 11"), g("02 00"), 0) == g("12 11")
    assert dsl.symmetrise(g("100 000"), "h") == g("101 000")
    assert dsl.symmetrise(g("10 00"), "hv") == g("11 11")
    assert dsl.symmetrise(g("120 000 000"), "rot90") == g("121 202 121")


def test_complete_symmetry() -> None:
    full = g("123321 456654 789987 789987 456654 123321")
    holed = tuple(
        tuple(0 if (r, c) in {(0, 1), (2, 2), (4, 4)} else v for c, v in enumerate(row)) for r, row in enumerate(full)
    )
    assert dsl.complete_symmetry(holed, 0) == full
    with pytest.raises(ValueError):
        dsl.complete_symmetry(g("00 00"), 0)


def test_periodic() -> None:
    pattern = g("1212 3434 1212 3434")
    holed = g("1212 3404 1012 3434")
    assert dsl.find_period(pattern) == (2, 2)
    assert dsl.repair_periodic(holed, 0) == pattern
    assert dsl.extend_periodic(g("12 34"), 3, 5) == g("12121 34343 12121")
    assert dsl.find_period(g("12 34")) is None
    with pytest.raises(ValueError):
        dsl.repair_periodic(pattern, 0)  # nothing to repair


# --------------------------------------------------------------------------- splitting and combining


def test_separators_and_cells() -> None:
    grid = g("10501 00500 55555 20503")
    colour, rows, cols = dsl.separator_lines(grid)
    assert (colour, rows, cols) == (5, [2], [2])
    cells = dsl.split_cells(grid)
    assert [[c for c in row] for row in cells] == [[g("10 00"), g("01 00")], [g("20"), g("03")]]
    assert dsl.separator_lines(g("12 34")) is None
    with pytest.raises(ValueError):
        dsl.split_cells(g("12 34"))


def test_split_parts_and_combine() -> None:
    left, right = dsl.split_parts(g("10502 01520"), "h", 2)
    assert (left, right) == (g("10 01"), g("02 20"))
    assert dsl.split_parts(g("1122"), "h", 2) == (g("11"), g("22"))
    assert dsl.split_parts(g("1 2 3"), "v", 3) == (g("1"), g("2"), g("3"))
    with pytest.raises(ValueError):
        dsl.split_parts(g("123"), "h", 2)
    a, b = g("1100"), g("1010")
    assert dsl.combine(a, b, "and", 4) == g("4000")
    assert dsl.combine(a, b, "or", 4) == g("4440")
    assert dsl.combine(a, b, "xor", 4) == g("0440")
    assert dsl.combine(a, b, "nor", 4) == g("0004")
    assert dsl.combine(a, b, "left_only", 4) == g("0400")
    assert dsl.combine(a, b, "right_only", 4) == g("0040")


# --------------------------------------------------------------------------- lines


def test_rays() -> None:
    grid = g("000 020 000")
    assert dsl.draw_rays(grid, "h") == g("000 222 000")
    assert dsl.draw_rays(grid, "hv") == g("020 222 020")
    assert dsl.draw_rays(grid, "diag") == g("202 020 202")
    assert dsl.draw_rays(grid, "down") == g("000 020 020")
    assert dsl.draw_rays(g("0302"), "left", stop=True, only=2) == g("0322")
    assert dsl.draw_rays(g("0302"), "left", stop=False, only=2) == g("2322")


def test_connect() -> None:
    assert dsl.connect_pairs(g("10001 00000 20000"), 0) == g("11111 00000 20000")
    assert dsl.connect_pairs(g("1 0 1"), 0) == g("1 1 1")
    assert dsl.connect_pairs(g("10001"), 0, colour=8) == g("18881")
    assert dsl.connect_diagonal(g("100 000 001")) == g("100 010 001")


# --------------------------------------------------------------------------- misc


def test_bbox_fill_denoise() -> None:
    assert dsl.bbox_fill_per_colour(g("1000 0001")) == g("1111 1111")
    assert dsl.denoise_colour(g("111 151 111"), 5) == g("111 111 111")


def test_check() -> None:
    assert dsl.check(ONE) is ONE
    with pytest.raises(ValueError):
        dsl.check(())
    with pytest.raises(ValueError):
        dsl.check(((0,) * 31,))


# --------------------------------------------------------------------------- objects


def test_objects_by_connectivity_and_colour() -> None:
    grid = g("1100 0010 0022")
    assert len(objects(grid, True, False)) == 3
    assert len(objects(grid, True, True)) == 2  # the lone 1 touches the pair diagonally
    assert len(objects(grid, False, True)) == 1  # multi-coloured, diagonal: all one object
    first = objects(grid, True, False)[0]
    assert first.size == 2 and first.box == (0, 0, 0, 1) and first.colour == 1
    assert first.as_grid(0) == g("11")
    assert objects(FLAT) == ()  # a single colour is all background
    assert objects(ONE) == ()
    assert objects(ONE, bg=0)[0].size == 1


def test_selectors() -> None:
    grid = g("11100 00000 20033")
    objs = objects(grid)
    assert SELECTORS["largest"](objs).colour == 1
    assert SELECTORS["smallest"](objs).colour == 2
    assert SELECTORS["rightmost"](objs).colour == 3
    with pytest.raises(ValueError):
        SELECTORS["largest"](objects(g("110 000 011")))  # tie
    with pytest.raises(ValueError):
        SELECTORS["largest"](())
    assert keep_only(grid, [SELECTORS["largest"](objs)], 0) == g("11100 00000 00000")


def test_objects_bounded_on_noise() -> None:
    noise = tuple(tuple((r + c) % 2 * 3 for c in range(30)) for r in range(30))
    with pytest.raises(ValueError):
        objects(noise, True, False, 0)  # 450 single cells: more than MAX_OBJECTS


# --------------------------------------------------------------------------- edge cases for every primitive


PRIMITIVES: dict[str, Callable[[Grid], Any]] = {
    **dsl.GEOMETRIC,
    "crop_to_content": dsl.crop_to_content,
    "upscale2": lambda x: dsl.upscale(x, 2),
    "downscale2": lambda x: dsl.downscale(x, 2),
    "tile2": lambda x: dsl.tile(x, 2, 1),
    "hconcat": lambda x: dsl.hconcat(x, x),
    "vconcat": lambda x: dsl.vconcat(x, x),
    "recolour": lambda x: dsl.recolour(x, {0: 1}),
    "shift": lambda x: dsl.shift(x, 1, -1),
    "roll": lambda x: dsl.shift(x, 2, 3, wrap=True),
    **{f"gravity_{d}": (lambda x, d=d: dsl.gravity(x, d)) for d in ("down", "up", "left", "right")},
    "fill_enclosed": lambda x: dsl.fill_enclosed(x, 4),
    **{f"symmetrise_{k}": (lambda x, k=k: dsl.symmetrise(x, k)) for k in dsl.SYMMETRIES},
    "complete_symmetry": lambda x: dsl.complete_symmetry(x, 0),
    "split_cells": lambda x: dsl.split_cells(x)[0][0],
    "split_parts": lambda x: dsl.split_parts(x, "h", 2)[0],
    "combine": lambda x: dsl.combine(x, dsl.flip_h(x), "xor", 3),
    **{f"rays_{d}": (lambda x, d=d: dsl.draw_rays(x, d)) for d in dsl.DIRECTIONS},
    "connect_pairs": dsl.connect_pairs,
    "connect_diagonal": dsl.connect_diagonal,
    "repair_periodic": lambda x: dsl.repair_periodic(x, 0),
    "extend_periodic": lambda x: dsl.extend_periodic(x, 30, 30),
    "compress": dsl.compress,
    "period_tile": dsl.period_tile,
    "colour_sequence": lambda x: dsl.colour_sequence(x, "h"),
    "bbox_fill_per_colour": dsl.bbox_fill_per_colour,
    "crop_colour": lambda x: dsl.crop_colour(x, 2),
    "denoise_colour": lambda x: dsl.denoise_colour(x, 5),
    "swap_two_colours": dsl.swap_two_colours,
    "monochrome": dsl.monochrome,
    "objects_largest": lambda x: SELECTORS["largest"](objects(x, True, True)).as_grid(0),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_primitive_edge_cases(name: str, case: str) -> None:
    grid = EDGE_CASES[case]
    try:
        out = PRIMITIVES[name](grid)
    except ValueError:
        return  # "does not apply" is a legitimate answer
    assert as_grid(out) == out, f"{name} on {case} returned a non-grid"
    assert PRIMITIVES[name](grid) == out, f"{name} is not deterministic"
