"""Each learned-parameter family of the battery solves a hand-made task built for it.

The tasks go through the real scoring core (score_sample on every train and test sample, then
aggregate_task), so "wins" means what it means for batt-submit: the family's candidate matches every
train pair, and the first prediction for the test input is the expected output.
"""

from __future__ import annotations

from typing import Any

import pytest
from battery_grids import g

from batt_tasks.battery import batt
from batt_tasks.battery.dsl import Grid
from batt_tasks.scoring import aggregate_task, score_sample


def run_task(task_id: str, train: list[tuple[Grid, Grid]], test: tuple[Grid, Grid]) -> dict[str, Any]:
    """Score a hand-made task exactly as batt-submit does and return its aggregate line."""
    S = tuple(train)
    results = [score_sample(batt, task_id, S, i, o, None, kind="train", index=n) for n, (i, o) in enumerate(train)]
    results.append(score_sample(batt, task_id, S, test[0], test[1], None, kind="test", index=0))
    return aggregate_task(task_id, results)


def _blank(h: int, w: int) -> list[list[int]]:
    return [[0] * w for _ in range(h)]


def _grid(rows: list[list[int]]) -> Grid:
    return tuple(tuple(r) for r in rows)


def _dot_above(size: tuple[int, int], twos: list[tuple[int, int]]) -> tuple[Grid, Grid]:
    """A pair for "draw a 1 above every 2" with 2s at the given cells."""
    i, o = _blank(*size), _blank(*size)
    for r, c in twos:
        i[r][c] = o[r][c] = 2
        o[r - 1][c] = 1
    return _grid(i), _grid(o)


CASES: dict[str, tuple[list[tuple[Grid, Grid]], tuple[Grid, Grid]]] = {
    # colour map learned from the pairs (not a fixed recolouring)
    "colormap_learned": (
        [(g("123 231"), g("456 564")), (g("312 777"), g("645 888"))],
        (g("77 12 33"), g("88 45 66")),
    ),
    # scale factors learned (2 down, 3 across)
    "upscale_learned": (
        [(g("12 30"), g("111222 111222 333000 333000")), (g("5"), g("555 555"))],
        (g("40"), g("444000 444000")),
    ),
    "downscale_learned": (
        [(g("1122 1122 3300 3300"), g("12 30")), (g("556600 556600"), g("560"))],
        (g("0077 0077"), g("07")),
    ),
    # the block layout of transformed copies
    "tile_layout_learned": (
        [(g("12 30"), g("1221 3003 3003 1221")), (g("45 67"), g("4554 6776 6776 4554"))],
        (g("80 09"), g("8008 0990 0990 8008")),
    ),
    # output size learned: a fixed window from the bottom-right corner
    "crop_window_learned": (
        [(g("1234 5678 9123"), g("78 23")), (g("11111 22222 33345"), g("22 45"))],
        (g("975 318 642"), g("18 42")),
    ),
    # which object to keep: the one whose colour no other object has
    "crop_object_learned": (
        [
            (g("1100000 1100220 0000220 1100000 1100000"), g("22 22")),
            (g("0000000 0500044 0500044 0000000 0440000"), g("5 5")),
        ],
        (g("660000 660007 000007 000007 066000 066000"), g("7 7 7")),
    ),
    # separator layout and combination: cells on both sides of the 5-column, AND, colour 3
    "combine_h_and_learned": (
        [
            (g("10501 11510 00500"), g("00 30 00")),
            (g("11511 01501 10510"), g("33 03 30")),
            (g("01500 11511 10501"), g("00 33 00")),
        ],
        (g("11511 10510 01501"), g("33 30 03")),
    ),
    # the fill colour of enclosed regions
    "fill_enclosed_learned": (
        [
            (g("00000 02220 02020 02220 00000"), g("00000 02220 02820 02220 00000")),
            (g("222200 200200 222200 000000"), g("222200 288200 222200 000000")),
        ],
        (g("0000 0220 2002 0220"), g("0000 0220 2882 0220")),
    ),
    # the mask colour hiding part of a periodic pattern
    "repair_periodic_learned": (
        [
            (g("121212 343434 129912 349934"), g("121212 343434 121212 343434")),
            (g("565656 656999 565656"), g("565656 656565 565656")),
        ],
        (g("787878 879787 787878 878787"), g("787878 878787 787878 878787")),
    ),
    # a local 3×3 rule, learned leave-one-out: draw a 1 above every 2
    "local_rule_3x3": (
        [_dot_above((6, 6), [(2, 2)]), _dot_above((6, 6), [(3, 3)]), _dot_above((6, 7), [(2, 4)])],
        _dot_above((8, 8), [(2, 2), (5, 5)]),
    ),
    # object property -> colour: size 1 -> 4, size 2 -> 6, size 3 -> 7
    "recolour_objects_by_size_c4_learned": (
        [
            (g("50055 00000 55500"), g("40066 00000 77700")),
            (g("05000 05050 00000 50000"), g("06000 06040 00000 40000")),
            (g("50500 00005 55500"), g("40400 00004 77700")),
        ],
        (g("55050 00000 05550 00000"), g("66040 00000 07770 00000")),
    ),
    # the colour of the counting row
    "count_cells_row_learned": (
        [(g("010 100"), g("33")), (g("111 000"), g("333")), (g("200 000"), g("3"))],
        (g("0110 0101"), g("3333")),
    ),
    # the colour used to join pairs of cells
    "connect_h_learned": (
        [(g("10001 00000"), g("18881 00000")), (g("000 101"), g("000 181")), (g("1001 0000"), g("1881 0000"))],
        (g("100001 000000 010100"), g("188881 000000 018100")),
    ),
}


@pytest.mark.parametrize("family", sorted(CASES))
def test_learned_family_wins_its_task(family: str) -> None:
    train, test = CASES[family]
    line = run_task(f"hand_{family}", train, test)
    assert line["errors"] == 0
    assert family in line["train_perfect"], f"{family} did not match every train pair: {line['train_scores']}"
    assert line["predictions"][0][0] == [list(r) for r in test[1]], f"first attempt is not {family}'s answer"
    assert line["solved"] is True


def test_leave_one_out_tables_do_not_memorise() -> None:
    """A local-rule table learned leave-one-out cannot explain a pair no other pair explains."""
    train = [(g("000 020 000"), g("010 020 000")), (g("000 030 000"), g("000 030 050"))]
    line = run_task("hand_loo", train, (g("020"), g("020")))
    assert "local_rule_3x3" not in line["train_scores"]


def test_learned_parameters_must_agree_on_every_pair() -> None:
    """Two pairs that disagree on the colour map give colormap_learned no output at all."""
    S = ((g("12"), g("34")), (g("12"), g("35")))
    o, _ = batt("hand_disagree", S, g("21"), None, None)
    assert "colormap_learned" not in {cid for _, _, cid, _ in o}
