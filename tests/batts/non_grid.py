"""A batt whose candidates return all kinds of non-grids next to two valid answers.

``flip`` returns the horizontal mirror as lists of lists and ``flip_np`` the same as a numpy array:
both are grids. Every other candidate's output is not an ARC grid and must neither match nor crash.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class _BrokenArray:
    """Looks like an array but ``tolist`` raises."""

    def tolist(self) -> Any:
        raise RuntimeError("broken tolist")


def batt(task_id: str, S: Any, I: Any, C: Any, log_path: str | None) -> tuple[list[Any], list[Any]]:  # noqa: E741
    """One valid flip (twice, in two forms) and many invalid outputs."""
    flipped = [list(reversed(row)) for row in I]
    o = [
        (1, False, "flip", flipped),
        (2, False, "flip_np", np.array(flipped)),
        (3, False, "x_none", None),
        (4, False, "x_string", "not a grid"),
        (5, False, "x_int", 7),
        (6, False, "x_empty", []),
        (7, False, "x_empty_row", [[]]),
        (8, False, "x_ragged", [[1, 2], [3]]),
        (9, False, "x_colour", [[10]]),
        (10, False, "x_negative", [[-1]]),
        (11, False, "x_bool", [[True, False]]),
        (12, False, "x_float", [[1.0]]),
        (13, False, "x_too_wide", [[0] * 31]),
        (14, False, "x_too_tall", [[0]] * 31),
        (15, False, "x_dict", {"a": 1}),
        (16, False, "x_broken_array", _BrokenArray()),
        (17, False, "x_3d", [[[1]]]),
    ]
    return o, []
