"""The report as one self-contained HTML page: a pure function of a run's files and its tasks.

No network, no script: inline CSS and SVG only (a Content-Security-Policy forbids anything else), so the
page works from ``file://`` with JavaScript off. Task sections are laid out lazily by the browser
(``content-visibility: auto``), so a 400-task report opens at once.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from batt_tasks.scoring import MATCH_SCORE
from producer.data import Task
from producer.report.compare import Comparison
from producer.report.grids import GridLike, diff_cells, grid_svg, palette_css
from producer.report.load import Run
from producer.report.stats import (
    OUTCOMES,
    best_candidates,
    candidate_stats,
    histogram,
    leaderboard,
    outcome,
    sample_costs,
    slowest,
)

Line = Mapping[str, Any]

CSS = """
:root{font:14px/1.4 system-ui,sans-serif;color:#222;background:#fafafa}
body{margin:0 auto;max-width:1400px;padding:0 16px 40px}
h1{font-size:22px;margin:16px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:16px 0 6px}
table{border-collapse:collapse;margin:4px 0 12px}td,th{padding:2px 8px;text-align:left;vertical-align:top;
border-bottom:1px solid #e4e4e4}th{background:#eee}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
dl.facts{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:2px 12px;margin:8px 0}
dl.facts dt{color:#666}dl.facts dd{margin:0;font-weight:600}
.note{padding:6px 10px;border-left:4px solid #888;background:#f0f0f0;margin:6px 0}
.warn{border-color:#d80;background:#fff6e0}.line{font-size:16px;font-weight:600}
.b{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;color:#fff;white-space:nowrap}
.o-solved{background:#2a8a3a}.o-train-perfect{background:#b87a00}.o-unsolved{background:#777}
.o-errored{background:#c0392b}.o-unscored{background:#3465a4}
nav a{margin-right:12px}code{font-size:12px;background:#eee;padding:0 3px;border-radius:3px;word-break:break-all}
section.task{content-visibility:auto;contain-intrinsic-size:auto 420px;border-top:1px solid #ddd;padding:4px 0}
.row{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start;margin:4px 0}
figure{margin:0;padding:4px;background:#eeeff6;border-radius:4px}
figcaption{font-size:12px;color:#444;max-width:160px;overflow-wrap:anywhere}
.pair{display:flex;gap:4px;align-items:center}.arrow{color:#888}
svg.g{display:block;shape-rendering:crispEdges}
.ok{color:#2a8a3a;font-weight:700}.bad{color:#c0392b;font-weight:700}
.side{font-weight:700;margin-left:12px;padding-left:8px;border-left:3px solid #999}
.hbar{display:inline-block;height:10px;background:#4a7bd0}
.fail{color:#a00}ul{margin:4px 0}
"""


def e(value: Any) -> str:
    """``value`` as escaped HTML text (and attribute value)."""
    return html.escape(str(value), quote=True)


def _seconds(value: Any) -> str:
    if value is None:
        return "–"
    v = float(value)
    return f"{v:.3g} s" if v < 60 else f"{v / 60:.1f} min"


class _Anchors:
    """Stable, HTML-safe anchors for task ids (which may hold any character)."""

    def __init__(self, ids: Iterable[str]) -> None:
        self._by_id = {t: f"task-{n}" for n, t in enumerate(sorted(ids))}

    def link(self, task_id: str) -> str:
        anchor = self._by_id.get(task_id)
        return f'<a href="#{anchor}">{e(task_id)}</a>' if anchor else e(task_id)

    def __getitem__(self, task_id: str) -> str:
        return self._by_id[task_id]


def _facts(run: Run) -> str:
    s, o = run.summary, run.options
    cost = s.get("sample_ms") or {}
    ids = o.get("ids")
    selection = (
        f"ids {' '.join(map(str, ids))}"
        if ids
        else f"count {o.get('count', '?')}, start {o.get('start', '?')}, seed {o.get('seed', '–')}"
    )
    total = s.get("tasks", len(run.lines))
    done = s.get("tasks_done", len(run.lines))
    rows = [
        ("run id", f'<span id="run-id">{e(run.run_id)}</span>'),
        ("mode", e(s.get("mode", "?"))),
        ("data", e(run.data_label())),
        ("batt", f"<code>{e(o.get('batt', '?'))}</code>"),
        ("selection", e(selection)),
        ("time limit per call", e(_seconds(o.get("timeout")) if o.get("timeout") else "?")),
        (
            "solved / scored / total",
            f'<span id="solved">{e(s.get("solved", 0))}</span> / <span id="scored">{e(s.get("tasks_scored", 0))}'
            f'</span> / <span id="total">{e(total)}</span>',
        ),
        ("tasks done", e(f"{done} of {total}") + (" (interrupted)" if s.get("interrupted") else "")),
        ("samples done", e(f"{s.get('samples_done', '?')} of {s.get('samples', '?')}")),
        ("errors / timeouts", f'<span id="errors">{e(s.get("errors", 0))}</span> / {e(s.get("timeouts", 0))}'),
        ("wall time", e(_seconds(s.get("wall_seconds")))),
        ("samples/s", e(s.get("samples_per_second", "–"))),
        ("per-sample cost", e(f"median {cost.get('median', '–')} ms, p95 {cost.get('p95', '–')} ms")),
        ("peak memory", e(f"{s['peak_rss_mb']} MB" if "peak_rss_mb" in s else "–")),
    ]
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _badge(kind: str) -> str:
    return f'<span class="b o-{kind}">{e(OUTCOMES[kind])}</span>'


def _cands_cell(line: Line) -> str:
    best = best_candidates(line)
    if not best:
        return "–"
    n_train = line["samples"]["train"]
    return "<br>".join(f"<code>{e(c)}</code> {tr // MATCH_SCORE}/{n_train} · {te // MATCH_SCORE}" for c, tr, te in best)


def _task_table(lines: Sequence[Line], anchors: _Anchors) -> str:
    head = (
        "<tr><th>task</th><th>best candidates (train matched · test matched)</th><th class=n>train+test</th>"
        "<th class=n>candidates</th><th class=n>failures</th><th class=n>time</th></tr>"
    )
    rows = [
        f"<tr><td>{anchors.link(t['task_id'])}</td><td>{_cands_cell(t)}</td>"
        f"<td class=n>{t['samples']['train']}+{t['samples']['test']}</td><td class=n>{t['candidates']}</td>"
        f"<td class=n>{len(t['failures'])}</td><td class=n>{_seconds(t['seconds'])}</td></tr>"
        for t in lines
    ]
    return f"<table>{head}{''.join(rows)}</table>"


def _task_list(run: Run, anchors: _Anchors) -> str:
    groups: dict[str, list[Line]] = {k: [] for k in OUTCOMES}
    for line in run.lines.values():
        groups[outcome(line)].append(line)
    parts = ['<h2 id="tasks">Tasks</h2><p>']
    parts.append(" · ".join(f'<a href="#g-{k}">{e(OUTCOMES[k])}</a> ({len(v)})' for k, v in groups.items() if v))
    parts.append("</p>")
    for kind, lines in groups.items():
        if lines:
            parts.append(f'<h3 id="g-{kind}">{_badge(kind)} {len(lines)} tasks</h3>')
            parts.append(_task_table(sorted(lines, key=lambda t: t["task_id"]), anchors))
    return "".join(parts)


def _leaderboard(run: Run) -> str:
    board = leaderboard(candidate_stats(run.lines.values()))
    head = (
        '<h2 id="leaderboard">Candidate leaderboard</h2><p>Candidates that matched at least one sample, '
        f"{len(board)} in all.</p><table><tr><th>#</th><th>candidate</th><th class=n>tasks solved</th>"
        "<th class=n>tasks train-perfect</th><th class=n>samples matched</th></tr>"
    )
    rows = [
        f"<tr><td class=n>{n}</td><td><code>{e(c)}</code></td><td class=n>{s.solved}</td>"
        f"<td class=n>{s.train_perfect}</td><td class=n>{s.matched}</td></tr>"
        for n, (c, s) in enumerate(board, 1)
    ]
    return head + "".join(rows) + "</table>"


def _costs(run: Run, anchors: _Anchors) -> str:
    costs, exact = sample_costs(run.lines.values())
    bins = histogram(costs)
    top = max((n for _, n in bins), default=1)
    parts = ['<h2 id="costs">Costs</h2><h3>Per-sample cost</h3>']
    if not exact:
        parts.append('<p class="note">This run predates per-sample timings: a sample counts as its task mean.</p>')
    parts.append("<table><tr><th>cost</th><th class=n>samples</th><th></th></tr>")
    parts.extend(
        f'<tr><td>{e(label)}</td><td class=n>{n}</td><td><span class="hbar" style="width:{300 * n // top}px">'
        "</span></td></tr>"
        for label, n in bins
    )
    parts.append("</table><h3>Slowest tasks</h3><table><tr><th>task</th><th class=n>time</th>")
    parts.append("<th class=n>samples</th></tr>")
    parts.extend(
        f"<tr><td>{anchors.link(t['task_id'])}</td><td class=n>{_seconds(t['seconds'])}</td>"
        f"<td class=n>{t['samples']['train'] + t['samples']['test']}</td></tr>"
        for t in slowest(run.lines.values())
    )
    return "".join(parts) + "</table>"


def _figure(grid: GridLike | None, caption: str, expected: GridLike | None = None) -> str:
    drawn = grid_svg(grid, expected) if grid is not None else "<p>–</p>"
    return f"<figure>{drawn}<figcaption>{caption}</figcaption></figure>"


def _attempt_caption(n: int, grid: GridLike, expected: GridLike | None, by: str | None) -> str:
    author = f" by <code>{e(by)}</code>" if by else ""
    if expected is None:
        verdict = ""
    else:
        differ = diff_cells(grid, expected)
        if differ is None:
            verdict = (
                f' <span class="bad">✗ shape {len(grid)}×{len(grid[0])}, expected {len(expected)}×{len(expected[0])}'
                "</span>"
            )
        elif differ:
            verdict = f' <span class="bad">✗ {len(differ)} cells differ</span>'
        else:
            verdict = ' <span class="ok">✓</span>'
    return f"attempt {n}{verdict}{author}"


def _attempts(line: Line, index: int, expected: GridLike | None, side: str = "") -> list[str]:
    predictions = line["predictions"][index] if index < len(line["predictions"]) else []
    authors = line.get("prediction_candidates") or []
    by = authors[index] if index < len(authors) else []
    figures = [
        _figure(grid, _attempt_caption(n, grid, expected, by[n - 1] if n <= len(by) else None), expected)
        for n, grid in enumerate(predictions, 1)
    ]
    if not figures:
        figures = ["<figure><figcaption>no attempt</figcaption></figure>"]
    if side:
        figures.insert(0, f'<span class="side">{e(side)}</span>')
    return figures


def _tests(task: Task | None, lines: Sequence[tuple[str, Line]]) -> str:
    """One row per test input: the input, the expected output (when known), then each run's attempts on it."""
    first = lines[0][1]
    parts = []
    for i in range(first["samples"]["test"]):
        row: list[str] = []
        expected = None
        if task is not None and i < len(task.test):
            test_in, expected = task.test[i]
            row.append(_figure(test_in, f"test {i + 1} input"))
            row.append(_figure(expected, "expected") if expected is not None else _hidden())
        for side, line in lines:
            row.extend(_attempts(line, i, expected, side))
        parts.append(f'<div class="row">{"".join(row)}</div>')
    return "".join(parts)


def _hidden() -> str:
    return "<figure><figcaption>expected output hidden (not in the data)</figcaption></figure>"


def _train(task: Task) -> str:
    pairs = (
        f'<figure><div class="pair">{grid_svg(i)}<span class="arrow">→</span>{grid_svg(o)}</div>'
        f"<figcaption>train {n}</figcaption></figure>"
        for n, (i, o) in enumerate(task.train, 1)
    )
    return f'<div class="row">{"".join(pairs)}</div>'


def _candidates(line: Line) -> str:
    best = best_candidates(line, 5)
    if not best:
        return "<p>No candidate matched any sample.</p>"
    perfect = set(line["train_perfect"])
    rows = "".join(
        f"<tr><td><code>{e(c)}</code></td><td class=n>{tr}</td><td class=n>{te}</td>"
        f"<td>{'train-perfect' if c in perfect else ''}</td></tr>"
        for c, tr, te in best
    )
    head = "<tr><th>best candidates</th><th class=n>train score</th><th class=n>test score</th><th></th></tr>"
    return f"<table>{head}{rows}</table>"


def _failures(line: Line, side: str = "") -> str:
    if not line["failures"]:
        return ""
    items = "".join(
        f'<li class="fail">{e(f["sample"])}: {e(f["status"])} — {e(f.get("error") or "")}</li>'
        for f in line["failures"]
    )
    return f"<h4>{e(side)}Failures</h4><ul>{items}</ul>"


def _task_section(line: Line, task: Task | None, anchor: str) -> str:
    kind = outcome(line)
    head = (
        f'<section class="task" id="{anchor}" data-task="{e(line["task_id"])}"><h3>{e(line["task_id"])} '
        f"{_badge(kind)}</h3><p>{line['samples']['train']} train + {line['samples']['test']} test samples · "
        f"{line['candidates']} candidates · {_seconds(line['seconds'])} · "
        f"{line['ok']} ok, {line['errors']} errors, {line['timeouts']} timeouts</p>"
    )
    body = [head, _candidates(line)]
    if task is not None:
        body.append(_train(task))
    body.append(_tests(task, [("", line)]))
    body.append(_failures(line))
    body.append("</section>")
    return "".join(body)


def _details(run: Run, tasks: Mapping[str, Task], anchors: _Anchors) -> str:
    order = sorted(run.lines, key=lambda t: (list(OUTCOMES).index(outcome(run.lines[t])), t))
    sections = (_task_section(run.lines[t], tasks.get(t), anchors[t]) for t in order)
    return '<h2 id="details">Task details</h2>' + "".join(sections)


def _comparison(c: Comparison, tasks: Mapping[str, Task], anchors: _Anchors) -> str:
    parts = [
        f'<h2 id="compare">Against run {e(c.b.run_id)}</h2><p class="line" id="compare-line">{e(c.line())}</p>',
        _runs_side_by_side(c.a, c.b),
    ]
    if c.warning:
        parts.append(f'<p class="note warn">{e(c.warning)}</p>')
    for title, ids in (("Newly solved", c.gained), ("Newly lost", c.lost)):
        parts.append(f"<h3>{title} ({len(ids)})</h3>")
        if not ids:
            parts.append("<p>None.</p>")
        for t in ids:
            a, b = c.a.lines[t], c.b.lines[t]
            parts.append(
                f'<section class="task cmp" data-task="{e(t)}"><h3>{anchors.link(t)} A {_badge(outcome(a))} · '
                f"B {_badge(outcome(b))}</h3>{_tests(tasks.get(t), [('A', a), ('B', b)])}"
                f"{_failures(a, 'A: ')}{_failures(b, 'B: ')}</section>"
            )
    parts.append(
        "<h3>Candidate score deltas (shared tasks)</h3><table><tr><th>candidate</th><th class=n>solved A/B</th>"
        "<th class=n>train-perfect A/B</th><th class=n>samples matched A/B</th></tr>"
    )
    parts.extend(
        f"<tr><td><code>{e(cid)}</code></td><td class=n>{_delta(sa.solved, sb.solved)}</td>"
        f"<td class=n>{_delta(sa.train_perfect, sb.train_perfect)}</td>"
        f"<td class=n>{_delta(sa.matched, sb.matched)}</td></tr>"
        for cid, sa, sb in c.candidates
    )
    parts.append("</table>")
    for title, ids, anchored in (("Tasks only in A", c.only_a, True), ("Tasks only in B", c.only_b, False)):
        listed = ", ".join(anchors.link(t) if anchored else e(t) for t in ids) or "none"
        parts.append(f"<h3>{title} ({len(ids)})</h3><p>{listed}</p>")
    return "".join(parts)


def _runs_side_by_side(a: Run, b: Run) -> str:
    def facts(run: Run) -> list[str]:
        s = run.summary
        cost = (s.get("sample_ms") or {}).get("median", "–")
        return [
            e(run.run_id),
            e(run.data_label()),
            f"<code>{e(run.options.get('batt', '?'))}</code>",
            e(f"{s.get('solved', 0)} / {s.get('tasks_scored', 0)} / {s.get('tasks', len(run.lines))}"),
            e(f"{s.get('errors', 0)} / {s.get('timeouts', 0)}"),
            e(_seconds(s.get("wall_seconds"))),
            e(f"{cost} ms"),
        ]

    names = ["run", "data", "batt", "solved / scored / total", "errors / timeouts", "wall time", "median sample cost"]
    rows = "".join(
        f"<tr><th>{n}</th><td>{x}</td><td>{y}</td></tr>" for n, x, y in zip(names, facts(a), facts(b), strict=True)
    )
    return f"<table><tr><th></th><th>A (this run)</th><th>B</th></tr>{rows}</table>"


def _delta(a: int, b: int) -> str:
    sign = f"+{a - b}" if a > b else f"−{b - a}" if b > a else "±0"
    return f"{a}/{b} ({sign})"


def build_html(
    run: Run,
    tasks: Mapping[str, Task],
    data_note: str | None = None,
    comparison: Comparison | None = None,
) -> str:
    """The report of ``run`` (against ``comparison.b`` when given) as one HTML document.

    ``tasks`` are the run's tasks reloaded from its data (those missing are drawn without their train
    pairs, inputs and expected outputs); ``data_note`` says why some or all are missing.
    """
    anchors = _Anchors(run.lines)
    title = f"batt-queue run {run.run_id}" + (f" vs {comparison.b.run_id}" if comparison else "")
    notes = [*run.notes, *([data_note] if data_note else [])]
    nav = [("tasks", "Tasks"), ("leaderboard", "Leaderboard"), ("costs", "Costs"), ("details", "Task details")]
    if comparison:
        nav.insert(0, ("compare", "Comparison"))
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<meta name=viewport content='width=device-width'><title>{e(title)}</title>",
        f"<style>{CSS}{palette_css()}</style></head><body>",
        f'<div id="overview"><h1>{e(title)}</h1>',
        _facts(run),
        *(f'<p class="note warn">{e(n)}</p>' for n in notes),
        "<nav>" + "".join(f'<a href="#{k}">{v}</a>' for k, v in nav) + "</nav>",
    ]
    if comparison:
        parts.append(_comparison(comparison, tasks, anchors))
    parts.append("</div>")
    parts += [_task_list(run, anchors), _leaderboard(run), _costs(run, anchors), _details(run, tasks, anchors)]
    parts.append("</body></html>\n")
    return "".join(parts)
