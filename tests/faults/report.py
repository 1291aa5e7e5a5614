"""Render the fault suite's recorded outcomes as the Markdown table README.md shows.

Each fault test appends one JSON line to the outcomes file (``BATT_FAULT_REPORT``, default
``tests/faults/.outcomes.jsonl``) when it ends, pass or fail: the scenario, what happened, the samples
of the run, how many were lost and duplicated in the results, how many ran more than once, the time to
recover and the producer's exit code. This script keeps the latest row of each scenario and prints
the table::

    python -m tests.faults.report                  # or: python tests/faults/report.py [OUTCOMES]
    python -m tests.faults.report --check          # exit 1 when a scenario is missing or did not pass
    python -m tests.faults.report --write README.md  # replace the table between the markers below

In README.md the table sits between ``<!-- fault-table:begin -->`` and ``<!-- fault-table:end -->``.

Standard library only, so it runs without the test dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_OUTCOMES = Path(__file__).resolve().parent / ".outcomes.jsonl"
BEGIN, END = "<!-- fault-table:begin -->", "<!-- fault-table:end -->"

#: Every scenario of issue 7, in table order: id → short name of the fault.
SCENARIOS: dict[str, str] = {
    "1": "pool process SIGKILLed mid-sample",
    "2": "whole worker SIGKILLed mid-run, second worker running",
    "3a": "worker SIGTERMed mid-run (warm shutdown)",
    "3b": "worker SIGTERMed during a sample longer than its grace (soft shutdown)",
    "4a": "Redis restarted mid-run (AOF on)",
    "4b": "Redis crashed (SIGKILL) mid-run and restarted (AOF on)",
    "5a": "producer SIGKILLed mid-run, then --resume",
    "5b": "producer SIGKILLed while writing a task line, then --resume",
    "6": "multi-host: one worker's link cut, then restored",
    "7a": "batt hangs forever",
    "7b": "batt calls os._exit(1)",
    "7c": "batt segfaults",
    "7d": "batt allocates memory without bound",
    # issue 16: the broker-dependent scenarios again, with RabbitMQ as the broker (tests/faults/test_fault_rabbitmq.py)
    "R2": "RabbitMQ: whole worker SIGKILLed mid-run, second worker running",
    "R4": "RabbitMQ: broker restarted mid-run (durable quorum queue)",
    "R5": "RabbitMQ: producer SIGKILLed mid-run, then --status and --resume",
    "R6": "RabbitMQ: multi-host, one worker's link cut, then restored",
    "R7": "RabbitMQ: a sample kills its whole worker on every delivery",
    "R8": "RabbitMQ: a sample longer than a visibility timeout would allow",
}


def outcomes_path() -> Path:
    """Where the fault tests record their outcomes."""
    env = os.environ.get("BATT_FAULT_REPORT", "").strip()
    return Path(env) if env else DEFAULT_OUTCOMES


def record(row: Mapping[str, Any], path: Path | None = None) -> None:
    """Append one outcome row (one JSON line, one write) to the outcomes file."""
    path = path or outcomes_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dict(row), separators=(",", ":"), sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def read(path: Path) -> list[dict[str, Any]]:
    """Every row of the outcomes file (a torn line is skipped)."""
    rows: list[dict[str, Any]] = []
    if not path.exists():
        return rows
    for raw in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return rows


def _order(scenario: str) -> tuple[int, str]:
    m = re.match(r"(\d+)(.*)", scenario)
    return (int(m.group(1)), m.group(2)) if m else (10**6, scenario)


def latest(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The most recent row of each scenario, in scenario order."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        scenario = str(row.get("scenario"))
        if scenario not in best or float(row.get("when", 0)) >= float(best[scenario].get("when", 0)):
            best[scenario] = dict(row)
    return [best[s] for s in sorted(best, key=_order)]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _seconds(value: Any) -> str:
    if value is None:
        return "—"
    return f"{float(value):.1f} s"


def render(rows: Sequence[Mapping[str, Any]]) -> str:
    """The Markdown table: scenario → what happened → lost → duplicated → time to recover (and more)."""
    head = [
        "| # | fault | what happened | samples | lost | duplicated | ran twice | time to recover | exit | result |",
        "|---|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    body = []
    for row in rows:
        scenario = str(row.get("scenario"))
        body.append(
            "| "
            + " | ".join(
                [
                    scenario,
                    _cell(row.get("fault") or SCENARIOS.get(scenario, "")),
                    _cell(row.get("happened", "")),
                    _cell(row.get("samples", "—")),
                    _cell(row.get("lost", "—")),
                    _cell(row.get("duplicated", "—")),
                    _cell(row.get("reexecuted", "—")),
                    _seconds(row.get("recover_s")),
                    _cell(row.get("exit_code", "—")),
                    _cell(row.get("status", "?")),
                ]
            )
            + " |"
        )
    return "\n".join(head + body)


def missing(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Scenarios with no row, or whose latest row did not pass."""
    by = {str(r.get("scenario")): r for r in rows}
    return [s for s in SCENARIOS if s not in by or by[s].get("status") != "passed"]


def write_into(doc: Path, table: str) -> None:
    """Replace what lies between the fault-table markers of ``doc`` with ``table``."""
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"{doc}: add the lines {BEGIN} and {END} where the fault table goes")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; with ``--check``, exit 1 when a scenario is missing or failed."""
    p = argparse.ArgumentParser(prog="python -m tests.faults.report", description=__doc__.splitlines()[0])
    p.add_argument("outcomes", nargs="?", type=Path, default=None, help="outcomes file (default: BATT_FAULT_REPORT)")
    p.add_argument("--check", action="store_true", help="exit 1 unless every scenario's latest row passed")
    p.add_argument("--write", type=Path, metavar="DOC", help="put the table between the fault-table markers of DOC")
    args = p.parse_args(argv)
    path = args.outcomes or outcomes_path()
    rows = [r for r in latest(read(path)) if str(r.get("scenario")) in SCENARIOS]  # ids of old suites: ignored
    if not rows:
        print(f"no fault outcomes in {path}; run: pytest -m faults", file=sys.stderr)
        return 1
    table = render(rows)
    print(table)
    if args.write:
        write_into(args.write, table)
    if args.check:
        bad = missing(rows)
        if bad:
            print(f"scenarios missing or not passed: {', '.join(bad)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
